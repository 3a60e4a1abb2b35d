/**
 * Device identity of the virtual card (spec §5): the device authentication key CC00
 * (brainpoolP256r1) and EF 2F02 = device CVC ‖ issuer CVC, under our own test PKI:
 *
 *   root   `UTSCHSMTS00001`   — "sc-hsm-ts virtual test root, NOT a CardContact root"
 *   issuer `UTSCHSMTSCA00001` — the DICA-like issuer of virtual devices
 *   device `UTVH` + 7 digits + `00000` (OpenSC's serial = CHR minus the last 5 characters)
 *
 * The root and issuer key pairs below are TEST-ONLY constants, published on purpose: anyone can
 * mint "virtual" devices with them, and nothing signed by them can pass as a genuine
 * SmartCard-HSM (genuine chains end in CardContact's SRCA `DESRCACC100001`). A device
 * authenticity check recognises a virtual card by `VIRTUAL_ROOT_CHR` / `VIRTUAL_ROOT_CERTIFICATE`.
 */
import { createPrivateKey, generateKeyPairSync, randomInt, sign } from 'node:crypto';
import { encodeCvc, encodeCvcBody, spkiToCvcPublicKey } from '../pkcs15/index.js';
import { OID } from '../protocol/constants.js';
import { concat, fromHex } from '../util/bytes.js';
import type { StoredKey } from './state.js';

/** CHR of the sc-hsm-ts virtual test root (self-signed). NOT a CardContact root. */
export const VIRTUAL_ROOT_CHR = 'UTSCHSMTS00001';
/** CHR of the issuer (DICA-like) that signs virtual device certificates. */
export const VIRTUAL_ISSUER_CHR = 'UTSCHSMTSCA00001';

/** Test-only root key pair (brainpoolP256r1, PKCS#8). Published on purpose: it proves nothing. */
export const VIRTUAL_ROOT_PKCS8 = fromHex(
  '308188020100301406072a8648ce3d020106092b2403030208010107046d306b02010104209e5262c1162ac22edcbb9c' +
    'ca2af4aa916eec20b396aa5d4e388706b834b2468aa144034200049384d927186ca8a88031b55553aad6707462c16550' +
    'de33ad6c443a4be594175355e3285fb56b2ef247a035f71a6e67cd62068d1bab0bc8e05a681d44ebcdc56e',
);

/** Test-only issuer key pair (brainpoolP256r1, PKCS#8). Published on purpose: it proves nothing. */
export const VIRTUAL_ISSUER_PKCS8 = fromHex(
  '308188020100301406072a8648ce3d020106092b2403030208010107046d306b020101042073b88051a6f45d28374b37' +
    '3ffcc5ce792ec318746ca42d52eee2e3b3c51f0398a1440342000420e944a58d21483308cd0468d2428a07825141b788' +
    'c497897eb03cb95d742ba22cf2a4d6d5f2a374ba421c633345bf42b78a80163365cb930f7d103230fba5f0',
);

/**
 * The self-signed root CVC (`7F21`, CHAT role C0, valid 2025-01-01..2045-12-31). This is
 * "sc-hsm-ts virtual test root, NOT a CardContact root".
 */
export const VIRTUAL_ROOT_CERTIFICATE = fromHex(
  '7f218201b47f4e82016c5f290100420e5554534348534d545330303030317f4982011d060a04007f0007020202020381' +
    '20a9fb57dba1eea9bc3e660a909d838d726e3bf623d52620282013481d1f6e537782207d5a0975fc2c3057eef6753041' +
    '7affe7fb8055c126dc5c6ce94a4b44f330b5d9832026dc5c6ce94a4b44f330b5d9bbd77cbf958416295cf7e1ce6bccdc' +
    '18ff8c07b68441048bd2aeb9cb7e57cb2c4b482ffc81b7afb9de27e1e3bd23c23a4453bd9ace3262547ef835c3dac4fd' +
    '97f8461a14611dc9c27745132ded8e545c1d54c72f0469978520a9fb57dba1eea9bc3e660a909d838d718c397aa3b561' +
    'a6f7901e0e82974856a78641049384d927186ca8a88031b55553aad6707462c16550de33ad6c443a4be594175355e328' +
    '5fb56b2ef247a035f71a6e67cd62068d1bab0bc8e05a681d44ebcdc56e8701015f200e5554534348534d545330303030' +
    '317f4c10060b2b0601040181c31f0301015301c05f25060205000100015f24060405010203015f37402ec1da98fe3a94' +
    'e28fefce14cffd09af8de6fc9eb7a6a3a11a928fa0ac3a72a7a6089160982099d9cb2f83f24823e46b26e5c9fdc7b6b9' +
    'f46c6e09c340e73b61',
);

/** The issuer CVC signed by the root (CHAT role 80); the second half of every virtual 2F02. */
export const VIRTUAL_ISSUER_CERTIFICATE = fromHex(
  '7f218201b67f4e82016e5f290100420e5554534348534d545330303030317f4982011d060a04007f0007020202020381' +
    '20a9fb57dba1eea9bc3e660a909d838d726e3bf623d52620282013481d1f6e537782207d5a0975fc2c3057eef6753041' +
    '7affe7fb8055c126dc5c6ce94a4b44f330b5d9832026dc5c6ce94a4b44f330b5d9bbd77cbf958416295cf7e1ce6bccdc' +
    '18ff8c07b68441048bd2aeb9cb7e57cb2c4b482ffc81b7afb9de27e1e3bd23c23a4453bd9ace3262547ef835c3dac4fd' +
    '97f8461a14611dc9c27745132ded8e545c1d54c72f0469978520a9fb57dba1eea9bc3e660a909d838d718c397aa3b561' +
    'a6f7901e0e82974856a786410420e944a58d21483308cd0468d2428a07825141b788c497897eb03cb95d742ba22cf2a4' +
    'd6d5f2a374ba421c633345bf42b78a80163365cb930f7d103230fba5f08701015f20105554534348534d545343413030' +
    '3030317f4c10060b2b0601040181c31f0301015301805f25060205000100015f24060405010203015f37408aa537cd31' +
    'bf738f632a5dbd3bfb60c57c5057dd24858935cfb6e0e76887f6ca507a177bc0ceb60708d7f0eeb1a43f08da332c9aef' +
    'bec52f709cb0b39e7d599d',
);

/** Device CHR from a 7-digit device id (or a complete `UTVH#######00000` CHR); random when absent. */
export function deviceChrFor(deviceId?: string): string {
  if (deviceId === undefined) return `UTVH${String(randomInt(0, 10_000_000)).padStart(7, '0')}00000`;
  if (/^\d{7}$/.test(deviceId)) return `UTVH${deviceId}00000`;
  if (/^UTVH\d{7}00000$/.test(deviceId)) return deviceId;
  throw new RangeError(`deviceId must be 7 digits or a UTVH#######00000 CHR, got "${deviceId}"`);
}

function today(): string {
  return new Date().toISOString().slice(0, 10);
}

/**
 * Creates the device key CC00 and EF 2F02 (device CVC signed by the issuer ‖ issuer CVC), as the
 * personalisation of a real card would. The device certificate carries full domain parameters.
 */
export function createDeviceIdentity(chr: string): { key: StoredKey; ef2f02: Uint8Array } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'brainpoolP256r1' });
  const spki = new Uint8Array(publicKey.export({ type: 'spki', format: 'der' }));
  const created = today();
  const expires = `${Number(created.slice(0, 4)) + 20}${created.slice(4)}`.replace(/-02-29$/, '-02-28');
  const body = encodeCvcBody({
    car: VIRTUAL_ISSUER_CHR,
    publicKey: spkiToCvcPublicKey(spki, OID.TA_ECDSA_SHA256),
    chr,
    chat: { oid: OID.CHAT_SC_HSM, role: Uint8Array.of(0x00) },
    effectiveDate: created,
    expirationDate: expires,
  });
  const issuerKey = createPrivateKey({
    key: Buffer.from(VIRTUAL_ISSUER_PKCS8),
    format: 'der',
    type: 'pkcs8',
  });
  const signature = new Uint8Array(sign('sha256', body, { key: issuerKey, dsaEncoding: 'ieee-p1363' }));
  const device = encodeCvc(body, signature);
  const pkcs8 = new Uint8Array(privateKey.export({ type: 'pkcs8', format: 'der' }));
  return {
    key: { kind: 'ec', curve: 'brainpoolP256r1', bits: 256, pkcs8 },
    ef2f02: concat(device, VIRTUAL_ISSUER_CERTIFICATE),
  };
}
