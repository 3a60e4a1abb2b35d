/**
 * Device authenticity: is this a SmartCard-HSM personalised by CardContact? EF `2F02` holds the
 * device CV certificate followed by its issuer's (a DICA), and the issuer is signed by the
 * SmartCard-HSM Root CA (SRCA, spec §5.3). We verify device ← issuer ← root with the production
 * SRCA as the trust anchor. OpenSC only parses this chain and never checks it.
 *
 * Verdicts:
 * - `genuine`: the chain verifies up to the production SRCA `DESRCACC100001`;
 * - `virtual`: it verifies up to the sc-hsm-ts virtual test root (src/sim/device.ts) —
 *   a virtual card, not genuine;
 * - `broken`: a signature does not verify, the chain is inconsistent, or 2F02 cannot be read;
 * - `untrusted`: the signatures verify as far as they can, but the chain ends at a root we do not know.
 */
import { ScHsmError } from '../errors.js';
import {
  type CvCertificate,
  type CvcPublicKey,
  decodeCvc,
  decodeDeviceCertificateFile,
  verifyCvcSignature,
} from '../pkcs15/index.js';
import type { SmartCardHsm } from '../sc-hsm/session.js';
import { VIRTUAL_ROOT_CERTIFICATE, VIRTUAL_ROOT_CHR } from '../sim/device.js';
import { fromHex } from '../util/bytes.js';

/**
 * The production SmartCard-HSM Root CA certificate (CVC, `DESRCACC100001`, brainpoolP256r1,
 * ECDSA-SHA-256, valid 2012-11-09 to 2032-11-08, self-signed). A public trust anchor, published by
 * CardContact in the Smart Card Shell scripts (`SmartCardHSM.rootCerts`); copied from spec §5.3.
 */
export const SRCA_ROOT_CERTIFICATE = fromHex(
  '7F218201B47F4E82016C5F290100420E44455352434143433130303030317F4982011D060A04007F0007020202020381' +
    '20A9FB57DBA1EEA9BC3E660A909D838D726E3BF623D52620282013481D1F6E537782207D5A0975FC2C3057EEF67530' +
    '417AFFE7FB8055C126DC5C6CE94A4B44F330B5D9832026DC5C6CE94A4B44F330B5D9BBD77CBF958416295CF7E1CE6B' +
    'CCDC18FF8C07B68441048BD2AEB9CB7E57CB2C4B482FFC81B7AFB9DE27E1E3BD23C23A4453BD9ACE3262547EF835C3' +
    'DAC4FD97F8461A14611DC9C27745132DED8E545C1D54C72F0469978520A9FB57DBA1EEA9BC3E660A909D838D718C39' +
    '7AA3B561A6F7901E0E82974856A78641046D025A8026CDBA245F10DF1B72E9880FFF746DAB40A43A3D5C6BEBF27707' +
    'C30F6DEA72430EE3287B0665C1EAA6EAA4FA26C46303001983F82BD1AA31E03DA0628701015F200E44455352434143' +
    '433130303030317F4C10060B2B0601040181C31F0301015301C05F25060102010100095F24060302010100085F3740' +
    '9DBB382B1711D2BAACB0C623D40C6267D0B52BA455C01F56333DC9554810B9B2878DAF9EC3ADA19C7B065D780D6C9C' +
    '3C2ECEDFD78DEB18AF40778ADF89E861CA',
);

/** CHR of the production SRCA. */
export const SRCA_ROOT_CHR = 'DESRCACC100001';

export type DeviceVerdict = 'genuine' | 'virtual' | 'untrusted' | 'broken';

/** One certificate of the chain, device first; `valid` = its signature verifies with its issuer's key. */
export interface ChainEntry {
  chr: string;
  car?: string;
  valid: boolean;
}

export interface DeviceAuthenticity {
  /** True only for `verdict === 'genuine'`. */
  genuine: boolean;
  verdict: DeviceVerdict;
  /** device, issuer, root (as far as known). */
  chain: ChainEntry[];
  /** One sentence explaining the verdict. */
  reason: string;
  /** The device CHR (OpenSC's serial = CHR minus the last 5 characters), when 2F02 was readable. */
  deviceChr?: string;
}

/** A root the chain may end at. */
export interface TrustAnchor {
  certificate: Uint8Array;
  kind: 'production' | 'virtual';
}

/** The anchors {@link checkDeviceChain} uses by default: the production SRCA and the virtual test root. */
export const DEFAULT_ANCHORS: readonly TrustAnchor[] = [
  { certificate: SRCA_ROOT_CERTIFICATE, kind: 'production' },
  { certificate: VIRTUAL_ROOT_CERTIFICATE, kind: 'virtual' },
];

/** True when a key carries its own EC domain parameters (or is RSA), so it needs no parent's. */
function hasDomain(pk: CvcPublicKey): boolean {
  return pk.modulus !== undefined || pk.p !== undefined;
}

/** Verifies without throwing: an unusable key counts as a failed signature. */
function verifies(cert: CvCertificate, signer: CvcPublicKey, domain?: CvcPublicKey): boolean {
  try {
    return verifyCvcSignature(cert, signer, domain && !hasDomain(signer) ? domain : undefined);
  } catch {
    return false;
  }
}

function result(
  verdict: DeviceVerdict,
  chain: ChainEntry[],
  reason: string,
  deviceChr?: string,
): DeviceAuthenticity {
  const r: DeviceAuthenticity = { genuine: verdict === 'genuine', verdict, chain, reason };
  if (deviceChr !== undefined) r.deviceChr = deviceChr;
  return r;
}

/**
 * Checks the device chain in the bytes of EF `2F02` (device CVC ‖ issuer CVC, spec §4, §5.3)
 * against the production SRCA and the virtual test root. Pure: no device needed.
 * `anchors` replaces the default trust anchors (tests).
 */
export function checkDeviceChain(
  ef2f02: Uint8Array,
  anchors: readonly TrustAnchor[] = DEFAULT_ANCHORS,
): DeviceAuthenticity {
  let device: CvCertificate;
  let issuer: CvCertificate | undefined;
  try {
    ({ device, issuer } = decodeDeviceCertificateFile(ef2f02));
  } catch (e) {
    return result(
      'broken',
      [],
      `EF 2F02 does not hold a readable device certificate: ${(e as Error).message}`,
    );
  }
  const roots = anchors.map((a) => ({ ...a, cert: decodeCvc(a.certificate) }));
  const entry = (c: CvCertificate, valid: boolean): ChainEntry => ({
    chr: c.chr,
    ...(c.car !== undefined ? { car: c.car } : {}),
    valid,
  });
  const chr = device.chr;

  // Early development devices: device signed by the root directly (no issuer in 2F02).
  const deviceRoot = roots.find((r) => r.cert.chr === device.car);
  if (!issuer) {
    if (!deviceRoot) {
      return result(
        'untrusted',
        [entry(device, false)],
        `the device certificate's issuer ${device.car ?? '(none)'} is neither in 2F02 nor a known root`,
        chr,
      );
    }
    const ok = verifies(device, deviceRoot.cert.publicKey, deviceRoot.cert.publicKey);
    const chain = [entry(device, ok), entry(deviceRoot.cert, true)];
    if (!ok)
      return result(
        'broken',
        chain,
        `the device certificate ${chr} does not verify with the key of ${deviceRoot.cert.chr}`,
        chr,
      );
    return rootVerdict(deviceRoot.kind, chain, chr);
  }

  if (device.car !== issuer.chr) {
    return result(
      'broken',
      [entry(device, false), entry(issuer, false)],
      `the device certificate names issuer ${device.car ?? '(none)'}, but 2F02 carries ${issuer.chr}`,
      chr,
    );
  }
  const root = roots.find((r) => r.cert.chr === issuer.car);
  // EC domain parameters are inherited down the chain: the issuer key may carry only its point (spec §5.3)
  const issuerDomain = hasDomain(issuer.publicKey) ? issuer.publicKey : root?.cert.publicKey;
  const deviceOk = issuerDomain ? verifies(device, issuer.publicKey, issuerDomain) : false;

  if (!root) {
    const selfSigned = issuer.car === issuer.chr && verifies(issuer, issuer.publicKey);
    const chain = [entry(device, deviceOk), entry(issuer, selfSigned)];
    if (!issuerDomain) {
      return result(
        'untrusted',
        chain,
        `the issuer ${issuer.chr} omits its domain parameters and its root ${issuer.car ?? '(none)'} is unknown`,
        chr,
      );
    }
    if (!deviceOk)
      return result(
        'broken',
        chain,
        `the device certificate ${chr} does not verify with the key of its issuer ${issuer.chr}`,
        chr,
      );
    return result(
      'untrusted',
      chain,
      `the chain verifies up to ${issuer.chr}, but it ends at ${issuer.car ?? '(none)'}, which is neither the SmartCard-HSM Root CA nor the virtual test root`,
      chr,
    );
  }

  const rootOk = verifies(root.cert, root.cert.publicKey);
  const issuerOk = rootOk && verifies(issuer, root.cert.publicKey);
  const chain = [entry(device, deviceOk), entry(issuer, issuerOk), entry(root.cert, rootOk)];
  if (!rootOk)
    return result(
      'broken',
      chain,
      `the trust anchor ${root.cert.chr} does not verify its own signature`,
      chr,
    );
  if (!issuerOk) {
    return result(
      'broken',
      chain,
      `the issuer certificate ${issuer.chr} does not verify with the key of ${root.cert.chr}: it was not issued by that root`,
      chr,
    );
  }
  if (!deviceOk)
    return result(
      'broken',
      chain,
      `the device certificate ${chr} does not verify with the key of its issuer ${issuer.chr}`,
      chr,
    );
  return rootVerdict(root.kind, chain, chr);
}

function rootVerdict(kind: TrustAnchor['kind'], chain: ChainEntry[], chr: string): DeviceAuthenticity {
  if (kind === 'production') {
    return result(
      'genuine',
      chain,
      `the chain verifies up to the SmartCard-HSM Root CA ${SRCA_ROOT_CHR}: a genuine device`,
      chr,
    );
  }
  return result(
    'virtual',
    chain,
    `the chain verifies up to ${VIRTUAL_ROOT_CHR}, the sc-hsm-ts virtual test root: a virtual card, not genuine`,
    chr,
  );
}

/**
 * Reads EF `2F02` from the device (no PIN needed) and checks its chain ({@link checkDeviceChain}).
 */
export async function verifyDeviceAuthenticity(hsm: SmartCardHsm): Promise<DeviceAuthenticity> {
  let raw: Uint8Array;
  try {
    raw = await hsm.readFile(0x2f02);
  } catch (e) {
    if (e instanceof ScHsmError && e.code === 'FILE_NOT_FOUND') {
      return result('broken', [], 'the device has no device certificate (EF 2F02)');
    }
    throw e;
  }
  return checkDeviceChain(raw);
}
