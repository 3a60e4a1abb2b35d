/**
 * CSR and self-signed certificates signed on the (virtual) device and checked by openssl; the
 * certificate stored beside its key as OpenSC does; the device authenticity check; the commands.
 */
import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCommandArgs } from '../src/cli/command.js';
import { certExport, certImport, certSelfSign, csr } from '../src/cli/commands/cert.js';
import { verifyDevice } from '../src/cli/commands/verify-device.js';
import { Ctx } from '../src/cli/context.js';
import { isScHsmError } from '../src/errors.js';
import {
  decodeCvc,
  decodeKeyDescription,
  encodeCvc,
  encodeCvcBody,
  spkiToCvcPublicKey,
  verifyCvcSignature,
} from '../src/pkcs15/index.js';
import { OID } from '../src/protocol/constants.js';
import { SmartCardHsm } from '../src/sc-hsm/session.js';
import { VIRTUAL_ROOT_CHR, VirtualSmartCardHsm } from '../src/sim/index.js';
import { concat } from '../src/util/bytes.js';
import {
  checkDeviceChain,
  createCsr,
  exportCertificate,
  importCertificate,
  SRCA_ROOT_CERTIFICATE,
  SRCA_ROOT_CHR,
  selfSignCertificate,
  verifyDeviceAuthenticity,
} from '../src/x509/index.js';
import { initializedHsm } from './helpers/fixtures.js';
import { ok, openssl } from './helpers/opensc.js';

let dir: string;

function expectCode(e: unknown, code: string): void {
  expect(isScHsmError(e), String(e)).toBe(true);
  expect((e as { code: string }).code).toBe(code);
}

function file(name: string, data: string | Uint8Array): string {
  const p = join(dir, name);
  writeFileSync(p, data);
  return p;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sc-hsm-ts-x509-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('CSR and self-signed certificates signed on the device', () => {
  let hsm: SmartCardHsm;
  beforeAll(async () => {
    hsm = await initializedHsm();
  });

  const keys = [
    { name: 'EC P-256', spec: { type: 'ec', curve: 'prime256v1' } },
    { name: 'EC brainpoolP384r1', spec: { type: 'ec', curve: 'brainpoolP384r1' } },
    { name: 'RSA 2048', spec: { type: 'rsa', bits: 2048 } },
  ] as const;

  for (const k of keys) {
    it(`${k.name}: openssl req -verify accepts the CSR`, async () => {
      const g = await hsm.generateKeyPair({ ...k.spec, label: `csr-${k.name}` } as never);
      const r = await createCsr(hsm, { keyRef: g.keyRef, subject: 'CN=Example Issuing CA, O=Example, C=DE' });
      expect(r.pem).toMatch(/^-----BEGIN CERTIFICATE REQUEST-----/);
      const p = file(`csr-${g.keyRef}.pem`, r.pem);
      const v = ok(await openssl(['req', '-verify', '-noout', '-in', p]));
      expect(`${v.stdout}${v.stderr}`).toMatch(/verify OK/i);
      const t = ok(await openssl(['req', '-noout', '-subject', '-in', p]));
      expect(t.stdout).toMatch(/CN\s*=\s*Example Issuing CA/);
    });

    it(`${k.name}: openssl verify accepts the self-signed certificate`, async () => {
      const g = await hsm.generateKeyPair({ ...k.spec, label: `root-${k.name}` } as never);
      const r = await selfSignCertificate(hsm, {
        keyRef: g.keyRef,
        subject: `CN=Root ${k.name}, O=Example`,
        days: 3650,
      });
      const p = file(`self-${g.keyRef}.pem`, r.pem);
      const v = ok(await openssl(['verify', '-CAfile', p, p]));
      expect(v.stdout).toContain(`${p}: OK`);
      const text = ok(await openssl(['x509', '-noout', '-text', '-in', p])).stdout;
      expect(text).toMatch(/Subject: CN\s*=\s*Root/);
      expect(text).toContain('CA:TRUE');
      expect(text).toMatch(/Certificate Sign, CRL Sign/);
      const days = (r.certificate.notAfter.getTime() - r.certificate.notBefore.getTime()) / 86_400_000;
      expect(days).toBeCloseTo(3650, 3);
    });
  }

  it('RSA-PSS self-signed certificate (salt length = hash length) verifies in openssl', async () => {
    const g = await hsm.generateKeyPair({ type: 'rsa', bits: 1024, label: 'pss-root' });
    const r = await selfSignCertificate(hsm, {
      keyRef: g.keyRef,
      subject: 'CN=PSS Root',
      days: 30,
      rsaPadding: 'pss',
      hash: 'SHA-384',
    });
    const p = file('pss.pem', r.pem);
    ok(await openssl(['verify', '-CAfile', p, p]));
    expect(ok(await openssl(['x509', '-noout', '-text', '-in', p])).stdout).toContain('rsassaPss');
  });

  it('refuses bad input with typed errors', async () => {
    const g = await hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'bad-input' });
    expectCode(await createCsr(hsm, { keyRef: 222, subject: 'CN=x' }).catch((e) => e), 'KEY_NOT_FOUND');
    expectCode(await createCsr(hsm, { keyRef: g.keyRef, subject: '' }).catch((e) => e), 'INVALID_ARGUMENT');
    expectCode(
      await createCsr(hsm, { keyRef: g.keyRef, subject: 'CN=x', rsaPadding: 'pss' }).catch((e) => e),
      'INVALID_ARGUMENT',
    );
    expectCode(
      await selfSignCertificate(hsm, { keyRef: g.keyRef, subject: 'CN=x', days: 0 }).catch((e) => e),
      'INVALID_ARGUMENT',
    );
  });
});

describe('storing a certificate beside its key (OpenSC layout)', () => {
  let hsm: SmartCardHsm;
  beforeAll(async () => {
    hsm = await initializedHsm();
  });

  it('writes CExx, rewrites the PRKD with access flags 0x1D and the subject; reads back as PEM', async () => {
    const g = await hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'ca-key' });
    const before = decodeKeyDescription(await hsm.readFile(0xc400 | g.keyRef));
    expect(before.access).toBeUndefined();
    expect(before.subjectName).toBeUndefined();
    expect(await hsm.readCertificate(g.keyRef)).toBeUndefined();
    const r = await selfSignCertificate(hsm, { keyRef: g.keyRef, subject: 'CN=test', days: 365 });
    const stored = await importCertificate(hsm, g.keyRef, r.pem);
    expect(stored.subject).toBe('CN=test');
    const after = decodeKeyDescription(await hsm.readFile(0xc400 | g.keyRef));
    expect(after.access).toBe(0x1d);
    expect(Buffer.from(after.subjectName!)).toEqual(Buffer.from(r.certificate.subjectName.toArrayBuffer()));
    expect(after.label).toBe('ca-key');
    expect(Buffer.from(after.id)).toEqual(Buffer.from(g.id));
    expect(after.usage).toBe(before.usage);
    expect(Buffer.from((await hsm.readCertificate(g.keyRef))!)).toEqual(Buffer.from(r.der));
    expect(await exportCertificate(hsm, g.keyRef)).toBe(r.pem);
    const info = await hsm.keyInfo(g.keyRef);
    expect(info.hasCertificate).toBe(true);
    expect(info.access).toBe(0x1d);
    // DER input works too, and replaces the certificate
    const r2 = await selfSignCertificate(hsm, { keyRef: g.keyRef, subject: 'CN=second', days: 10 });
    await importCertificate(hsm, g.keyRef, r2.der);
    expect(await exportCertificate(hsm, g.keyRef)).toBe(r2.pem);
  });

  it('refuses a certificate whose public key is not the key’s, and garbage', async () => {
    const a = await hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'key-a' });
    const b = await hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'key-b' });
    const certA = await selfSignCertificate(hsm, { keyRef: a.keyRef, subject: 'CN=a', days: 1 });
    const e = await importCertificate(hsm, b.keyRef, certA.pem).catch((x) => x);
    expectCode(e, 'INVALID_ARGUMENT');
    expect((e as Error).message).toMatch(/does not belong to key reference/);
    expect(await hsm.readCertificate(b.keyRef)).toBeUndefined();
    expectCode(
      await importCertificate(hsm, b.keyRef, new Uint8Array([0x30, 0x03, 1, 2, 3])).catch((x) => x),
      'MALFORMED_DATA',
    );
    expectCode(await exportCertificate(hsm, b.keyRef).catch((x) => x), 'FILE_NOT_FOUND');
    expectCode(await exportCertificate(hsm, 250).catch((x) => x), 'KEY_NOT_FOUND');
  });
});

// ------------------------------------------------------------------------------------------------
// device authenticity

/** A CVC signed with `signerPkcs8` (brainpoolP256r1, ECDSA-SHA-256), carrying `spki` as its key. */
function cvc(o: {
  car: string;
  chr: string;
  spki: Uint8Array;
  signer: import('node:crypto').KeyObject;
  role: number;
}): Uint8Array {
  const body = encodeCvcBody({
    car: o.car,
    publicKey: spkiToCvcPublicKey(o.spki, OID.TA_ECDSA_SHA256),
    chr: o.chr,
    chat: { oid: OID.CHAT_SC_HSM, role: Uint8Array.of(o.role) },
    effectiveDate: '2025-01-01',
    expirationDate: '2040-01-01',
  });
  return encodeCvc(body, new Uint8Array(sign('sha256', body, { key: o.signer, dsaEncoding: 'ieee-p1363' })));
}

function bpKey() {
  const k = generateKeyPairSync('ec', { namedCurve: 'brainpoolP256r1' });
  return { ...k, spki: new Uint8Array(k.publicKey.export({ type: 'spki', format: 'der' })) };
}

/** A chain device ← issuer ← root, the root self-signed under our own key. */
function syntheticChain(rootChr: string) {
  const root = bpKey();
  const issuer = bpKey();
  const device = bpKey();
  const rootCert = cvc({ car: rootChr, chr: rootChr, spki: root.spki, signer: root.privateKey, role: 0xc0 });
  const issuerCert = cvc({
    car: rootChr,
    chr: 'DEDITEST00001',
    spki: issuer.spki,
    signer: root.privateKey,
    role: 0x80,
  });
  const deviceCert = cvc({
    car: 'DEDITEST00001',
    chr: 'DETEST0000100000',
    spki: device.spki,
    signer: issuer.privateKey,
    role: 0x00,
  });
  return { rootCert, ef2f02: concat(deviceCert, issuerCert) };
}

/** Flips one bit in the last byte of the n-th 5F37 signature in the file. */
function flipSignatureBit(ef: Uint8Array, n: number): Uint8Array {
  const out = ef.slice();
  let at = -1;
  for (let i = 0, seen = 0; i < out.length - 1; i++) {
    if (out[i] === 0x5f && out[i + 1] === 0x37) {
      if (seen === n) {
        at = i + 3 + out[i + 2]! - 1; // 5F 37 len value…: last byte of the value
        break;
      }
      seen++;
    }
  }
  expect(at).toBeGreaterThan(0);
  out[at]! ^= 0x01;
  return out;
}

describe('device authenticity (EF 2F02)', () => {
  let hsm: SmartCardHsm;
  let ef2f02: Uint8Array;
  beforeAll(async () => {
    hsm = await SmartCardHsm.open(new VirtualSmartCardHsm());
    ef2f02 = await hsm.readFile(0x2f02);
  });

  it('the embedded production SRCA certificate is the self-signed DESRCACC100001 and verifies as a root', () => {
    const srca = decodeCvc(SRCA_ROOT_CERTIFICATE);
    expect(srca.chr).toBe(SRCA_ROOT_CHR);
    expect(srca.car).toBe(SRCA_ROOT_CHR);
    expect(srca.effectiveDate).toBe('2012-11-09');
    expect(srca.expirationDate).toBe('2032-11-08');
    expect(verifyCvcSignature(srca, srca.publicKey)).toBe(true);
    const tampered = { ...srca, signature: srca.signature.slice() };
    tampered.signature[5]! ^= 1;
    expect(verifyCvcSignature(tampered, srca.publicKey)).toBe(false);
  });

  it("the virtual card's chain is 'virtual' (not genuine), from the device and from the bytes", async () => {
    const r = await verifyDeviceAuthenticity(hsm);
    expect(r.verdict).toBe('virtual');
    expect(r.genuine).toBe(false);
    expect(r.chain.map((c) => c.valid)).toEqual([true, true, true]);
    expect(r.chain[2]!.chr).toBe(VIRTUAL_ROOT_CHR);
    expect(r.reason).toMatch(/virtual card, not genuine/);
    expect(checkDeviceChain(ef2f02).verdict).toBe('virtual');
  });

  it("a flipped bit in the device or the issuer signature makes it 'broken'", () => {
    const dev = checkDeviceChain(flipSignatureBit(ef2f02, 0));
    expect(dev.verdict).toBe('broken');
    expect(dev.genuine).toBe(false);
    expect(dev.chain[0]!.valid).toBe(false);
    expect(dev.chain[1]!.valid).toBe(true);
    const iss = checkDeviceChain(flipSignatureBit(ef2f02, 1));
    expect(iss.verdict).toBe('broken');
    expect(iss.chain[1]!.valid).toBe(false);
  });

  it("a chain claiming the production root but signed by another key is 'broken', never 'genuine'", () => {
    const { ef2f02: forged } = syntheticChain(SRCA_ROOT_CHR);
    const r = checkDeviceChain(forged);
    expect(r.verdict).toBe('broken');
    expect(r.genuine).toBe(false);
    expect(r.chain.map((c) => c.chr)).toEqual(['DETEST0000100000', 'DEDITEST00001', SRCA_ROOT_CHR]);
    expect(r.chain[0]!.valid).toBe(true);
    expect(r.chain[1]!.valid).toBe(false);
    expect(r.chain[2]!.valid).toBe(true);
    expect(r.reason).toMatch(/not issued by that root/);
  });

  it("root matching: a chain that verifies up to a production anchor is 'genuine'", () => {
    const { rootCert, ef2f02: chain } = syntheticChain('DETESTROOT00001');
    const r = checkDeviceChain(chain, [{ certificate: rootCert, kind: 'production' }]);
    expect(r.verdict).toBe('genuine');
    expect(r.genuine).toBe(true);
    expect(r.chain.map((c) => c.valid)).toEqual([true, true, true]);
    // the same chain against the real anchors ends at an unknown root
    const u = checkDeviceChain(chain);
    expect(u.verdict).toBe('untrusted');
    expect(u.genuine).toBe(false);
  });

  it("unreadable 2F02 is 'broken'", () => {
    expect(checkDeviceChain(new Uint8Array([1, 2, 3])).verdict).toBe('broken');
    expect(checkDeviceChain(ef2f02.subarray(0, 40)).verdict).toBe('broken');
  });
});

// ------------------------------------------------------------------------------------------------
// commands

function ctxFor(hsm: SmartCardHsm, json = false) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  stdout.on('data', (d) => {
    out += d.toString();
  });
  stderr.resume();
  const ctx = new Ctx(
    { stdout, stderr, stdin: new PassThrough(), env: { PIN: '648219' }, isTTY: false },
    { json, yes: false, progress: false, lastTry: false },
    async () => ({ hsm, reader: 'virtual:test', virtual: true }),
  );
  return { ctx, out: () => out };
}

describe('commands: csr, cert self-sign / import / export, verify-device', () => {
  let hsm: SmartCardHsm;
  let keyRef: number;
  beforeAll(async () => {
    hsm = await initializedHsm();
    keyRef = (await hsm.generateKeyPair({ type: 'ec', curve: 'secp384r1', label: 'cli-ca' })).keyRef;
  });

  async function run(cmd: typeof csr, args: string[], json = false) {
    const p = parseCommandArgs(cmd, args);
    const { ctx, out } = ctxFor(hsm, json);
    const result = await cmd.run(ctx, p.values, p.positionals);
    return { result: result as Record<string, unknown>, out: out(), exitCode: ctx.exitCode };
  }

  it('csr --out writes a PEM request that openssl verifies; an existing file is kept without --force', async () => {
    const out = join(dir, 'cli.csr');
    await run(csr, ['--key-ref', String(keyRef), '--subject', 'CN=CLI CA', '--out', out, '--pin', 'env:PIN']);
    ok(await openssl(['req', '-verify', '-noout', '-in', out]));
    await expect(
      run(csr, ['--key-ref', String(keyRef), '--subject', 'CN=CLI CA', '--out', out, '--pin', 'env:PIN']),
    ).rejects.toMatchObject({
      code: 'FILE_EXISTS',
    });
    await run(csr, [
      '--key-ref',
      String(keyRef),
      '--subject',
      'CN=CLI CA 2',
      '--out',
      out,
      '--force',
      '--pin',
      'env:PIN',
    ]);
    expect(ok(await openssl(['req', '-noout', '-subject', '-in', out])).stdout).toMatch(/CLI CA 2/);
  });

  it('cert self-sign --store, cert export, cert import', async () => {
    const out = join(dir, 'cli-root.pem');
    const r = await run(certSelfSign, [
      '--key-ref',
      String(keyRef),
      '--subject',
      'CN=CLI Root',
      '--days',
      '30',
      '--out',
      out,
      '--store',
      '--pin',
      'env:PIN',
    ]);
    expect(r.result.stored).toBe(true);
    ok(await openssl(['verify', '-CAfile', out, out]));
    const exp = await run(certExport, ['--key-ref', String(keyRef)]);
    expect(exp.out).toBe(readFileSync(out, 'utf8'));
    // import a DER file
    const der = join(dir, 'cli-root.der');
    ok(await openssl(['x509', '-in', out, '-outform', 'DER', '-out', der]));
    const imp = await run(certImport, [der, '--key-ref', String(keyRef), '--pin', 'env:PIN']);
    expect(imp.result.subject).toBe('CN=CLI Root');
  });

  it('verify-device reports the virtual chain; exit code 0 on the virtual card', async () => {
    const r = await run(verifyDevice, []);
    expect(r.result.verdict).toBe('virtual');
    expect(r.out).toMatch(/VIRTUAL/);
    expect(r.exitCode).toBe(0);
  });
});
