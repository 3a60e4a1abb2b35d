/**
 * The files OpenSC's tools made (fixtures/opensc/, README there: commands, versions, password),
 * decoded with our codecs. No pcscd needed: this is the offline half of the interop evidence.
 */
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  decodeWrapFile,
  decryptDkekShare,
  decryptKeyBlob,
  inspectKeyBlob,
  keyCheckValue,
} from '../src/dkek/index.js';
import { cvcPublicKeyToSpki, decodeCvRequest, decodeKeyDescription } from '../src/pkcs15/index.js';
import { toHex } from '../src/util/bytes.js';

const DIR = resolve(import.meta.dirname, '..', 'fixtures', 'opensc');
const read = (name: string) => new Uint8Array(readFileSync(join(DIR, name)));

const PASSWORD = 'cara-dkek-share-1-pw';
/** What `sc-hsm-tool --import-dkek-share dkek-share-1.pbe` printed (fixtures/opensc/README.md). */
const KCV_REPORTED_BY_SC_HSM_TOOL = '1BBCCDA9E9C59DED';

/** Canonical SPKI DER hex of any public key form node accepts. */
function spkiHex(key: Parameters<typeof createPublicKey>[0]): string {
  return toHex(new Uint8Array(createPublicKey(key).export({ format: 'der', type: 'spki' })));
}

const KEYS = [
  {
    file: 'key1.bin',
    pub: 'pub-rsa.der',
    label: 'cara-rsa-ca',
    id: '01',
    kind: 'rsa',
    types: ['rsa', 'rsa-crt'],
    bits: 2048,
  },
  {
    file: 'key2.bin',
    pub: 'pub-ec.der',
    label: 'cara-ec-ca',
    id: '02',
    kind: 'ec',
    types: ['ec'],
    bits: 256,
  },
] as const;

describe('fixtures made by OpenSC 0.23 (fixtures/opensc)', () => {
  let dkek: Uint8Array;

  beforeAll(async () => {
    // one share, so the DKEK is the share itself (spec §7.3); 10 M MD5 rounds take a few seconds
    dkek = await decryptDkekShare(read('dkek-share-1.pbe'), PASSWORD);
  }, 60_000);

  it('the sc-hsm-tool share file decrypts to the KCV sc-hsm-tool reported', () => {
    expect(dkek.length).toBe(32);
    expect(toHex(keyCheckValue(dkek)).toUpperCase()).toBe(KCV_REPORTED_BY_SC_HSM_TOOL);
  });

  for (const k of KEYS) {
    describe(k.file, () => {
      it('decodes: blob KCV = the DKEK KCV, key type, and the PRKD label and ID', () => {
        const w = decodeWrapFile(read(k.file));
        const head = inspectKeyBlob(w.blob);
        expect(toHex(head.kcv).toUpperCase()).toBe(KCV_REPORTED_BY_SC_HSM_TOOL);
        expect(k.types).toContain(head.keyType);
        expect(w.prkd).toBeDefined();
        const desc = decodeKeyDescription(w.prkd!);
        expect({ kind: desc.kind, label: desc.label, id: toHex(desc.id), bits: desc.bits }).toEqual({
          kind: k.kind,
          label: k.label,
          id: k.id,
          bits: k.bits,
        });
        expect(w.certificate?.[0]).toBe(0x67); // the CV request OpenSC stored in CExx at key generation
      });

      it('decodeWrapFile also reports label and id itself (docs/contracts.md WrapFile)', () => {
        const w = decodeWrapFile(read(k.file));
        expect({ label: w.label, id: w.id && toHex(w.id), kind: w.keyDescription?.kind }).toEqual({
          label: k.label,
          id: k.id,
          kind: k.kind,
        });
      });

      it('decryptKeyBlob with the DKEK from the share gives the private key of the public key in the CV request', () => {
        const w = decodeWrapFile(read(k.file));
        const key = decryptKeyBlob(w.blob, dkek);
        expect(k.types).toContain(key.keyType);
        expect(key.bits).toBe(k.bits);
        if (k.kind === 'ec') expect(key.curve).toBe('prime256v1');
        expect(key.pkcs8).toBeDefined();
        const priv = createPrivateKey({ key: Buffer.from(key.pkcs8!), format: 'der', type: 'pkcs8' });
        const fromPrivate = spkiHex(priv);
        const request = decodeCvRequest(w.certificate!);
        const fromRequest = spkiHex({
          key: Buffer.from(cvcPublicKeyToSpki(request.certificate.publicKey)),
          format: 'der',
          type: 'spki',
        });
        expect(fromPrivate).toBe(fromRequest);
        // and the public key pkcs11-tool read from the token
        expect(fromPrivate).toBe(spkiHex({ key: Buffer.from(read(k.pub)), format: 'der', type: 'spki' }));
        if (key.publicKey)
          expect(spkiHex({ key: Buffer.from(key.publicKey), format: 'der', type: 'spki' })).toBe(fromPrivate);
        expect(request.certificate.chr.length).toBeGreaterThan(0);
      });
    });
  }
});
