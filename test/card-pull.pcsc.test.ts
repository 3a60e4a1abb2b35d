/**
 * A card pulled in the middle of an operation, through the real stack (pcsclite → pcscd → vpcd →
 * the virtual card), issue #10 section 10. The card is "pulled" by dropping its vpcd connection
 * while it handles a chosen APDU, after acting on it (`delivered`) or before: vpcd then answers
 * the exchange with success and 0 bytes, or with "Transaction failed", before pcscd's presence poll
 * has noticed. Every case must end in CARD_REMOVED (exit 4 in the command), never
 * MALFORMED_RESPONSE, and the transport stays dead; a key generation says what may exist.
 * Run with: bash scripts/with-pcscd.sh npx vitest run --project pcsc test/card-pull.pcsc.test.ts
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { RelayCard } from '../harness/relay-card.js';
import type { PcscTransport } from '../src/apdu/pcsc.js';
import type { ScHsmError } from '../src/errors.js';
import { openPcsc } from '../src/sc-hsm/open-pcsc.js';
import { SmartCardHsm } from '../src/sc-hsm/session.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import type { VpcdConnection } from '../src/sim/vpcd.js';
import { cli as runCommand } from './cli-helpers.js';
import { rejection } from './helpers/fixtures.js';
import { describePcsc, initializedCard, insertCard, removeCard, vpcdSlot } from './helpers/pcsc-env.js';

const PIN = '648219';
const { host, port, reader: READER } = vpcdSlot();

const INS = { VERIFY: 0x20, GAKP: 0x46, GENERATE_SYMMETRIC: 0x48, ENUMERATE: 0x58, SIGN: 0x68, UPDATE: 0xd7 };

interface PullPlan {
  /** The APDU to pull the card at: by its INS byte (first one sent after arming) or its number. */
  ins?: number;
  nth?: number;
  /** True: the card acts on that APDU and the answer is lost; false: the APDU never arrives. */
  delivered: boolean;
}

/** The virtual card behind a vpcd connection it drops (the card pulled) at one chosen APDU. */
class PullCard extends RelayCard<VirtualSmartCardHsm> {
  private plan: PullPlan | undefined;
  private seen = 0;
  /** Set once the card was pulled. */
  pulled = false;
  /** What pulls it: closes the vpcd connection. */
  pull: () => void = () => undefined;
  /** A short answer (one byte) instead of the card's, once, with the card left in the reader. */
  garbleNext = false;

  arm(plan: PullPlan): void {
    this.plan = plan;
    this.seen = 0;
  }

  override process(apdu: Uint8Array): Uint8Array {
    if (this.garbleNext) {
      this.garbleNext = false;
      return Uint8Array.of(super.process(apdu)[0]!);
    }
    this.seen++;
    const p = this.plan;
    const hit = p && (p.ins !== undefined ? apdu[1] === p.ins : this.seen === p.nth);
    if (!p || !hit) return super.process(apdu);
    this.plan = undefined;
    this.pulled = true;
    const answer = p.delivered ? super.process(apdu) : Uint8Array.of(0x6f, 0x00);
    // the socket is gone before the answer is written: it never reaches vpcd
    this.pull();
    this.card.powerOff();
    return answer;
  }
}

/** A card with one EC key (reference 1), initialized with the test PINs. */
let state = '';
const links: VpcdConnection[] = [];
const transports: PcscTransport[] = [];

/** Inserts a virtual card made from `json` into the reader; resolves when pcscd lists it. */
async function insert(json: string): Promise<{ slot: PullCard; link: VpcdConnection }> {
  const slot = new PullCard(VirtualSmartCardHsm.deserialize(json));
  const link = await insertCard(slot, { host, port });
  links.push(link);
  slot.pull = () => void link.close();
  return { slot, link };
}

/** Ends one case: our handle closed, the card out, the reader seen empty. */
async function eject(t: PcscTransport | undefined, link: VpcdConnection): Promise<void> {
  await t?.close();
  await removeCard(link, port);
}

/**
 * Opens a session on a fresh copy of `state` with the PIN verified, arms the pull, runs `op`.
 * Returns its error and that of the call after it (the transport must stay dead).
 */
async function pulledRun(
  plan: PullPlan,
  op: (hsm: SmartCardHsm) => Promise<unknown>,
): Promise<{ error: ScHsmError; next: ScHsmError; slot: PullCard }> {
  const { slot, link } = await insert(state);
  let t: PcscTransport | undefined;
  try {
    t = await openPcsc({ reader: READER });
    transports.push(t);
    const hsm = await SmartCardHsm.open(t);
    await hsm.verifyPin(PIN);
    slot.arm(plan);
    const error = await rejection(op(hsm));
    expect(slot.pulled, 'the card was pulled').toBe(true);
    const next = await rejection(hsm.pinStatus());
    return { error, next, slot };
  } finally {
    await eject(t, link);
  }
}

function expectRemoved(e: ScHsmError, what: string): void {
  expect(e.code, `${what}: ${e.message}`).toBe('CARD_REMOVED');
  expect(e.message).toMatch(/insert it and open the device again/);
}

/** The command in-process, on the reader. */
const cli = (argv: string[]) => runCommand([...argv, '--reader', READER], { env: { PIN }, stdin: '' });

describePcsc('a card pulled in the middle of an operation, through pcscd', () => {
  beforeAll(async () => {
    const { card, hsm } = await initializedCard(PIN, { deviceId: '5550001', label: 'pull' });
    await hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'first' });
    state = card.serialize();
  });

  afterAll(async () => {
    for (const t of transports) await t.close();
    for (const l of links) await l.close();
  });

  // Library: pulls spread over several operations, before and after the card acted.
  const CASES: { name: string; plan: PullPlan; op: (hsm: SmartCardHsm) => Promise<unknown> }[] = [
    { name: 'listKeys, 1st APDU, lost', plan: { nth: 1, delivered: false }, op: (h) => h.listKeys() },
    { name: 'listKeys, 2nd APDU, delivered', plan: { nth: 2, delivered: true }, op: (h) => h.listKeys() },
    {
      name: 'sign, at SIGN, delivered',
      plan: { ins: INS.SIGN, delivered: true },
      op: (h) => h.sign(1, 'ECDSA-SHA256', Uint8Array.of(1, 2, 3)),
    },
    {
      name: 'verifyPin, at VERIFY, delivered',
      plan: { ins: INS.VERIFY, delivered: true },
      op: (h) => h.verifyPin(PIN),
    },
  ];
  for (const c of CASES) {
    it(`${c.name}: CARD_REMOVED, and CARD_REMOVED again on the next call`, async () => {
      const { error, next } = await pulledRun(c.plan, c.op);
      expectRemoved(error, c.name);
      expectRemoved(next, `${c.name}, next call`);
    });
  }

  const KEYGEN = (h: SmartCardHsm) => h.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'second' });

  it('key generation pulled before GENERATE ASYMMETRIC KEY PAIR: CARD_REMOVED, no key named', async () => {
    const { error, next } = await pulledRun({ ins: INS.ENUMERATE, delivered: true }, KEYGEN);
    expectRemoved(error, 'keygen at ENUMERATE');
    expect(error.keyRef).toBeUndefined();
    expectRemoved(next, 'next call');
  });

  for (const delivered of [false, true]) {
    it(`key generation pulled at GENERATE ASYMMETRIC KEY PAIR (${delivered ? 'delivered' : 'lost'}): CARD_REMOVED naming key 2`, async () => {
      const { error, slot } = await pulledRun({ ins: INS.GAKP, delivered }, KEYGEN);
      expectRemoved(error, 'keygen at GAKP');
      expect(error.keyRef).toBe(2);
      expect(error.message).toMatch(/may have generated that key/);
      expect(error.fix).toMatch(/sc-hsm-ts delete-key --key-ref 2/);
      expect(Object.keys(JSON.parse(slot.card.serialize()).keys).includes('2')).toBe(delivered);
    });
  }

  it('key generation pulled while writing the description: CARD_REMOVED, the key is there without it', async () => {
    const { error, slot } = await pulledRun({ ins: INS.UPDATE, delivered: false }, KEYGEN);
    expectRemoved(error, 'keygen at UPDATE BINARY');
    expect(error.keyRef).toBe(2);
    expect(error.message).toMatch(/generated the key at key reference 2/);
    const hsm = await SmartCardHsm.open(slot.card);
    await hsm.verifyPin(PIN);
    const k = (await hsm.listKeys()).find((x) => x.keyRef === 2);
    expect(k).toMatchObject({ type: 'ec' });
    expect(k!.label).toBeUndefined();
  });

  it('pulled while idle between two operations: the next one says CARD_REMOVED (not NO_CARD)', async () => {
    const { link } = await insert(state);
    const t = await openPcsc({ reader: READER });
    transports.push(t);
    try {
      const hsm = await SmartCardHsm.open(t);
      await hsm.verifyPin(PIN);
      await removeCard(link, port);
      expectRemoved(await rejection(hsm.listKeys()), 'listKeys after the pull');
      expectRemoved(await rejection(hsm.pinStatus()), 'pinStatus after the pull');
    } finally {
      await eject(t, link);
    }
  });

  it('swapped for another card between two operations: CARD_REMOVED, nothing sent to the other card', async () => {
    const first = await insert(state);
    const t = await openPcsc({ reader: READER });
    transports.push(t);
    try {
      const hsm = await SmartCardHsm.open(t);
      await hsm.verifyPin(PIN);
      await removeCard(first.link, port);
      const other = await insert(state);
      try {
        // the transport's own context must have seen the new card (pcscd's event, not a timer)
        const end = Date.now() + 4000;
        while (!t.context.readerState(READER)?.cardPresent && Date.now() < end)
          await new Promise((r) => setTimeout(r, 25));
        let reached = 0;
        const origProcess = other.slot.card.process.bind(other.slot.card);
        other.slot.card.process = (a) => {
          reached++;
          return origProcess(a);
        };
        expectRemoved(await rejection(hsm.listKeys()), 'listKeys on the swapped card');
        expect(reached, 'APDUs that reached the other card').toBe(0);
      } finally {
        await other.link.close();
      }
    } finally {
      await eject(t, first.link);
    }
  });

  it('an answer too short for a status word with the card still present: MALFORMED_RESPONSE, the transport lives', async () => {
    const { slot, link } = await insert(state);
    const t = await openPcsc({ reader: READER });
    transports.push(t);
    try {
      const hsm = await SmartCardHsm.open(t);
      slot.garbleNext = true;
      const e = await rejection(hsm.pinStatus());
      expect(e.code, e.message).toBe('MALFORMED_RESPONSE');
      expect(e.message).toMatch(/still in the reader/);
      expect((await hsm.pinStatus()).triesLeft).toBe(3);
    } finally {
      await eject(t, link);
    }
  });

  // The command: exit 4 with the fix line, the key generation's message, and the fix works.

  it('`keys` pulled: exit 4, CARD_REMOVED with a fix naming `sc-hsm-ts readers`', async () => {
    const { slot, link } = await insert(state);
    try {
      slot.arm({ nth: 3, delivered: true });
      const r = await cli(['keys', '--json']);
      expect(r.code, r.stdout).toBe(4);
      const error = (JSON.parse(r.stdout) as { error: { code: string; fix?: string } }).error;
      expect(error.code).toBe('CARD_REMOVED');
      expect(error.fix).toMatch(/insert the SmartCard-HSM.*`sc-hsm-ts readers`/);
    } finally {
      await eject(undefined, link);
    }
    // and with no card at all: the same remedy
    const none = await cli(['keys']);
    expect(none.code).toBe(4);
    expect(none.stderr).toMatch(/fix: insert the SmartCard-HSM.*`sc-hsm-ts readers`/);
  });

  it('`keygen` pulled at GENERATE ASYMMETRIC KEY PAIR: exit 4, says key 2 may exist; `keys` then shows it, `delete-key` removes it', async () => {
    const { slot, link } = await insert(state);
    let after = '';
    try {
      slot.arm({ ins: INS.GAKP, delivered: true });
      const r = await cli(['keygen', '--type', 'ec:prime256v1', '--label', 'ocsp-key', '--pin', 'env:PIN']);
      expect(r.code, r.stderr).toBe(4);
      expect(r.stderr).not.toMatch(/MALFORMED_RESPONSE|no status word/);
      expect(r.stderr).toMatch(/removed/);
      expect(r.stderr).toMatch(/may have generated that key/);
      expect(r.stderr).toMatch(/fix: check with `sc-hsm-ts keys` whether key reference 2 is there/);
      after = slot.card.serialize();
    } finally {
      await eject(undefined, link);
    }
    // the card put back (its state as the pull left it)
    const back = await insert(after);
    try {
      const keys = await cli(['keys', '--json']);
      expect(keys.code, keys.stdout).toBe(0);
      const listed = (JSON.parse(keys.stdout) as { keys: { keyRef: number; label?: string }[] }).keys;
      expect(listed.map((k) => k.keyRef)).toEqual([1, 2]);
      expect(listed[1]!.label).toBeUndefined();
      const del = await cli(['delete-key', '--key-ref', '2', '--pin', 'env:PIN', '--yes']);
      expect(del.code, del.stderr).toBe(0);
      expect(Object.keys(JSON.parse(back.slot.card.serialize()).keys).sort()).toEqual(['0', '1']);
    } finally {
      await eject(undefined, back.link);
    }
  });
});
