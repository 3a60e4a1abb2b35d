/**
 * Fault injection at every APDU of PKA registration and authentication (spec §3.18): for each
 * fault kind, before and after delivery, the call fails with a typed error (or, for a cut answer,
 * may succeed), the device never holds a half or a doubled registration, no PIN try is spent, a
 * fresh session starts unauthenticated, and the operation can then be completed.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { FaultInjectingTransport } from '../src/apdu/fault.js';
import { isScHsmError } from '../src/errors.js';
import { decodePkaFile } from '../src/pkcs15/index.js';
import { SmartCardHsm } from '../src/sc-hsm/session.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { toHex } from '../src/util/bytes.js';
import { FAULT_COMBOS } from './helpers/fixtures.js';
import { type Custodian, custodian, PIN, SO } from './helpers/pka.js';

interface CardJson {
  userPinTries: number;
  userPinMaxTries: number;
  soPinTries: number;
  pka: { total: number; required: number; keys: string[] };
}
const stateOf = (card: VirtualSmartCardHsm) => JSON.parse(card.serialize()) as CardJson;

let alice: Custodian;
let empty = '';
let registered = '';
let requestContent = '';

beforeAll(async () => {
  alice = await custodian();
  const card = new VirtualSmartCardHsm();
  const hsm = await SmartCardHsm.open(card);
  await hsm.initialize({ soPin: SO, userPin: PIN, publicKeyAuth: { total: 1, required: 1 } });
  empty = card.serialize();
  await hsm.pkaRegister(alice.file);
  registered = card.serialize();
  const req = decodePkaFile(alice.file).request;
  requestContent = toHex(req.subarray(req[1]! < 0x80 ? 2 : 2 + (req[1]! & 0x7f)));
  void PIN;
});

function commonProblems(card: VirtualSmartCardHsm, where: string): string[] {
  const s = stateOf(card);
  const out: string[] = [];
  if (s.userPinTries !== s.userPinMaxTries) out.push(`${where}: a user PIN try was spent`);
  if (s.soPinTries !== 15) out.push(`${where}: an SO-PIN try was spent`);
  if (s.pka.keys.length > 1) out.push(`${where}: ${s.pka.keys.length} keys registered`);
  if (s.pka.keys.length === 1 && s.pka.keys[0] !== requestContent)
    out.push(`${where}: a damaged registration`);
  return out;
}

const operations = [
  {
    name: 'registration',
    base: () => empty,
    run: async (t: FaultInjectingTransport) => {
      const hsm = await SmartCardHsm.open(t);
      await hsm.pkaRegister(alice.file);
    },
    /** A fresh session finishes the job: the key is registered exactly once. */
    complete: async (card: VirtualSmartCardHsm): Promise<string[]> => {
      const hsm = await SmartCardHsm.open(card);
      if ((await hsm.pkaStatus())?.missing === 1) await hsm.pkaRegister(alice.file);
      const slots = await hsm.pkaSlots();
      return slots.length === 1 && slots[0]!.chr === alice.chr ? [] : ['registration not completed'];
    },
  },
  {
    name: 'authentication',
    base: () => registered,
    run: async (t: FaultInjectingTransport) => {
      const hsm = await SmartCardHsm.open(t);
      const c = await hsm.pkaChallenge();
      await hsm.pkaAuthenticate([await alice.hsm.pkaRespond(alice.keyRef, c)]);
    },
    complete: async (card: VirtualSmartCardHsm): Promise<string[]> => {
      const hsm = await SmartCardHsm.open(card);
      const out: string[] = [];
      if ((await hsm.pkaStatus())?.authenticated !== 0) out.push('a new session starts authenticated');
      const c = await hsm.pkaChallenge();
      const st = await hsm.pkaAuthenticate([await alice.hsm.pkaRespond(alice.keyRef, c)]);
      if (st.authenticated !== 1) out.push('authentication not completed');
      return out;
    },
  },
];

describe('faults during public key authentication', () => {
  for (const op of operations) {
    describe(op.name, () => {
      let n = 0;
      beforeAll(async () => {
        const t = new FaultInjectingTransport(VirtualSmartCardHsm.deserialize(op.base()));
        await op.run(t);
        n = t.count;
      });

      it('runs fault-free and counts its APDUs', () => {
        expect(n).toBeGreaterThan(3);
      });

      for (const combo of FAULT_COMBOS) {
        it(`${combo.kind}${combo.delivered ? ' after delivery' : ' before delivery'}, at every APDU`, async () => {
          const problems: string[] = [];
          for (let k = 1; k <= n; k++) {
            const where = `k=${k}/${n}`;
            const card = VirtualSmartCardHsm.deserialize(op.base());
            const t = new FaultInjectingTransport(card, { at: k, ...combo });
            let outcome: unknown = 'ok';
            try {
              await op.run(t);
            } catch (e) {
              outcome = e;
            }
            if (!t.fired) problems.push(`${where}: the fault never fired`);
            if (outcome !== 'ok' && !isScHsmError(outcome))
              problems.push(`${where}: raw ${(outcome as Error)?.name}: ${(outcome as Error)?.message}`);
            if (outcome === 'ok' && combo.kind !== 'truncated-response')
              problems.push(`${where}: reported success despite a ${combo.kind}`);
            problems.push(...commonProblems(card, where));
            try {
              card.reset();
              for (const p of await op.complete(card)) problems.push(`${where}: ${p}`);
              problems.push(...commonProblems(card, `${where} (completed)`));
            } catch (e) {
              problems.push(`${where}: after the fault: ${(e as Error).name} ${(e as Error).message}`);
            }
          }
          expect(problems).toEqual([]);
        });
      }
    });
  }
});
