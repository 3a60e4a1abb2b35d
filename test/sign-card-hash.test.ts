/**
 * Keys whose algorithm list (tag 91, spec §3.11) allows only the SIGN forms where the card hashes
 * (ECDSA-SHA256 = 73, RSA-PKCS1-SHA256 = 33, RSA-PSS-SHA256 = 43) or pads a DigestInfo
 * (RSA-PKCS1 = 30, spec §3.13): signAlgorithm's choice, WebCrypto sign, createCsr and
 * selfSignCertificate, and `csr` / `cert self-sign` through the command, on the in-process virtual
 * card; every signature verified with node:crypto. A hash the list does not allow is refused before
 * anything is sent, with WebCrypto's InvalidAccessError in the WebCrypto layer.
 */
import { createPublicKey, verify, X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { INS } from '../src/protocol/constants.js';
import { signAlgorithm, signAlgorithmChoices } from '../src/sc-hsm/crypto.js';
import { algorithmBytes, type SmartCardHsm } from '../src/sc-hsm/session.js';
import { readAll, readTlv } from '../src/util/tlv.js';
import { ScHsmCrypto } from '../src/webcrypto/index.js';
import { createCsr, selfSignCertificate, signatureMechanism } from '../src/x509/index.js';
import { cli, ENV, initArgs, keygenArgs, PIN, tempDir } from './cli-helpers.js';
import { initializedHsm, rejection } from './helpers/fixtures.js';

const ec = (...names: string[]) => ({ keyRef: 50, type: 'ec' as const, algorithms: algorithmBytes(names) });
const rsa = (...names: string[]) => ({ keyRef: 51, type: 'rsa' as const, algorithms: algorithmBytes(names) });

/** The TBS bytes, SPKI and signature of a PKCS#10 request (DER), to verify it with node:crypto. */
function csrParts(der: Uint8Array) {
  const top = readTlv(der);
  const [tbs, , sig] = readAll(top.value);
  const tbsRaw = top.value.subarray(tbs!.start, tbs!.end);
  const fields = readAll(tbs!.value);
  const spki = tbs!.value.subarray(fields[2]!.start, fields[2]!.end);
  return {
    tbs: tbsRaw,
    key: createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' }),
    sig: sig!.value.subarray(1),
  };
}

/** The SIGN commands' P2 (algorithm) bytes the card gets from now on. */
function signAlgos(hsm: SmartCardHsm): number[] {
  const seen: number[] = [];
  const t = (hsm as unknown as { ctx: { transport: { transmit(a: Uint8Array): Promise<Uint8Array> } } }).ctx
    .transport;
  const orig = t.transmit.bind(t);
  t.transmit = async (a: Uint8Array) => {
    if (a[1] === INS.SIGN) seen.push(a[3]!);
    return orig(a);
  };
  return seen;
}

describe('signAlgorithm: the SIGN byte a signature uses', () => {
  it('host hash when the list allows it or is unknown; the card-hash form when only that is listed', () => {
    expect(signAlgorithm({ keyRef: 1, type: 'ec' }, 'ECDSA-SHA256')).toBe(0x70);
    expect(signAlgorithm(ec('ECDSA', 'ECDSA-SHA256'), 'ECDSA-SHA256')).toBe(0x70);
    expect(signAlgorithm(ec('ECDSA-SHA256', 'WRAP', 'DERIVE'), 'ECDSA-SHA256')).toBe(0x73);
    expect(signAlgorithm(ec('ECDSA-SHA384'), 'ECDSA-SHA384')).toBe(0x74);
    expect(signAlgorithm(rsa('RSA-PKCS1-SHA256'), 'RSA-PKCS1-SHA256')).toBe(0x33);
    expect(signAlgorithm(rsa('RSA-PKCS1'), 'RSA-PKCS1-SHA256')).toBe(0x30);
    expect(signAlgorithm(rsa('RSA-RAW', 'RSA-PKCS1-SHA256'), 'RSA-PKCS1-SHA256')).toBe(0x20);
    expect(signAlgorithm(rsa('RSA-PSS-SHA256'), 'RSA-PSS-SHA256')).toBe(0x43);
    expect(signAlgorithmChoices('ECDSA-SHA256')).toEqual([0x70, 0x73]);
    expect(signatureMechanism('ec')).toBe('ECDSA-SHA256');
    expect(signatureMechanism('rsa', { hash: 'SHA-384', rsaPadding: 'pss' })).toBe('RSA-PSS-SHA384');
  });

  it('a hash or form the list does not allow: ALGORITHM_NOT_ALLOWED naming what it allows', () => {
    for (const [key, mech] of [
      [ec('ECDSA-SHA256', 'WRAP'), 'ECDSA-SHA384'],
      [ec('ECDSA-SHA256'), 'ECDSA'],
      [ec('ECDH'), 'ECDSA-SHA256'],
      [rsa('RSA-PKCS1-SHA256'), 'RSA-PSS-SHA256'],
      [rsa('RSA-PSS-SHA256'), 'RSA-PKCS1-SHA256'],
    ] as const) {
      let err: unknown;
      try {
        signAlgorithm(key, mech);
      } catch (e) {
        err = e;
      }
      expect(err, mech).toMatchObject({ code: 'ALGORITHM_NOT_ALLOWED' });
      expect((err as Error).message).toMatch(/allows only/);
    }
    expect(() => signAlgorithm(ec('ECDSA-SHA256'), 'RSA-PKCS1-SHA256')).toThrow(/not RSA/);
  });
});

describe('a key restricted to ECDSA-SHA256 (the README key) signs through WebCrypto and X.509', () => {
  let hsm: SmartCardHsm;
  beforeAll(async () => {
    hsm = await initializedHsm();
    await hsm.generateKeyPair({
      type: 'ec',
      curve: 'prime256v1',
      label: 'restricted',
      keyRef: 50,
      algorithms: algorithmBytes(['ECDSA-SHA256', 'WRAP', 'DERIVE']),
    });
  });

  it('subtle.sign ECDSA/SHA-256 sends SIGN 73 and verifies; SHA-384 is InvalidAccessError, nothing sent', async () => {
    const crypto = new ScHsmCrypto(hsm);
    const { privateKey, publicKey } = await crypto.getKeyPair({ keyRef: 50 });
    const seen = signAlgos(hsm);
    const data = new TextEncoder().encode('message to sign');
    const sig = await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, privateKey, data);
    expect(seen).toEqual([0x73]);
    expect(await crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, publicKey, sig, data)).toBe(true);
    const info = await hsm.keyInfo(50);
    const pub = createPublicKey({ key: Buffer.from(info.publicKey!), format: 'der', type: 'spki' });
    expect(verify('sha256', data, { key: pub, dsaEncoding: 'ieee-p1363' }, new Uint8Array(sig))).toBe(true);
    const e = await rejection(crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-384' }, privateKey, data));
    expect(e.name).toBe('InvalidAccessError');
    expect(e.code).toBe('ALGORITHM_NOT_ALLOWED');
    expect(e.message).toContain('ECDSA-SHA256, WRAP, DERIVE');
    expect(seen).toEqual([0x73]);
  });

  it('createCsr and selfSignCertificate verify with node:crypto; SHA-384 refused before any SIGN', async () => {
    const seen = signAlgos(hsm);
    const csr = await createCsr(hsm, { keyRef: 50, subject: 'CN=a' });
    const p = csrParts(csr.der);
    expect(verify('sha256', p.tbs, p.key, p.sig)).toBe(true);
    const cert = await selfSignCertificate(hsm, { keyRef: 50, subject: 'CN=a', days: 2 });
    const x = new X509Certificate(cert.der);
    expect(x.verify(x.publicKey)).toBe(true);
    expect(seen).toEqual([0x73, 0x73]);
    const e = await rejection(createCsr(hsm, { keyRef: 50, subject: 'CN=a', hash: 'SHA-384' }));
    expect(e.code).toBe('ALGORITHM_NOT_ALLOWED');
    expect(e.message).toMatch(/ECDSA-SHA384.*allows only ECDSA-SHA256, WRAP, DERIVE/);
    expect(seen).toHaveLength(2);
  });

  it('hostile: a message over 1024 bytes, SHA-1, a pre-hashed ECDSA: refused, no SIGN sent', async () => {
    const crypto = new ScHsmCrypto(hsm);
    const { privateKey } = await crypto.getKeyPair({ keyRef: 50 });
    const seen = signAlgos(hsm);
    const big = await rejection(
      crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, privateKey, new Uint8Array(1025)),
    );
    expect(big.code).toBe('INVALID_ARGUMENT');
    expect(big.message).toContain('at most 1024 bytes');
    const sha1 = await rejection(
      crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-1' }, privateKey, new Uint8Array(3)),
    );
    expect([sha1.name, sha1.code]).toEqual(['InvalidAccessError', 'ALGORITHM_NOT_ALLOWED']);
    const pre = await rejection(hsm.sign(50, 'ECDSA', new Uint8Array(32)));
    expect(pre.code).toBe('ALGORITHM_NOT_ALLOWED');
    expect(seen).toEqual([]);
    // exactly 1024 bytes still goes to the card in one SIGN 73
    await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, privateKey, new Uint8Array(1024));
    expect(seen).toEqual([0x73]);
  });

  it('a used-up key is InvalidAccessError in WebCrypto (USE_COUNTER_EXHAUSTED)', async () => {
    await hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'once', keyRef: 52, useCounter: 1 });
    const crypto = new ScHsmCrypto(hsm);
    const { privateKey } = await crypto.getKeyPair({ keyRef: 52 });
    const data = Uint8Array.of(1, 2, 3);
    await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, privateKey, data);
    const e = await rejection(crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, privateKey, data));
    expect(e.code).toBe('USE_COUNTER_EXHAUSTED');
    expect(e.name).toBe('InvalidAccessError');
  });

  it('RSA keys limited to RSA-PKCS1-SHA256, RSA-PKCS1 or RSA-PSS-SHA256 make verifying certificates', async () => {
    const cases = [
      [60, 'RSA-PKCS1-SHA256', {}, 0x33],
      [61, 'RSA-PKCS1', {}, 0x30],
      [62, 'RSA-PSS-SHA256', { rsaPadding: 'pss' }, 0x43],
    ] as const;
    for (const [keyRef, name, opts, algo] of cases) {
      await hsm.generateKeyPair({
        type: 'rsa',
        bits: 1024,
        label: name,
        keyRef,
        algorithms: algorithmBytes([name]),
      });
      const seen = signAlgos(hsm);
      const cert = await selfSignCertificate(hsm, { keyRef, subject: `CN=${name}`, days: 1, ...opts });
      const x = new X509Certificate(cert.der);
      expect(x.verify(x.publicKey), name).toBe(true);
      expect(seen).toEqual([algo]);
    }
  }, 60_000);
});

describe('csr and cert self-sign with `keygen --algorithms ECDSA-SHA256 --key-ref 50`', () => {
  let sim: string;
  beforeAll(async () => {
    const dir = await tempDir();
    sim = join(dir, 'hsm.json');
    expect((await cli([...initArgs(sim, 'R'), '--yes'], { env: ENV })).code).toBe(0);
    const k = await cli([
      ...keygenArgs(sim, 'ec:prime256v1', 'r', '--algorithms', 'ECDSA-SHA256', '--key-ref', '50'),
      '--pin',
      PIN,
    ]);
    expect(k.code, k.stderr).toBe(0);
  });

  it('csr: exit 0, the request verifies', async () => {
    const r = await cli(['csr', '--sim', sim, '--key-ref', '50', '--subject', 'CN=a', '--pin', PIN]);
    expect(r.code, r.stderr).toBe(0);
    const b64 = r.stdout.replace(/-----[^-]+-----/g, '').replace(/\s/g, '');
    const p = csrParts(new Uint8Array(Buffer.from(b64, 'base64')));
    expect(verify('sha256', p.tbs, p.key, p.sig)).toBe(true);
  });

  it('cert self-sign: exit 0, the certificate verifies; --hash sha384 is ALGORITHM_NOT_ALLOWED (exit 7)', async () => {
    const args = ['cert', 'self-sign', '--sim', sim, '--key-ref', '50', '--subject', 'CN=a', '--days', '1'];
    const r = await cli([...args, '--pin', PIN]);
    expect(r.code, r.stderr).toBe(0);
    const x = new X509Certificate(r.stdout);
    expect(x.verify(x.publicKey)).toBe(true);
    const bad = await cli([...args, '--hash', 'sha384', '--pin', PIN, '--json']);
    expect(bad.code).toBe(7);
    expect(bad.json().error).toMatchObject({ code: 'ALGORITHM_NOT_ALLOWED' });
    expect(bad.json().error.message).toContain('allows only ECDSA-SHA256');
  });
});
