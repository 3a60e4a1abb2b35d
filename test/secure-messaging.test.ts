/**
 * openSecureChannel on the virtual card in-process (spec §3.19, §3.20, §5.3): a whole session under
 * secure messaging (login, key generation, signature, session PIN), what its transcript shows, and
 * every failure as a typed error: a tampered or replayed answer, an answer out of sequence, a lost
 * answer, a device chain that does not verify, a card without the certified key.
 */
import { createPublicKey, verify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { FaultInjectingTransport } from '../src/apdu/fault.js';
import { RecordingTransport } from '../src/apdu/transcript.js';
import type { Transport } from '../src/apdu/transport.js';
import { SmartCardHsm } from '../src/sc-hsm/session.js';
import { secretMask } from '../src/sc-hsm/transcript-mask.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { toHex } from '../src/util/bytes.js';
import { deviceChainVerifier } from '../src/x509/index.js';
import { FAULT_COMBOS, rejection } from './helpers/fixtures.js';

const SO = '3537363231383830';
const PIN = '648219';
const virtualOk = () => ({ verifyChain: deviceChainVerifier({ acceptVirtual: true }) });

async function initialized(o: { sessionPin?: boolean } = {}): Promise<VirtualSmartCardHsm> {
  const card = new VirtualSmartCardHsm();
  const hsm = await SmartCardHsm.open(card);
  await hsm.initialize({ soPin: SO, userPin: PIN, ...(o.sessionPin && { sessionPin: true }) });
  await hsm.logout();
  return card;
}

/** Passes APDUs to the card; `answer` may change the n-th answer (1-based, counted from `arm`). */
class Meddler implements Transport {
  readonly extendedLength = true;
  n = 0;
  sent = 0;
  answer?: (n: number, apdu: Uint8Array, card: VirtualSmartCardHsm) => Promise<Uint8Array> | undefined;
  constructor(readonly card: VirtualSmartCardHsm) {}
  arm(f: Meddler['answer']): void {
    this.n = 0;
    this.answer = f;
  }
  async transmit(apdu: Uint8Array): Promise<Uint8Array> {
    this.n++;
    const changed = this.answer?.(this.n, apdu, this.card);
    if (changed) return changed;
    this.sent++;
    return this.card.transmit(apdu);
  }
  async close(): Promise<void> {}
}

describe('a session under secure messaging', () => {
  it('login, key generation, signature; every APDU after GENERAL AUTHENTICATE protected', async () => {
    const card = await initialized();
    const rec = new RecordingTransport(card, undefined, secretMask);
    const hsm = await SmartCardHsm.open(rec);
    expect(hsm.secureChannel).toBe(false);
    await hsm.openSecureChannel(virtualOk());
    expect(hsm.secureChannel).toBe(true);
    // the card's copy of the SM keys (test access to its volatile state): never in the transcript
    const vol = (card as unknown as { vol: { sm: { kEnc: Uint8Array; kMac: Uint8Array } } }).vol;
    const smKeys = [toHex(vol.sm.kEnc), toHex(vol.sm.kMac)];
    const from = rec.lines.length;
    await hsm.verifyPin(PIN);
    const key = await hsm.generateKeyPair({ type: 'ec', curve: 'secp256r1', label: 'sm key' });
    const msg = new TextEncoder().encode('signed through secure messaging');
    const sig = await hsm.sign(key.keyRef, 'ECDSA-SHA256', msg);
    const pub = createPublicKey({ key: Buffer.from(key.publicKey), format: 'der', type: 'spki' });
    expect(verify('sha256', msg, { key: pub, dsaEncoding: 'der' }, sig)).toBe(true);
    expect((await hsm.status()).initialized).toBe(true);
    const commands = rec.lines.slice(from).filter((l) => l.startsWith('=> '));
    expect(commands.length).toBeGreaterThan(5);
    for (const c of commands) expect(c.slice(3, 5)).toMatch(/^(0c|8c)$/);
    const text = rec.lines.join('\n');
    for (const k of smKeys) expect(text).not.toContain(k);
    // the PIN is never in the transcript, neither plain (36 34 38 32 31 39) nor as a VERIFY field
    expect(text).not.toContain('363438323139');
    for (const l of commands.filter((c) => c.startsWith('=> 0c200081') && c.length > 20))
      expect(l.slice(13)).toMatch(/^(\*\*)+(00)?$/);
    await hsm.close();
    // closing ends the channel (its keys wiped)
    expect(hsm.secureChannel).toBe(false);
  });

  it('initialize inside SM: the INITIALIZE data (PIN, SO-PIN) is masked in the transcript', async () => {
    const card = new VirtualSmartCardHsm();
    const rec = new RecordingTransport(card, undefined, secretMask);
    const hsm = await SmartCardHsm.open(rec);
    await hsm.openSecureChannel(virtualOk());
    await hsm.initialize({ soPin: SO, userPin: PIN, label: 'sm' });
    const init = rec.lines.find((l) => l.startsWith('=> 8c50'))!;
    expect(init).toMatch(/^=> 8c500000[0-9a-f]{2}(\*\*)+00$/);
    await hsm.verifyPin(PIN);
    expect((await hsm.status()).label).toBe('sm');
  });

  it('session PIN: obtained in one secure session, used instead of the PIN in the next', async () => {
    const card = await initialized({ sessionPin: true });
    // two sessions on one card in a row (Meddler's close leaves the card in its reader)
    const a = await SmartCardHsm.open(new Meddler(card));
    await a.openSecureChannel(virtualOk());
    expect((await rejection(a.getSessionPin())).code).toBe('SECURITY_STATUS');
    await a.verifyPin(PIN);
    const sp = await a.getSessionPin();
    expect(sp.length).toBe(8);
    const key = await a.generateKeyPair({ type: 'ec', curve: 'secp256r1', label: 'k' });
    await a.close();

    const b = await SmartCardHsm.open(new Meddler(card));
    expect((await b.pinStatus()).state).toBe('not-verified');
    await b.openSecureChannel(virtualOk());
    await b.verifySessionPin(sp);
    expect((await b.pinStatus()).state).toBe('verified');
    expect((await b.sign(key.keyRef, 'ECDSA-SHA256', new Uint8Array(5))).length).toBeGreaterThan(60);
    // a wrong session PIN costs a user-PIN try, like any VERIFY
    await b.logout();
    const wrong = sp.slice();
    wrong[0]! ^= 1;
    const e = await rejection(b.verifySessionPin(wrong));
    expect(e.code).toBe('WRONG_PIN');
    expect(e.triesLeft).toBe(2);
  });

  it('session PIN: refused on the host without a secure channel, by the card without option 0004', async () => {
    const card = await initialized();
    const hsm = await SmartCardHsm.open(card);
    const before = hsm.channel.apduCount;
    expect((await rejection(hsm.getSessionPin())).code).toBe('INVALID_ARGUMENT');
    expect((await rejection(hsm.verifySessionPin(new Uint8Array(8)))).code).toBe('INVALID_ARGUMENT');
    expect(hsm.channel.apduCount).toBe(before);
    await hsm.openSecureChannel(virtualOk());
    expect((await rejection(hsm.verifySessionPin(new Uint8Array(3)))).code).toBe('INVALID_ARGUMENT');
    await hsm.verifyPin(PIN);
    expect((await rejection(hsm.getSessionPin())).code).toBe('NOT_SUPPORTED');
  });

  it('bad arguments: no verifier, twice', async () => {
    const hsm = await SmartCardHsm.open(await initialized());
    expect((await rejection(hsm.openSecureChannel(undefined as never))).code).toBe('INVALID_ARGUMENT');
    expect((await rejection(hsm.openSecureChannel({} as never))).code).toBe('INVALID_ARGUMENT');
    await hsm.openSecureChannel(virtualOk());
    expect((await rejection(hsm.openSecureChannel(virtualOk()))).code).toBe('INVALID_ARGUMENT');
    expect(hsm.secureChannel).toBe(true);
  });
});

describe('secure messaging failures end the channel with a typed error, nothing re-sent', () => {
  async function secured(): Promise<{ m: Meddler; hsm: SmartCardHsm }> {
    const m = new Meddler(await initialized());
    const hsm = await SmartCardHsm.open(m);
    await hsm.openSecureChannel(virtualOk());
    return { m, hsm };
  }

  async function endedForGood(hsm: SmartCardHsm, m: Meddler): Promise<void> {
    const sent = m.sent;
    const e = await rejection(hsm.pinStatus());
    expect(e.code).toBe('SECURE_MESSAGING');
    expect(e.message).toMatch(/ended.*nothing was sent/);
    expect(m.sent).toBe(sent);
    expect(hsm.secureChannel).toBe(false);
  }

  it('the fault-injecting transport alters an answer: the MAC catches it', async () => {
    const ft = new FaultInjectingTransport(await initialized());
    const hsm = await SmartCardHsm.open(ft);
    await hsm.openSecureChannel(virtualOk());
    ft.arm({ at: 2, kind: 'corrupted-response', delivered: true });
    const e = await rejection(hsm.verifyPin(PIN));
    expect(e.code).toBe('SECURE_MESSAGING');
    expect(e.message).toMatch(/MAC .*wrong/);
    const count = ft.count;
    expect((await rejection(hsm.status())).code).toBe('SECURE_MESSAGING');
    expect(ft.count).toBe(count);
  });

  it('a response whose MAC was altered', async () => {
    const { m, hsm } = await secured();
    m.arm((n, apdu, card) => {
      if (n !== 2) return undefined;
      return card.transmit(apdu).then((r) => {
        const t = r.slice();
        t[t.length - 3]! ^= 0x40; // the last MAC byte, before SW1 SW2
        return t;
      });
    });
    // verifyPin: 1 = status query, 2 = VERIFY with the PIN (the card verified it)
    const e = await rejection(hsm.verifyPin(PIN));
    expect(e.code).toBe('SECURE_MESSAGING');
    expect(e.message).toMatch(/MAC .*wrong/);
    await endedForGood(hsm, m);
  });

  it('a response whose encrypted data was altered (the MAC covers it)', async () => {
    const { m, hsm } = await secured();
    await hsm.verifyPin(PIN);
    m.arm((n, apdu, card) =>
      n === 1
        ? card.transmit(apdu).then((r) => {
            const t = r.slice();
            t[4]! ^= 0x01; // inside DO87
            return t;
          })
        : undefined,
    );
    expect((await rejection(hsm.getChallenge(16))).code).toBe('SECURE_MESSAGING');
    await endedForGood(hsm, m);
  });

  it('a replayed SM response (the same answer twice)', async () => {
    const { m, hsm } = await secured();
    let kept: Uint8Array | undefined;
    m.arm((n, apdu, card) => {
      if (n === 1)
        return card.transmit(apdu).then((r) => {
          kept = r;
          return r;
        });
      if (n === 2) return Promise.resolve(kept!);
      return undefined;
    });
    expect((await hsm.pinStatus()).state).toBe('not-verified');
    const e = await rejection(hsm.pinStatus());
    expect(e.code).toBe('SECURE_MESSAGING');
    expect(e.message).toMatch(/replay/);
    await endedForGood(hsm, m);
  });

  it('an answer from another point of the sequence (the card saw the command twice: wrong SSC)', async () => {
    const { m, hsm } = await secured();
    m.arm((n, apdu, card) => (n === 1 ? card.transmit(apdu).then(() => card.transmit(apdu)) : undefined));
    const e = await rejection(hsm.pinStatus());
    expect(e.code).toBe('SECURE_MESSAGING');
    expect(e.message).toMatch(/6988/);
    await endedForGood(hsm, m);
  });

  it('an answer that lost its protection (plain 9000)', async () => {
    const { m, hsm } = await secured();
    m.arm((n) => (n === 1 ? Promise.resolve(Uint8Array.of(0x90, 0x00)) : undefined));
    expect((await rejection(hsm.pinStatus())).message).toMatch(/no MAC/);
    await endedForGood(hsm, m);
  });

  it('the fault-injecting transport: a truncated answer, then a card reset', async () => {
    const fault = new FaultInjectingTransport(await initialized());
    const hsm = await SmartCardHsm.open(fault);
    await hsm.openSecureChannel(virtualOk());
    fault.arm({ at: 1, kind: 'truncated-response', delivered: true });
    expect((await rejection(hsm.listKeys())).code).toBe('SECURE_MESSAGING');
    expect((await rejection(hsm.pinStatus())).code).toBe('SECURE_MESSAGING');

    const fault2 = new FaultInjectingTransport(await initialized());
    const hsm2 = await SmartCardHsm.open(fault2);
    await hsm2.openSecureChannel(virtualOk());
    await hsm2.verifyPin(PIN);
    fault2.arm({ at: 1, kind: 'card-reset', delivered: true });
    expect((await rejection(hsm2.listKeys())).code).toBe('CARD_RESET');
    const count = fault2.count;
    expect((await rejection(hsm2.pinStatus())).code).toBe('SECURE_MESSAGING');
    expect(fault2.count).toBe(count);
  });
});

describe('the device chain and the device key', () => {
  it('a virtual chain is not trusted by default: DEVICE_NOT_AUTHENTIC, no chip authentication sent', async () => {
    const rec = new RecordingTransport(await initialized());
    const hsm = await SmartCardHsm.open(rec);
    const e = await rejection(hsm.openSecureChannel({ verifyChain: deviceChainVerifier() }));
    expect(e.code).toBe('DEVICE_NOT_AUTHENTIC');
    expect(e.message).toMatch(/virtual test root/);
    expect(rec.lines.some((l) => l.startsWith('=> 002241a4'))).toBe(false);
    expect(hsm.secureChannel).toBe(false);
  });

  it('a chain with a broken signature: DEVICE_NOT_AUTHENTIC', async () => {
    const card = await initialized();
    const state = JSON.parse(card.serialize());
    const ef = state.files['2F02'] as string;
    // a byte of the device certificate's signature (5F37 …) of the first certificate
    const sigAt = ef.indexOf('5f3740') + 10;
    state.files['2F02'] =
      `${ef.slice(0, sigAt)}${ef.slice(sigAt, sigAt + 2) === '00' ? '01' : '00'}${ef.slice(sigAt + 2)}`;
    const hsm = await SmartCardHsm.open(VirtualSmartCardHsm.deserialize(JSON.stringify(state)));
    const e = await rejection(hsm.openSecureChannel(virtualOk()));
    expect(e.code).toBe('DEVICE_NOT_AUTHENTIC');
    expect(e.message).toMatch(/does not verify/);
  });

  it("another device's certificate (valid chain, key not on this card): the token fails", async () => {
    const card = await initialized();
    const other = await initialized();
    const state = JSON.parse(card.serialize());
    state.files['2F02'] = JSON.parse(other.serialize()).files['2F02'];
    const hsm = await SmartCardHsm.open(VirtualSmartCardHsm.deserialize(JSON.stringify(state)));
    const e = await rejection(hsm.openSecureChannel(virtualOk()));
    expect(e.code).toBe('DEVICE_NOT_AUTHENTIC');
    expect(e.message).toMatch(/chip authentication failed/);
    expect(hsm.secureChannel).toBe(false);
  });
});

describe('secure messaging and the link', () => {
  it('a reader without extended length: protected answers longer than 256 bytes come with 61xx, GET RESPONSE plain', async () => {
    const card = await initialized();
    const short: Transport = {
      extendedLength: false,
      transmit: (a) => card.transmit(a),
      close: async () => {},
    };
    const rec = new RecordingTransport(short);
    const hsm = await SmartCardHsm.open(rec);
    await hsm.openSecureChannel(virtualOk());
    const ef = await hsm.readFile(0x2f02);
    expect(ef.length).toBeGreaterThan(400);
    expect(rec.lines.some((l) => l.startsWith('=> 00c00000'))).toBe(true);
    await hsm.verifyPin(PIN);
    const key = await hsm.generateKeyPair({ type: 'rsa', bits: 1024, label: 'short' });
    expect(key.publicKey.length).toBeGreaterThan(150);
  });

  it('calls made at the same time keep the sequence (no interleaving of the SSC)', async () => {
    const hsm = await SmartCardHsm.open(await initialized());
    await hsm.openSecureChannel(virtualOk());
    await hsm.verifyPin(PIN);
    const key = await hsm.generateKeyPair({ type: 'ec', curve: 'secp256r1', label: 'par' });
    const results = await Promise.all([
      hsm.sign(key.keyRef, 'ECDSA-SHA256', new Uint8Array(3)),
      hsm.pinStatus(),
      hsm.getChallenge(32),
      hsm.listKeys(),
      hsm.sign(key.keyRef, 'ECDSA-SHA256', new Uint8Array(4)),
    ]);
    expect(results).toHaveLength(5);
    expect(hsm.secureChannel).toBe(true);
  });

  it('a fault at every APDU of openSecureChannel: a typed error, never a half-open channel', async () => {
    const clean = new FaultInjectingTransport(await initialized());
    await (await SmartCardHsm.open(clean)).openSecureChannel(virtualOk());
    const opening = clean.count - 1; // after the SELECT of open()
    const problems: string[] = [];
    for (const { kind, delivered } of FAULT_COMBOS) {
      for (let k = 1; k <= opening; k++) {
        const ft = new FaultInjectingTransport(await initialized());
        const hsm = await SmartCardHsm.open(ft);
        ft.arm({ at: k, kind, delivered });
        let outcome: unknown = 'ok';
        try {
          await hsm.openSecureChannel(virtualOk());
        } catch (e) {
          outcome = e;
        }
        const where = `${kind}${delivered ? ' delivered' : ''} at ${k}`;
        if (outcome === 'ok') {
          // only a fault that changed nothing (an empty answer "cut in half") may let it open,
          // and then the channel must work
          if (!hsm.secureChannel || (await hsm.pinStatus()).state !== 'not-verified')
            problems.push(`${where}: opened, but not usable`);
        } else {
          if (!(outcome as { code?: string }).code) problems.push(`${where}: ${String(outcome)}`);
          if (hsm.secureChannel) problems.push(`${where}: channel open after a failure`);
        }
      }
    }
    expect(opening).toBeGreaterThanOrEqual(3);
    expect(problems).toEqual([]);
  });

  it('a fault at every APDU of a login under SM: typed, the PIN sent at most once, the channel ended', async () => {
    const clean = new FaultInjectingTransport(await initialized());
    const h0 = await SmartCardHsm.open(clean);
    await h0.openSecureChannel(virtualOk());
    clean.arm(undefined);
    await h0.verifyPin(PIN);
    const n = clean.count;
    expect(n).toBeGreaterThanOrEqual(2);
    const problems: string[] = [];
    for (const { kind, delivered } of FAULT_COMBOS) {
      for (let k = 1; k <= n; k++) {
        const card = await initialized();
        const ft = new FaultInjectingTransport(card);
        const hsm = await SmartCardHsm.open(ft);
        await hsm.openSecureChannel(virtualOk());
        ft.arm({ at: k, kind, delivered });
        const where = `${kind}${delivered ? ' delivered' : ''} at ${k}`;
        try {
          await hsm.verifyPin(PIN);
          if (ft.fired) problems.push(`${where}: no error`);
        } catch (e) {
          if (!(e as { code?: string }).code) problems.push(`${where}: ${String(e)}`);
          if (hsm.secureChannel) problems.push(`${where}: the channel survived a failed exchange`);
        }
        const tries = JSON.parse(card.serialize()).userPinTries;
        if (tries !== 3) problems.push(`${where}: ${tries} tries left`);
      }
    }
    expect(problems).toEqual([]);
  });
});
