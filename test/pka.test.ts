import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { RecordingTransport } from '../src/apdu/transcript.js';
import { decodeCvc, decodePkaFile, encodePkaFile } from '../src/pkcs15/index.js';
import { SmartCardHsm } from '../src/sc-hsm/session.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { concat } from '../src/util/bytes.js';
import { tlv } from '../src/util/tlv.js';
import { rejection } from './helpers/fixtures.js';
import { custodian, PIN, rogueIssuer, SO, target } from './helpers/pka.js';

describe('public key authentication (n-of-m)', () => {
  it('registers two custodians, then 2-of-2 authenticate with their own tokens and the device is usable', async () => {
    const { hsm } = await target(2, 2);
    const a = await custodian();
    const b = await custodian('rsa');
    expect(await hsm.pkaStatus()).toEqual({ total: 2, missing: 2, required: 2, authenticated: 0 });
    const r1 = await hsm.pkaRegister(a.file);
    expect(r1).toEqual({ chr: a.chr, status: { total: 2, missing: 1, required: 2, authenticated: 0 } });
    await hsm.pkaRegister(b.file);
    expect((await hsm.pkaSlots()).map((s) => s.chr)).toEqual([a.chr, b.chr]);
    const st0 = await hsm.status();
    expect(st0.pka).toEqual({ total: 2, missing: 0, required: 2, authenticated: 0 });
    expect(st0.userPin.verified).toBe(false);
    // no key operation before the custodians
    expect((await rejection(hsm.generateKeyPair({ type: 'ec', curve: 'secp256r1', label: 'x' }))).code).toBe(
      'SECURITY_STATUS',
    );
    // the PIN does not replace them
    expect((await rejection(hsm.verifyPin(PIN))).code).toBe('CONDITIONS_NOT_SATISFIED');
    const c = await hsm.pkaChallenge();
    expect(c.challenge.length).toBe(8);
    const answers = [await a.hsm.pkaRespond(a.keyRef, c), await b.hsm.pkaRespond(b.keyRef, c)];
    const one = await hsm.pkaAuthenticate([answers[0]!]);
    expect(one.authenticated).toBe(1);
    expect((await rejection(hsm.generateKeyPair({ type: 'ec', curve: 'secp256r1', label: 'x' }))).code).toBe(
      'SECURITY_STATUS',
    );
    const st = await hsm.pkaAuthenticate(answers);
    expect(st).toEqual({ total: 2, missing: 0, required: 2, authenticated: 2 });
    expect((await hsm.pkaSlots()).every((s) => s.authenticated)).toBe(true);
    await hsm.generateKeyPair({ type: 'ec', curve: 'secp256r1', label: 'after-pka' });
    expect((await hsm.status()).userPin.verified).toBe(true);
    // the security status lives in the session: a SELECT (logout) drops it
    await hsm.logout();
    expect((await hsm.pkaStatus())?.authenticated).toBe(0);
    expect((await rejection(hsm.generateKeyPair({ type: 'ec', curve: 'secp256r1', label: 'y' }))).code).toBe(
      'SECURITY_STATUS',
    );
  });

  it('combined (--pka-and-pin): the PIN and M custodians are both needed', async () => {
    const { hsm } = await target(1, 1, true);
    expect(hsm.info.options & 0x0010).toBe(0x0010);
    const a = await custodian();
    await hsm.pkaRegister(a.file);
    await hsm.verifyPin(PIN);
    expect((await rejection(hsm.generateKeyPair({ type: 'ec', curve: 'secp256r1', label: 'x' }))).code).toBe(
      'SECURITY_STATUS',
    );
    await hsm.pkaAuthenticate([await a.hsm.pkaRespond(a.keyRef, await hsm.pkaChallenge())]);
    await hsm.generateKeyPair({ type: 'ec', curve: 'secp256r1', label: 'both' });
  });

  it('refuses an answer to a stale challenge (a newer GET CHALLENGE replaced it)', async () => {
    const { hsm } = await target(1, 1);
    const a = await custodian();
    await hsm.pkaRegister(a.file);
    const old = await hsm.pkaChallenge();
    const stale = await a.hsm.pkaRespond(a.keyRef, old);
    await hsm.pkaChallenge();
    const e = await rejection(hsm.pkaAuthenticate([stale]));
    expect(e.code).toBe('PKA_AUTH_FAILED');
    expect(e.sw).toBe(0x6300);
    expect((await hsm.pkaStatus())?.authenticated).toBe(0);
  });

  it('refuses a wrong custodian signature (another key, or the answer for another device)', async () => {
    const { hsm } = await target(2, 1);
    const a = await custodian();
    const b = await custodian();
    await hsm.pkaRegister(a.file);
    const c = await hsm.pkaChallenge();
    // b is not registered
    const byB = await b.hsm.pkaRespond(b.keyRef, c);
    expect((await rejection(hsm.pkaAuthenticate([byB]))).code).toBe('PKA_AUTH_FAILED');
    // b's signature under a's name
    expect((await rejection(hsm.pkaAuthenticate([{ chr: a.chr, signature: byB.signature }]))).code).toBe(
      'PKA_AUTH_FAILED',
    );
    // a's signature over the challenge, but for another device CHR
    const other = await a.hsm.pkaRespond(a.keyRef, { ...c, deviceChr: 'UTVH000000100000' });
    expect((await rejection(hsm.pkaAuthenticate([other]))).code).toBe('PKA_AUTH_FAILED');
    // the pending challenge still takes the right answer
    const st = await hsm.pkaAuthenticate([await a.hsm.pkaRespond(a.keyRef, c)]);
    expect(st.authenticated).toBe(1);
  });

  it('refuses a chain that does not end at the device root, before the request is sent', async () => {
    const { hsm, card } = await target(1, 1);
    const a = await custodian();
    const f = decodePkaFile(a.file);
    // a DICA of our own making under an unknown root
    const rogue = rogueIssuer(f.issuer.chr);
    const bad = tlv(0x30, f.request, f.device.raw, rogue);
    const before = card.serialize();
    const e = await rejection(hsm.pkaRegister(bad));
    expect(e.code).toBe('PKA_CHAIN_UNTRUSTED');
    expect(card.serialize()).toBe(before);
    expect((await hsm.pkaStatus())?.missing).toBe(1);
    // a device certificate whose signature is damaged: the card refuses it (PSO VERIFY CERTIFICATE)
    const dev = f.device.raw.slice();
    dev[dev.length - 3]! ^= 0x01;
    const e2 = await rejection(hsm.pkaRegister(tlv(0x30, f.request, dev, f.issuer.raw)));
    expect(e2.code).toBe('PKA_CHAIN_UNTRUSTED');
    expect(e2.sw).toBe(0x6a80);
    expect(card.serialize()).toBe(before);
  });

  it('refuses the same key twice and a key beyond N, sending no registration', async () => {
    const { hsm } = await target(1, 1);
    const a = await custodian();
    const b = await custodian();
    await hsm.pkaRegister(a.file);
    expect((await rejection(hsm.pkaRegister(a.file))).code).toBe('PKA_KEY_REGISTERED');
    expect((await rejection(hsm.pkaRegister(b.file))).code).toBe('PKA_KEY_REGISTERED');
    const { hsm: t2 } = await target(2, 1);
    await t2.pkaRegister(a.file);
    expect((await rejection(t2.pkaRegister(a.file))).code).toBe('PKA_KEY_REGISTERED');
  });

  it('reads the new format (06 OID, 61 DICA, 62 device, 63 request) as the old', async () => {
    const { hsm } = await target(1, 1);
    const a = await custodian();
    const f = decodePkaFile(a.file);
    const oid = Uint8Array.of(0x2b, 0x06, 0x01, 0x04, 0x01, 0x81, 0xc3, 0x1f, 0x04, 0x03, 0x01);
    const nf = tlv(
      0x30,
      tlv(0x06, oid),
      tlv(0x61, f.issuer.raw),
      tlv(0x62, f.device.raw),
      tlv(0x63, f.request),
    );
    expect(decodePkaFile(nf).format).toBe('new');
    expect((await hsm.pkaRegister(nf)).chr).toBe(a.chr);
  });

  it('refuses damaged files on the host with INVALID_PKA_FILE', async () => {
    const a = await custodian();
    const f = decodePkaFile(a.file);
    for (const bad of [
      new Uint8Array(0),
      Uint8Array.of(0x30, 0x00),
      concat(a.file, Uint8Array.of(0)),
      a.file.subarray(0, a.file.length - 1),
      tlv(0x30, f.request, f.issuer.raw, f.device.raw),
      tlv(0x30, f.device.raw, f.request, f.issuer.raw),
    ]) {
      expect(() => decodePkaFile(bad), `${bad.length}`).toThrow(
        expect.objectContaining({ code: 'INVALID_PKA_FILE' }),
      );
    }
  });

  it('a device without PKA says so; status carries no pka and transportPin false', async () => {
    const hsm = await SmartCardHsm.open(new VirtualSmartCardHsm());
    await hsm.initialize({ soPin: SO, userPin: PIN });
    const st = await hsm.status();
    expect(st.pka).toBeUndefined();
    expect(st.transportPin).toBe(false);
    const a = await custodian();
    expect((await rejection(hsm.pkaRegister(a.file))).code).toBe('PKA_NOT_CONFIGURED');
    expect((await rejection(hsm.pkaChallenge())).code).toBe('PKA_NOT_CONFIGURED');
  });

  it('exports a key of ours in sc-hsm-tool format: 30 { CE<ref>, EF 2F02 }', async () => {
    const a = await custodian();
    const ce = await a.hsm.files.read(0xce00 | a.keyRef);
    const ef = await a.hsm.files.read(0x2f02);
    expect(a.file).toEqual(tlv(0x30, ce, ef));
    expect(decodeCvc(decodePkaFile(a.file).device.raw).chr).toBe(await a.hsm.deviceChr());
  });
});

describe('transport PIN (option 0002) in the library', () => {
  it('VERIFY is refused with 69 84 until changePin, which does the first change in one session on the wire', async () => {
    const card = new VirtualSmartCardHsm();
    const init = await SmartCardHsm.open(card);
    await init.initialize({ soPin: SO, userPin: PIN, transportPin: true, label: 'ignored' });
    expect(init.info.options & 0x0002).toBe(0x0002);
    const st = await init.status();
    expect(st.transportPin).toBe(true);
    expect(st.userPin.transportPin).toBe(true);
    expect(st.label).toBeUndefined();
    const e = await rejection(init.verifyPin(PIN));
    expect(e.code).toBe('TRANSPORT_PIN_ACTIVE');
    expect(e.sw).toBe(0x6984);
    // a new session (a new SELECT), recorded: SELECT, the free query (6984), CHANGE REFERENCE DATA
    const rec = new RecordingTransport(card);
    const hsm = await SmartCardHsm.open(rec);
    // the card does not report a transport PIN's tries: without force nothing is sent
    const unsure = await rejection(hsm.changePin(PIN, '123456'));
    expect(unsure.code).toBe('PIN_TRIES_LOW');
    expect(unsure.message).toContain('does not report how many tries the transport PIN has left');
    expect(rec.lines.filter((l) => l.startsWith('=> 0024'))).toHaveLength(0);
    rec.lines.length = 0;
    await hsm.changePin(PIN, '123456', { force: true });
    const wire = rec.lines.filter((l) => l.startsWith('=>') || l.startsWith('<='));
    expect(wire.map((l) => l.slice(0, 11))).toEqual(['=> 00200081', '<= 6984', '=> 00240081', '<= 9000']);
    expect(wire.join('\n')).not.toContain('313233343536');
    // the change logged the user in; no reset, no second SELECT was needed
    await hsm.generateKeyPair({ type: 'ec', curve: 'secp256r1', label: 'after-transport' });
    expect((await hsm.status()).transportPin).toBe(false);
    // a wrong transport PIN costs a try, and the mode stays
    const card2 = new VirtualSmartCardHsm();
    const h2 = await SmartCardHsm.open(card2);
    await h2.initialize({ soPin: SO, userPin: PIN, transportPin: true });
    expect((await rejection(h2.changePin('000000', '123456', { force: true }))).code).toBe('WRONG_PIN');
    expect((await h2.status()).transportPin).toBe(true);
    // the next try is refused again without force: the host cannot know it is not the last one
    expect((await rejection(h2.changePin('000001', '123456'))).code).toBe('PIN_TRIES_LOW');
    // a new PIN equal to the transport PIN is refused on the host
    const same = await rejection(h2.changePin(PIN, PIN, { force: true }));
    expect(same.code).toBe('INVALID_PIN');
    expect((await h2.status()).transportPin).toBe(true);
  });
});

describe('export files in fixtures/pka (fixtures/pka/README.md)', () => {
  it("sc-hsm-tool's export and ours register on a virtual card and re-encode to the same bytes", async () => {
    const { hsm } = await target(2, 2);
    for (const name of ['opensc-export.pka', 'sc-hsm-ts-export.pka']) {
      const bytes = new Uint8Array(readFileSync(new URL(`../fixtures/pka/${name}`, import.meta.url)));
      const f = decodePkaFile(bytes);
      expect(f.format).toBe('old');
      expect(encodePkaFile(f.request, concat(f.device.raw, f.issuer.raw))).toEqual(bytes);
      expect((await hsm.pkaRegister(bytes)).chr).toBe(f.decoded.certificate.chr);
    }
    expect((await hsm.pkaStatus())?.missing).toBe(0);
  });
});
