/**
 * Fault injection at every APDU of key domain creation and of a share import into a domain
 * (spec §3.10): each fault ends in a typed ScHsmError (or, for a truncated answer, a success), the
 * device's domain status afterwards tells the truth, and a rerun guided by that status completes
 * the operation with the right DKEK (never the same share twice).
 */
import { describe, expect, it } from 'vitest';
import { FaultInjectingTransport } from '../src/apdu/fault.js';
import { keyCheckValue } from '../src/dkek/index.js';
import { isScHsmError } from '../src/errors.js';
import { SmartCardHsm } from '../src/sc-hsm/session.js';
import { VirtualSmartCardHsm } from '../src/sim/index.js';
import { fromHex, toHex } from '../src/util/bytes.js';
import { FAULT_COMBOS } from './helpers/fixtures.js';

const SO_PIN = '3537363231383830';
const PIN = '648219';
const SHARE0 = fromHex('9b1964f9cbc623adbe4644244161d955a8729a691883b35643c9e6e9dc3f3c74');
const A = new Uint8Array(32).fill(0x5a);
const B = new Uint8Array(32).fill(0xa7);

async function baseStates(): Promise<{ domains: string; created: string }> {
  const card = new VirtualSmartCardHsm({ deviceId: '7654321' });
  const hsm = await SmartCardHsm.open(card);
  await hsm.initialize({ soPin: SO_PIN, userPin: PIN, dkekShares: 1, keyDomains: 3 });
  await hsm.importDkekShare(SHARE0);
  const domains = card.serialize();
  await hsm.verifyPin(PIN);
  await hsm.createKeyDomain(1, 2);
  return { domains, created: card.serialize() };
}

interface Op {
  name: string;
  base: (b: { domains: string; created: string }) => string;
  run: (hsm: SmartCardHsm) => Promise<unknown>;
  /** Reruns what is missing, as a caller reading the domain's status would, and checks the end state. */
  complete: (hsm: SmartCardHsm) => Promise<string[]>;
}

const OPS: Op[] = [
  {
    name: 'createKeyDomain',
    base: (b) => b.domains,
    run: (hsm) => hsm.createKeyDomain(1, 2),
    complete: async (hsm) => {
      const st = await hsm.keyDomainStatus(1);
      if (st && (st.total !== 2 || st.outstanding !== 2))
        return [`domain 1 half made: ${JSON.stringify(st)}`];
      if (!st) await hsm.createKeyDomain(1, 2);
      const after = await hsm.keyDomainStatus(1);
      return after?.outstanding === 2 ? [] : ['rerun did not create domain 1'];
    },
  },
  {
    name: 'importDkekShare into domain 1',
    base: (b) => b.created,
    run: (hsm) => hsm.importDkekShare(A, { domain: 1 }),
    complete: async (hsm) => {
      const st = await hsm.keyDomainStatus(1);
      if (st?.total !== 2 || st.outstanding < 1)
        return [`domain 1 in an impossible state: ${JSON.stringify(st)}`];
      // the device's count says whether share A landed: never send it twice
      if (st.outstanding === 2) await hsm.importDkekShare(A, { domain: 1 });
      const done = await hsm.importDkekShare(B, { domain: 1 });
      const want = toHex(keyCheckValue(A.map((v, i) => v ^ B[i]!)));
      const out = toHex(done.kcv) === want ? [] : [`domain 1 KCV ${toHex(done.kcv)}, expected ${want}`];
      // domain 0 untouched
      const zero = await hsm.keyDomainStatus(0);
      if (toHex(zero!.kcv) !== toHex(keyCheckValue(SHARE0))) out.push('domain 0 changed');
      return out;
    },
  },
];

describe('fault injection at every APDU of key domain creation and share import', async () => {
  const bases = await baseStates();
  for (const op of OPS) {
    describe(op.name, () => {
      for (const combo of FAULT_COMBOS) {
        it(`${combo.kind}${combo.delivered ? ' after delivery' : ' before delivery'}, at every APDU`, async () => {
          // count the APDUs of a fault-free run (PIN verification included)
          const clean = new FaultInjectingTransport(VirtualSmartCardHsm.deserialize(op.base(bases)));
          const h0 = await SmartCardHsm.open(clean);
          await h0.verifyPin(PIN);
          const first = clean.count;
          await op.run(h0);
          const n = clean.count - first;
          expect(n).toBeGreaterThanOrEqual(2);
          const problems: string[] = [];
          for (let k = 1; k <= n; k++) {
            const where = `k=${k}/${n}`;
            const card = VirtualSmartCardHsm.deserialize(op.base(bases));
            const t = new FaultInjectingTransport(card);
            const hsm = await SmartCardHsm.open(t);
            await hsm.verifyPin(PIN);
            t.arm({ at: k, ...combo });
            let outcome: unknown = 'ok';
            try {
              await op.run(hsm);
            } catch (e) {
              outcome = e;
            }
            if (!t.fired) problems.push(`${where}: the fault never fired`);
            if (outcome !== 'ok' && !isScHsmError(outcome))
              problems.push(`${where}: raw ${(outcome as Error)?.name}: ${(outcome as Error)?.message}`);
            if (outcome === 'ok' && combo.kind !== 'truncated-response')
              problems.push(`${where}: success reported despite a ${combo.kind}`);
            try {
              card.reset();
              const again = await SmartCardHsm.open(card);
              await again.verifyPin(PIN);
              for (const p of await op.complete(again)) problems.push(`${where}: ${p}`);
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
