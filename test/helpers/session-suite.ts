/**
 * The session test suite, run unchanged over every transport (guide/style.md lesson 6): in-process
 * against the virtual card (test/session.test.ts) and through pcscd → vpcd → the same virtual card
 * (test/session.pcsc.test.ts).
 */
import {
  constants,
  createCipheriv,
  createECDH,
  createPublicKey,
  publicEncrypt,
  randomBytes,
  verify,
} from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { aesCmac, keyCheckValue } from '../../src/dkek/index.js';
import { ScHsmError } from '../../src/errors.js';
import type { SmartCardHsm } from '../../src/sc-hsm/session.js';
import type { VirtualSmartCardHsm } from '../../src/sim/index.js';
import { toHex } from '../../src/util/bytes.js';
import { CURVES, type CurveName } from '../../src/util/curves.js';

export const SO_PIN = '3537363231383830';
export const PIN = '648219';

export interface Device {
  hsm: SmartCardHsm;
  card: VirtualSmartCardHsm;
}

export interface Harness {
  /** A new, uninitialized virtual device with a session opened on it. */
  fresh(): Promise<Device>;
}

/** Initializes a device with one DKEK share, imports it and verifies the user PIN. */
export async function ready(d: Device, share = new Uint8Array(32).fill(0x11)): Promise<Device> {
  await d.hsm.initialize({ soPin: SO_PIN, userPin: PIN, label: 'MTG-CARA-HSM', dkekShares: 1 });
  await d.hsm.importDkekShare(share);
  await d.hsm.verifyPin(PIN);
  return d;
}

function spkiKey(spki: Uint8Array) {
  return createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
}

/** Asserts that `fn` rejects with an ScHsmError of `code` and that nothing was sent to the card. */
async function rejectsWithoutApdu(d: Device, fn: () => Promise<unknown>, code: string): Promise<ScHsmError> {
  const before = d.hsm.apduCount;
  const state = d.card.serialize();
  const err = await fn().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ScHsmError);
  expect((err as ScHsmError).code).toBe(code);
  expect(d.hsm.apduCount).toBe(before);
  expect(d.card.serialize()).toBe(state);
  return err as ScHsmError;
}

export function defineSessionSuite(name: string, harness: () => Harness): void {
  describe(`session over ${name}`, () => {
    const h = () => harness();

    it('selects the applet and reads version and options from FCP tag 85', async () => {
      const { hsm } = await h().fresh();
      expect(hsm.info.version.major).toBeGreaterThanOrEqual(2);
      expect(hsm.info.fcp[0]).toBe(0x62);
    });

    it('reports an uninitialized device without costing anything', async () => {
      const { hsm } = await h().fresh();
      const st = await hsm.status();
      expect(st.initialized).toBe(false);
      expect(st.dkek).toBeUndefined();
      expect(st.serial).toMatch(/^[A-Z]{2}/);
      expect(st.deviceChr?.slice(0, -5)).toBe(st.serial);
    });

    it('rejects a malformed SO-PIN, user PIN, retry counter and label on the host, card untouched', async () => {
      const d = await h().fresh();
      const init = (o: Partial<Parameters<SmartCardHsm['initialize']>[0]>) => () =>
        d.hsm.initialize({ soPin: SO_PIN, userPin: PIN, ...o });
      for (const soPin of ['353736323138383', '35373632313838300', '353736323138383G', '57621880', '']) {
        const e = await rejectsWithoutApdu(d, init({ soPin }), 'INVALID_SO_PIN');
        expect(e.message).not.toContain(soPin || '<none>');
        expect(e.message).toMatch(/16 hexadecimal/);
      }
      await rejectsWithoutApdu(d, init({ userPin: '12345' }), 'INVALID_PIN');
      await rejectsWithoutApdu(d, init({ userPin: '1234567890123456' }), 'INVALID_PIN');
      await rejectsWithoutApdu(d, init({ retryCounter: 4 }), 'INVALID_ARGUMENT');
      await rejectsWithoutApdu(d, init({ userPin: '1234567', retryCounter: 6 }), 'INVALID_ARGUMENT');
      await rejectsWithoutApdu(d, init({ label: 'x'.repeat(33) }), 'INVALID_ARGUMENT');
      await rejectsWithoutApdu(d, init({ dkekShares: 256 }), 'INVALID_ARGUMENT');
      await rejectsWithoutApdu(d, () => d.hsm.verifyPin('123'), 'INVALID_PIN');
      await rejectsWithoutApdu(d, () => d.hsm.unblockPin({ soPin: 'nothex', newPin: PIN }), 'INVALID_SO_PIN');
    });

    it('initializes with label and DKEK share count; status shows what sc-hsm-tool shows', async () => {
      const { hsm } = await h().fresh();
      await hsm.initialize({ soPin: SO_PIN, userPin: PIN, label: 'MTG-CARA-HSM', dkekShares: 1 });
      const st = await hsm.status();
      expect(st.initialized).toBe(true);
      expect(st.label).toBe('MTG-CARA-HSM');
      expect(st.userPin.triesLeft === 3 || st.userPin.verified).toBe(true);
      expect(st.soPin.triesLeft).toBe(15);
      expect(st.dkek).toMatchObject({ total: 1, outstanding: 1 });
      expect(st.options & 0x0001).toBe(1);
    });

    it('imports a DKEK share: the KCV is SHA-256(DKEK)[0..8]', async () => {
      const { hsm } = await h().fresh();
      await hsm.initialize({ soPin: SO_PIN, userPin: PIN, dkekShares: 2 });
      const a = randomBytes(32);
      const b = randomBytes(32);
      const s1 = await hsm.importDkekShare(a);
      expect(s1).toMatchObject({ total: 2, outstanding: 1 });
      const s2 = await hsm.importDkekShare(b);
      expect(s2.outstanding).toBe(0);
      const x = new Uint8Array(32).map((_, i) => a[i]! ^ b[i]!);
      expect(toHex(s2.kcv)).toBe(toHex(keyCheckValue(x)));
      expect(toHex((await hsm.dkekStatus())!.kcv)).toBe(toHex(s2.kcv));
      await expect(hsm.importDkekShare(new Uint8Array(31))).rejects.toMatchObject({
        code: 'INVALID_ARGUMENT',
      });
    });

    it('counts wrong user PINs down, refuses the last try unless forced, blocks, and unblocks with the SO-PIN', async () => {
      const d = await h().fresh();
      const { hsm } = d;
      await hsm.initialize({ soPin: SO_PIN, userPin: PIN, dkekShares: 1 });
      await hsm.logout();
      await expect(hsm.verifyPin('000000')).rejects.toMatchObject({ code: 'WRONG_PIN', triesLeft: 2 });
      await expect(hsm.verifyPin('000000')).rejects.toMatchObject({ code: 'WRONG_PIN', triesLeft: 1 });
      expect((await hsm.status()).userPin.triesLeft).toBe(1);
      // the last try is not spent without force: only the (free) status query is sent
      await expect(hsm.verifyPin('000000')).rejects.toMatchObject({ code: 'PIN_TRIES_LOW', triesLeft: 1 });
      expect((await hsm.pinStatus()).triesLeft).toBe(1);
      await expect(hsm.verifyPin('000000', { force: true })).rejects.toMatchObject({ code: 'PIN_BLOCKED' });
      const st = await hsm.status();
      expect(st.userPin.blocked).toBe(true);
      await expect(hsm.verifyPin(PIN, { force: true })).rejects.toMatchObject({ code: 'PIN_BLOCKED' });
      // wrong SO-PIN costs an SO try
      await expect(hsm.unblockPin({ soPin: '0102030405060708', newPin: '654321' })).rejects.toMatchObject({
        code: 'WRONG_PIN',
        triesLeft: 14,
      });
      expect((await hsm.status()).soPin.triesLeft).toBe(14);
      await hsm.unblockPin({ soPin: SO_PIN, newPin: '654321' });
      await hsm.verifyPin('654321');
      expect((await hsm.status()).userPin.verified).toBe(true);
      await hsm.changePin('654321', PIN);
      await hsm.logout();
      await hsm.verifyPin(PIN);
    });

    it('refuses a PIN with one try left before sending it', async () => {
      const { hsm } = await h().fresh();
      await hsm.initialize({ soPin: SO_PIN, userPin: PIN });
      await hsm.logout();
      await expect(hsm.verifyPin('000000')).rejects.toMatchObject({ code: 'WRONG_PIN' });
      await expect(hsm.verifyPin('000000')).rejects.toMatchObject({ code: 'WRONG_PIN', triesLeft: 1 });
      await expect(hsm.verifyPin(PIN)).rejects.toMatchObject({ code: 'PIN_TRIES_LOW' });
      expect((await hsm.pinStatus()).triesLeft).toBe(1);
      await hsm.verifyPin(PIN, { force: true });
      expect((await hsm.pinStatus()).state).toBe('verified');
    });

    it('unblocks with the SO-PIN resetting the counter only', async () => {
      const { hsm } = await h().fresh();
      await hsm.initialize({ soPin: SO_PIN, userPin: PIN });
      await hsm.logout();
      await expect(hsm.verifyPin('000000')).rejects.toMatchObject({ code: 'WRONG_PIN', triesLeft: 2 });
      await hsm.unblockPin({ soPin: SO_PIN });
      expect((await hsm.pinStatus()).triesLeft).toBe(3);
    });

    it('changes the SO-PIN; a wrong SO-PIN counts down and is reported', async () => {
      const { hsm } = await h().fresh();
      await hsm.initialize({ soPin: SO_PIN, userPin: PIN });
      await expect(hsm.changeSoPin('0000000000000000', '0102030405060708')).rejects.toMatchObject({
        code: 'WRONG_PIN',
        triesLeft: 14,
      });
      await hsm.changeSoPin(SO_PIN, '0102030405060708');
      expect((await hsm.status()).soPin.triesLeft).toBe(15);
      await hsm.unblockPin({ soPin: '0102030405060708' });
      await expect(hsm.unblockPin({ soPin: SO_PIN })).rejects.toMatchObject({ code: 'WRONG_PIN' });
    });

    it('re-initialization needs the current SO-PIN and wipes every key', async () => {
      const d = await ready(await h().fresh());
      const { hsm } = d;
      await hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'k1' });
      await expect(
        hsm.initialize({ soPin: '0000000000000000', userPin: PIN, dkekShares: 1 }),
      ).rejects.toMatchObject({ code: 'WRONG_PIN', triesLeft: 14 });
      expect(await hsm.listKeys()).toHaveLength(1);
      await hsm.initialize({ soPin: SO_PIN, userPin: PIN, dkekShares: 1, label: 'again' });
      await hsm.verifyPin(PIN);
      expect(await hsm.listKeys()).toHaveLength(0);
      const st = await hsm.status();
      expect(st.label).toBe('again');
      expect(st.dkek).toMatchObject({ total: 1, outstanding: 1 });
      expect((await hsm.deviceCertificates()).device.chr).toBe(st.deviceChr);
    });

    it('generates EC keys on every supported curve; signatures verify with node:crypto', async () => {
      const { hsm } = await ready(await h().fresh());
      const data = new TextEncoder().encode('hello world');
      for (const c of CURVES) {
        const k = await hsm.generateKeyPair({ type: 'ec', curve: c.name, label: `ec-${c.name}` });
        const pub = spkiKey(k.publicKey);
        expect(pub.asymmetricKeyDetails?.namedCurve).toBe(c.name);
        const sig = await hsm.sign(k.keyRef, 'ECDSA-SHA256', data);
        expect(verify('sha256', data, pub, Buffer.from(sig))).toBe(true);
        const raw = await hsm.sign(k.keyRef, 'ECDSA-SHA256', data, { format: 'raw' });
        expect(raw.length).toBe(2 * Math.ceil(c.bits / 8));
        expect(verify('sha256', data, { key: pub, dsaEncoding: 'ieee-p1363' }, Buffer.from(raw))).toBe(true);
      }
      const keys = await hsm.listKeys();
      expect(keys.map((k) => k.curve)).toEqual(CURVES.map((c) => c.name));
      expect(keys.every((k) => k.type === 'ec' && k.label === `ec-${k.curve}`)).toBe(true);
    });

    it('generates RSA keys of every size; PKCS#1 v1.5, PSS and raw signatures verify', async () => {
      const { hsm } = await ready(await h().fresh());
      const data = new TextEncoder().encode('to be signed');
      for (const bits of [1024, 1536, 2048, 3072, 4096]) {
        const k = await hsm.generateKeyPair({ type: 'rsa', bits, label: `rsa-${bits}` });
        const pub = spkiKey(k.publicKey);
        expect(pub.asymmetricKeyDetails?.modulusLength).toBe(bits);
        const s1 = await hsm.sign(k.keyRef, 'RSA-PKCS1-SHA256', data);
        expect(s1.length).toBe(bits / 8);
        expect(verify('sha256', data, pub, Buffer.from(s1))).toBe(true);
        const s2 = await hsm.sign(k.keyRef, 'RSA-PSS-SHA256', data);
        expect(
          verify(
            'sha256',
            data,
            { key: pub, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 },
            Buffer.from(s2),
          ),
        ).toBe(true);
      }
      const keys = await hsm.listKeys();
      expect(keys.map((k) => [k.type, k.bits])).toEqual([
        ['rsa', 1024],
        ['rsa', 1536],
        ['rsa', 2048],
        ['rsa', 3072],
        ['rsa', 4096],
      ]);
    });

    it('writes the PKCS#15 description OpenSC expects and lists key reference and ID side by side', async () => {
      const { hsm } = await ready(await h().fresh());
      const k = await hsm.generateKeyPair({
        type: 'rsa',
        bits: 2048,
        label: 'cara-rsa-ca',
        id: Uint8Array.of(1),
      });
      const e = await hsm.generateKeyPair({ type: 'ec', curve: 'P-256', label: 'cara-ec-ca' });
      expect(k.keyRef).toBe(1);
      expect(e.keyRef).toBe(2);
      const prkd = await hsm.readFile(0xc401);
      // RSA: 30 LL { 30 { 0C label, 03 02 06 C0, 04 01 01 }, 30 { 04 01 01, 03 02 04 70, 02 01 01 }, A1 { … 02 02 08 00 } }
      expect(toHex(prkd)).toBe(
        '302e' +
          '3014' +
          '0c0b' +
          toHex(new TextEncoder().encode('cara-rsa-ca')) +
          '030206c0' +
          '040101' +
          '300a' +
          '040101' +
          '03020470' +
          '020101' +
          'a10a3008' +
          '30020400' +
          '02020800',
      );
      const keys = await hsm.listKeys();
      expect(keys).toHaveLength(2);
      expect(keys[0]).toMatchObject({
        keyRef: 1,
        label: 'cara-rsa-ca',
        type: 'rsa',
        bits: 2048,
        usage: 0x0e,
        hasCertificate: false,
      });
      expect(toHex(keys[0]!.id)).toBe('01');
      expect(keys[1]).toMatchObject({
        keyRef: 2,
        label: 'cara-ec-ca',
        type: 'ec',
        curve: 'prime256v1',
        usage: 0x10c,
      });
      expect(keys[1]!.id.length).toBe(20);
      expect(toHex(keys[1]!.publicKey!)).toBe(toHex(e.publicKey));
      await expect(
        hsm.generateKeyPair({ type: 'ec', curve: 'P-256', label: 'x', keyRef: 1 }),
      ).rejects.toMatchObject({
        code: 'KEY_REF_OCCUPIED',
      });
      // P-224 is not a curve of the card: the cast lets the test pass what the type refuses
      await expect(
        hsm.generateKeyPair({ type: 'ec', curve: 'P-224' as CurveName, label: 'x' }),
      ).rejects.toMatchObject({
        code: 'INVALID_ARGUMENT',
      });
      await expect(hsm.generateKeyPair({ type: 'rsa', bits: 2000, label: 'x' })).rejects.toMatchObject({
        code: 'INVALID_ARGUMENT',
      });
    });

    it('needs the user PIN for key operations', async () => {
      const { hsm } = await ready(await h().fresh());
      const k = await hsm.generateKeyPair({ type: 'ec', curve: 'P-256', label: 'k' });
      await hsm.listKeys();
      await hsm.logout();
      await expect(hsm.sign(k.keyRef, 'ECDSA-SHA256', new Uint8Array(4))).rejects.toMatchObject({
        code: 'SECURITY_STATUS',
      });
      await expect(hsm.generateKeyPair({ type: 'ec', curve: 'P-256', label: 'k2' })).rejects.toMatchObject({
        code: 'SECURITY_STATUS',
      });
    });

    it('decrypts RSA PKCS#1 and OAEP cryptograms and derives ECDH secrets', async () => {
      const { hsm } = await ready(await h().fresh());
      const r = await hsm.generateKeyPair({ type: 'rsa', bits: 2048, label: 'dec' });
      const msg = Buffer.from('session key material');
      const pub = spkiKey(r.publicKey);
      const c1 = publicEncrypt({ key: pub, padding: constants.RSA_PKCS1_PADDING }, msg);
      expect(Buffer.from(await hsm.decrypt(r.keyRef, 'RSA-PKCS1', c1)).equals(msg)).toBe(true);
      const c2 = publicEncrypt(
        { key: pub, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
        msg,
      );
      expect(Buffer.from(await hsm.decrypt(r.keyRef, 'RSA-OAEP-SHA256', c2)).equals(msg)).toBe(true);
      const c3 = publicEncrypt(
        { key: pub, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' },
        msg,
      );
      expect(Buffer.from(await hsm.decrypt(r.keyRef, 'RSA-OAEP-SHA1', c3)).equals(msg)).toBe(true);
      await expect(hsm.decrypt(r.keyRef, 'RSA-OAEP-SHA256', c1)).rejects.toMatchObject({
        code: 'INCORRECT_DATA',
      });

      const e = await hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'ecdh' });
      const peer = createECDH('prime256v1');
      peer.generateKeys();
      const secret = await hsm.ecdh(e.keyRef, peer.getPublicKey());
      const point = Buffer.from(e.publicKey.subarray(e.publicKey.length - 65));
      expect(toHex(secret)).toBe(peer.computeSecret(point).toString('hex'));
    });

    it('generates AES keys and lists them', async () => {
      const { hsm } = await ready(await h().fresh());
      const a = await hsm.generateAesKey({ bits: 256, label: 'aes' });
      const keys = await hsm.listKeys();
      expect(keys.find((k) => k.keyRef === a.keyRef)).toMatchObject({ type: 'aes', bits: 256, label: 'aes' });
    });

    it('AES-CBC with a caller IV and PKCS#7, CMAC and derivation with an AES key: standard results (node:crypto)', async () => {
      const d = await ready(await h().fresh());
      const { hsm } = d;
      const a = await hsm.generateAesKey({ bits: 256, label: 'aes-cbc' });
      const secret = Buffer.from(JSON.parse(d.card.serialize()).keys[String(a.keyRef)].secret, 'hex');
      const iv = new Uint8Array(randomBytes(16));
      // 2500 bytes: three APDUs, the chain carried across them
      for (const len of [0, 15, 16, 2500]) {
        const plain = new Uint8Array(randomBytes(len));
        const ct = await hsm.aesEncrypt(a.keyRef, plain, { iv });
        const c = createCipheriv('aes-256-cbc', secret, iv);
        expect(toHex(ct)).toBe(toHex(Buffer.concat([c.update(plain), c.final()])));
        expect(toHex(await hsm.aesDecrypt(a.keyRef, ct, { iv }))).toBe(toHex(plain));
      }
      const msg = new Uint8Array(randomBytes(40));
      expect(toHex(await hsm.aesCmac(a.keyRef, msg))).toBe(toHex(aesCmac(secret, msg)));
      const k1 = await hsm.aesDerive(a.keyRef, Uint8Array.of(1, 2, 3));
      expect(k1).toHaveLength(32);
      expect(toHex(await hsm.aesDerive(a.keyRef, Uint8Array.of(1, 2, 3)))).toBe(toHex(k1));
      const ec = await hsm.generateKeyPair({ type: 'ec', curve: 'P-256', label: 'not-aes' });
      await hsm.keyInfo(ec.keyRef); // known to the session: refused without a CIPHER
      await rejectsWithoutApdu(d, () => hsm.aesEncrypt(ec.keyRef, msg, { iv }), 'INVALID_ARGUMENT');
      await rejectsWithoutApdu(
        d,
        () => hsm.aesEncrypt(a.keyRef, msg, { iv: iv.subarray(0, 8) }),
        'INVALID_ARGUMENT',
      );
    });

    it('deletes keys: gone from the list, a second delete is KEY_NOT_FOUND', async () => {
      const { hsm } = await ready(await h().fresh());
      const k = await hsm.generateKeyPair({ type: 'ec', curve: 'P-256', label: 'gone' });
      await hsm.deleteKey(k.keyRef);
      expect(await hsm.listKeys()).toHaveLength(0);
      await expect(hsm.deleteKey(k.keyRef)).rejects.toMatchObject({ code: 'KEY_NOT_FOUND' });
      await expect(hsm.sign(k.keyRef, 'ECDSA', new Uint8Array(32))).rejects.toMatchObject({
        code: 'KEY_NOT_FOUND',
      });
      await expect(hsm.deleteKey(0)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    });

    it('stores public and PIN-protected data objects, CA certificates, and returns challenges', async () => {
      const { hsm } = await ready(await h().fresh());
      const pub = await hsm.writeDataObject({
        label: 'mydata',
        applicationName: 'myapp',
        data: new TextEncoder().encode('public data'),
      });
      const priv = await hsm.writeDataObject({
        label: 'secret',
        data: Uint8Array.of(1, 2, 3),
        private: true,
      });
      expect(pub.fid).toBe(0xcf00);
      expect(priv.fid).toBe(0xcd01);
      const list = await hsm.listDataObjects();
      expect(list.map((d) => [d.label, d.private, d.applicationName])).toEqual([
        ['mydata', false, 'myapp'],
        ['secret', true, undefined],
      ]);
      expect(new TextDecoder().decode(await hsm.readDataObject(0))).toBe('public data');
      await hsm.logout();
      expect(new TextDecoder().decode(await hsm.readDataObject(0))).toBe('public data');
      await expect(hsm.readDataObject(1)).rejects.toMatchObject({ code: 'SECURITY_STATUS' });
      await hsm.verifyPin(PIN);
      expect(toHex(await hsm.readDataObject(1))).toBe('010203');
      await hsm.deleteDataObject(1);
      expect(await hsm.listDataObjects()).toHaveLength(1);
      const c1 = await hsm.getChallenge(16);
      const c2 = await hsm.getChallenge(2000);
      expect(c1.length).toBe(16);
      expect(c2.length).toBe(2000);
    });

    it('wraps a key, restores it on a second device with the same DKEK, refuses a different DKEK before any change', async () => {
      const share = randomBytes(32);
      const a = await ready(await h().fresh(), share);
      const k = await a.hsm.generateKeyPair({ type: 'ec', curve: 'brainpoolP256r1', label: 'backup-me' });
      const r = await a.hsm.generateKeyPair({ type: 'rsa', bits: 2048, label: 'rsa-backup' });
      const bin = await a.hsm.backupKey(k.keyRef);
      const rbin = await a.hsm.backupKey(r.keyRef);
      const blob = await a.hsm.wrapKey(k.keyRef);
      expect(toHex(blob.subarray(0, 8))).toBe(toHex(keyCheckValue(share)));

      const other = await ready(await h().fresh(), randomBytes(32));
      const before = other.card.serialize();
      await expect(other.hsm.restoreKey(bin, 5)).rejects.toMatchObject({ code: 'KCV_MISMATCH' });
      expect(other.card.serialize()).toBe(before);

      const b = await ready(await h().fresh(), share);
      await b.hsm.restoreKey(bin, 7);
      await b.hsm.restoreKey(rbin, 8);
      const keys = await b.hsm.listKeys();
      expect(keys.map((x) => [x.keyRef, x.label])).toEqual([
        [7, 'backup-me'],
        [8, 'rsa-backup'],
      ]);
      expect(toHex(keys[0]!.publicKey!)).toBe(toHex(k.publicKey));
      const data = new TextEncoder().encode('restored');
      const sig = await b.hsm.sign(7, 'ECDSA-SHA256', data);
      expect(verify('sha256', data, spkiKey(k.publicKey), Buffer.from(sig))).toBe(true);
      const rs = await b.hsm.sign(8, 'RSA-PKCS1-SHA256', data);
      expect(verify('sha256', data, spkiKey(r.publicKey), Buffer.from(rs))).toBe(true);
      await expect(b.hsm.restoreKey(bin, 7)).rejects.toMatchObject({ code: 'KEY_REF_OCCUPIED' });
      await b.hsm.restoreKey(bin, 7, { force: true });
      await expect(b.hsm.unwrapKey(9, blob.subarray(0, 20))).rejects.toMatchObject({
        code: 'INVALID_KEY_BLOB',
      });
      const tampered = blob.slice();
      tampered[tampered.length - 20]! ^= 1;
      await expect(b.hsm.unwrapKey(9, tampered)).rejects.toMatchObject({ code: 'MAC_INVALID' });
      expect((await b.hsm.listKeys()).map((x) => x.keyRef)).toEqual([7, 8]);
    });

    it('refuses new keys while DKEK shares are outstanding, as the card does', async () => {
      const { hsm } = await h().fresh();
      await hsm.initialize({ soPin: SO_PIN, userPin: PIN, dkekShares: 1 });
      await hsm.verifyPin(PIN);
      await expect(hsm.generateKeyPair({ type: 'ec', curve: 'P-256', label: 'early' })).rejects.toMatchObject(
        {
          code: 'DKEK_INCOMPLETE',
        },
      );
      await expect(hsm.generateAesKey({ bits: 128, label: 'early' })).rejects.toMatchObject({
        code: 'DKEK_INCOMPLETE',
      });
      await hsm.importDkekShare(randomBytes(32));
      await hsm.generateKeyPair({ type: 'ec', curve: 'P-256', label: 'now' });
      expect((await hsm.listKeys()).map((k) => k.label)).toEqual(['now']);
    });

    it('refuses to wrap without a complete DKEK', async () => {
      const { hsm } = await h().fresh();
      await hsm.initialize({ soPin: SO_PIN, userPin: PIN, dkekShares: 2 });
      await hsm.importDkekShare(randomBytes(32));
      await hsm.verifyPin(PIN);
      const st = await hsm.dkekStatus();
      expect(st?.outstanding).toBe(1);
      await expect(hsm.unwrapKey(1, new Uint8Array(64))).rejects.toMatchObject({ code: 'DKEK_INCOMPLETE' });
    });
  });
}
