/**
 * Key domains through the session (spec §3.10, §3.11–3.12 tag 92, §3.16), run unchanged over every
 * transport like the session suite: in-process (test/session-domains.test.ts) and through pcscd
 * (test/domain.pcsc.test.ts).
 */
import { randomBytes, verify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { keyCheckValue } from '../../src/dkek/index.js';
import { ScHsmError } from '../../src/errors.js';
import { toHex } from '../../src/util/bytes.js';
import { type Device, type Harness, PIN, SO_PIN } from './session-suite.js';

const xor = (a: Uint8Array, b: Uint8Array) => a.map((v, i) => v ^ b[i]!);

/** Initializes with `keyDomains` domains (domain 0: one share, imported) and verifies the PIN. */
export async function domainDevice(d: Device, keyDomains = 3, share0 = randomBytes(32)): Promise<Device> {
  await d.hsm.initialize({ soPin: SO_PIN, userPin: PIN, dkekShares: 1, keyDomains });
  await d.hsm.importDkekShare(share0);
  await d.hsm.verifyPin(PIN);
  return d;
}

/** Asserts an ScHsmError of `code` and that neither the APDU count nor the card's state moved. */
async function refusedBeforeSending(
  d: Device,
  fn: () => Promise<unknown>,
  code: string,
): Promise<ScHsmError> {
  const before = d.hsm.apduCount;
  const state = d.card.serialize();
  const e = await fn().then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(ScHsmError);
  expect((e as ScHsmError).code).toBe(code);
  expect(d.hsm.apduCount).toBe(before);
  expect(d.card.serialize()).toBe(state);
  return e as ScHsmError;
}

/** The card's state is unchanged by `fn`, which fails with `code`. */
async function refusedUnchanged(d: Device, fn: () => Promise<unknown>, code: string): Promise<ScHsmError> {
  const state = d.card.serialize();
  const e = await fn().then(
    () => undefined,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(ScHsmError);
  expect((e as ScHsmError).code).toBe(code);
  expect(d.card.serialize()).toBe(state);
  return e as ScHsmError;
}

export function defineDomainSuite(name: string, harness: () => Harness): void {
  describe(`key domains over ${name}`, () => {
    const h = harness;

    it('creates a domain, imports its shares (own KCV and count), lists every domain', async () => {
      const s0 = randomBytes(32);
      const d = await domainDevice(await h().fresh(), 3, s0);
      const { hsm } = d;
      expect(await hsm.keyDomainStatus(1)).toBeUndefined();
      const created = await hsm.createKeyDomain(1, 2);
      expect(created).toMatchObject({ domain: 1, total: 2, outstanding: 2 });
      const a = randomBytes(32);
      const b = randomBytes(32);
      expect(await hsm.importDkekShare(a, { domain: 1 })).toMatchObject({ domain: 1, outstanding: 1 });
      const done = await hsm.importDkekShare(b, { domain: 1 });
      expect(toHex(done.kcv)).toBe(toHex(keyCheckValue(xor(a, b))));
      const all = await hsm.listKeyDomains();
      expect(all.slots).toBe(3);
      expect(all.domains.map((x) => [x.domain, x.total, x.outstanding, toHex(x.kcv)])).toEqual([
        [0, 1, 0, toHex(keyCheckValue(s0))],
        [1, 2, 0, toHex(keyCheckValue(xor(a, b)))],
      ]);
      // the domain-0 DKEK status of before domains still answers domain 0
      expect(toHex((await hsm.dkekStatus())!.kcv)).toBe(toHex(keyCheckValue(s0)));
    });

    it('hostile: out of range, create twice, import into a domain never created, same share twice, bad counts', async () => {
      const d = await domainDevice(await h().fresh(), 2);
      const { hsm } = d;
      for (const bad of [-1, 255, 1.5, Number.NaN]) {
        await refusedBeforeSending(d, () => hsm.createKeyDomain(bad, 1), 'INVALID_ARGUMENT');
        await refusedBeforeSending(
          d,
          () => hsm.importDkekShare(randomBytes(32), { domain: bad }),
          'INVALID_ARGUMENT',
        );
        await refusedBeforeSending(d, () => hsm.deleteKeyDomain(bad), 'INVALID_ARGUMENT');
      }
      for (const bad of [0, 256, 2.5])
        await refusedBeforeSending(d, () => hsm.createKeyDomain(1, bad), 'INVALID_ARGUMENT');
      await refusedUnchanged(d, () => hsm.createKeyDomain(2, 1), 'KEY_DOMAIN_OUT_OF_RANGE');
      await refusedUnchanged(d, () => hsm.keyDomainStatus(7), 'KEY_DOMAIN_OUT_OF_RANGE');
      await refusedUnchanged(
        d,
        () => hsm.importDkekShare(randomBytes(32), { domain: 1 }),
        'KEY_DOMAIN_UNUSED',
      );
      await refusedUnchanged(d, () => hsm.createKeyDomain(0, 1), 'KEY_DOMAIN_EXISTS');
      await hsm.createKeyDomain(1, 2);
      await refusedUnchanged(d, () => hsm.createKeyDomain(1, 2), 'KEY_DOMAIN_EXISTS');
      const share = randomBytes(32);
      await hsm.importDkekShare(share, { domain: 1 });
      await refusedUnchanged(d, () => hsm.importDkekShare(share, { domain: 1 }), 'DKEK_SHARE_REPEATED');
      // the same share into another domain is that domain's business
      await hsm.importDkekShare(randomBytes(32), { domain: 1 });
      await refusedUnchanged(
        d,
        () => hsm.importDkekShare(randomBytes(32), { domain: 1 }),
        'CONDITIONS_NOT_SATISFIED',
      );
    });

    it('needs the user PIN to create, delete and import into a domain ≠ 0', async () => {
      const d = await domainDevice(await h().fresh(), 3);
      await d.hsm.logout();
      await refusedUnchanged(d, () => d.hsm.createKeyDomain(1, 1), 'SECURITY_STATUS');
      await d.hsm.verifyPin(PIN);
      await d.hsm.createKeyDomain(1, 1);
      await d.hsm.logout();
      await refusedUnchanged(
        d,
        () => d.hsm.importDkekShare(randomBytes(32), { domain: 1 }),
        'SECURITY_STATUS',
      );
      await refusedUnchanged(d, () => d.hsm.deleteKeyDomain(1), 'SECURITY_STATUS');
    });

    it('generates EC, RSA and AES keys into a domain; the key reports its domain; WRAP uses that domain', async () => {
      const s0 = randomBytes(32);
      const d = await domainDevice(await h().fresh(), 3, s0);
      const { hsm } = d;
      await refusedUnchanged(
        d,
        () => hsm.generateKeyPair({ type: 'ec', curve: 'P-256', label: 'nope', domain: 1 }),
        'KEY_DOMAIN_UNUSED',
      );
      await hsm.createKeyDomain(1, 1);
      await refusedUnchanged(
        d,
        () => hsm.generateKeyPair({ type: 'ec', curve: 'P-256', label: 'early', domain: 1 }),
        'DKEK_INCOMPLETE',
      );
      const s1 = randomBytes(32);
      await hsm.importDkekShare(s1, { domain: 1 });
      await refusedBeforeSending(
        d,
        () => hsm.generateKeyPair({ type: 'ec', curve: 'P-256', label: 'x', domain: 255 }),
        'INVALID_ARGUMENT',
      );
      await refusedUnchanged(
        d,
        () => hsm.generateKeyPair({ type: 'ec', curve: 'P-256', label: 'x', domain: 3 }),
        'KEY_DOMAIN_OUT_OF_RANGE',
      );
      const ec = await hsm.generateKeyPair({ type: 'ec', curve: 'P-256', label: 'ec-d1', domain: 1 });
      const rsa = await hsm.generateKeyPair({ type: 'rsa', bits: 1024, label: 'rsa-d1', domain: 1 });
      const aes = await hsm.generateAesKey({ bits: 128, label: 'aes-d1', domain: 1 });
      const plain = await hsm.generateKeyPair({ type: 'ec', curve: 'P-256', label: 'ec-d0' });
      const keys = await hsm.listKeys();
      expect(keys.map((k) => [k.label, k.domain])).toEqual([
        ['ec-d1', 1],
        ['rsa-d1', 1],
        ['aes-d1', 1],
        ['ec-d0', 0],
      ]);
      for (const ref of [ec.keyRef, rsa.keyRef, aes.keyRef])
        expect(toHex((await hsm.wrapKey(ref)).subarray(0, 8))).toBe(toHex(keyCheckValue(s1)));
      expect(toHex((await hsm.wrapKey(plain.keyRef)).subarray(0, 8))).toBe(toHex(keyCheckValue(s0)));
      const data = new TextEncoder().encode('domain one');
      const sig = await hsm.sign(ec.keyRef, 'ECDSA-SHA256', data);
      expect(
        verify(
          'sha256',
          data,
          { key: Buffer.from(ec.publicKey), format: 'der', type: 'spki' },
          Buffer.from(sig),
        ),
      ).toBe(true);
    });

    it('unwraps into the domain whose DKEK made the blob; --domain checks it; another device with the same shares takes it', async () => {
      const s0 = randomBytes(32);
      const s1 = randomBytes(32);
      const a = await domainDevice(await h().fresh(), 2, s0);
      await a.hsm.createKeyDomain(1, 1);
      await a.hsm.importDkekShare(s1, { domain: 1 });
      const k = await a.hsm.generateKeyPair({ type: 'ec', curve: 'P-256', label: 'moves', domain: 1 });
      const bin = await a.hsm.backupKey(k.keyRef);
      const blob = await a.hsm.wrapKey(k.keyRef);
      await refusedUnchanged(a, () => a.hsm.unwrapKey(9, blob, { domain: 0 }), 'KCV_MISMATCH');
      await refusedBeforeSending(a, () => a.hsm.unwrapKey(9, blob, { domain: -3 }), 'INVALID_ARGUMENT');
      await refusedUnchanged(a, () => a.hsm.unwrapKey(9, blob, { domain: 5 }), 'KEY_DOMAIN_OUT_OF_RANGE');
      await a.hsm.unwrapKey(9, blob, { domain: 1 });
      expect(toHex((await a.hsm.wrapKey(9)).subarray(0, 8))).toBe(toHex(keyCheckValue(s1)));

      // a second device: domain 1 holds the same DKEK; domain 0 another one
      const b = await domainDevice(await h().fresh(), 2);
      await refusedUnchanged(b, () => b.hsm.restoreKey(bin, 4), 'KCV_MISMATCH');
      await b.hsm.createKeyDomain(1, 1);
      const e = await refusedUnchanged(b, () => b.hsm.restoreKey(bin, 4), 'KCV_MISMATCH');
      expect(e.message).toMatch(/domain 1 still misses 1 share/);
      await b.hsm.importDkekShare(s1, { domain: 1 });
      await b.hsm.restoreKey(bin, 4);
      const info = await b.hsm.keyInfo(4);
      expect([info.label, info.domain]).toEqual(['moves', 1]);
      expect(toHex(info.publicKey!)).toBe(toHex(k.publicKey));
      // rewrapped under domain 1 of the second device: the same KCV
      expect(toHex((await b.hsm.wrapKey(4)).subarray(0, 8))).toBe(toHex(keyCheckValue(s1)));
    });

    it('deletes: an empty domain; not one with keys; a DKEK only (shares outstanding again, keys kept)', async () => {
      const d = await domainDevice(await h().fresh(), 3);
      const { hsm } = d;
      await refusedUnchanged(d, () => hsm.deleteKeyDomain(2), 'KEY_DOMAIN_UNUSED');
      await hsm.createKeyDomain(2, 1);
      expect(await hsm.deleteKeyDomain(2)).toBeUndefined();
      expect(await hsm.keyDomainStatus(2)).toBeUndefined();
      await hsm.createKeyDomain(1, 1);
      const s1 = randomBytes(32);
      await hsm.importDkekShare(s1, { domain: 1 });
      const k = await hsm.generateKeyPair({ type: 'ec', curve: 'P-256', label: 'pinned', domain: 1 });
      await refusedUnchanged(d, () => hsm.deleteKeyDomain(1), 'KEY_DOMAIN_NOT_EMPTY');
      const st = await hsm.deleteKeyDomain(1, { dkekOnly: true });
      expect(st).toMatchObject({ domain: 1, total: 1, outstanding: 1 });
      await expect(hsm.wrapKey(k.keyRef)).rejects.toMatchObject({ code: 'DKEK_INCOMPLETE' });
      // the same share again (a new DKEK ceremony: the session forgot the old one)
      await hsm.importDkekShare(s1, { domain: 1 });
      expect(toHex((await hsm.wrapKey(k.keyRef)).subarray(0, 8))).toBe(toHex(keyCheckValue(s1)));
      await hsm.deleteKey(k.keyRef);
      expect(await hsm.deleteKeyDomain(1)).toBeUndefined();
      expect((await hsm.listKeyDomains()).domains.map((x) => x.domain)).toEqual([0]);
    });

    it('a device without key domains: one slot, domain 0 as before, other domains out of range', async () => {
      const { hsm, card } = await h().fresh();
      await hsm.initialize({ soPin: SO_PIN, userPin: PIN, dkekShares: 1 });
      await hsm.importDkekShare(randomBytes(32));
      await hsm.verifyPin(PIN);
      const all = await hsm.listKeyDomains();
      expect([all.slots, all.domains.map((x) => x.domain)]).toEqual([1, [0]]);
      await refusedUnchanged({ hsm, card }, () => hsm.createKeyDomain(1, 1), 'KEY_DOMAIN_OUT_OF_RANGE');
      const k = await hsm.generateKeyPair({ type: 'ec', curve: 'P-256', label: 'legacy' });
      expect((await hsm.keyInfo(k.keyRef)).domain).toBeUndefined();
    });
  });
}
