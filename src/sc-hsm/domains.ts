/**
 * Key domains (firmware 3.x): MANAGE KEY DOMAIN `80 52 P1 <domain>` (spec §3.10) to list, create
 * and delete DKEK domains; shares are imported with importDkekShare (dkek.ts) and its `domain`
 * option. A key is bound to a domain at generation (tag 92, keys.ts) or by the KCV of the blob
 * it is unwrapped from (the card picks the domain, spec §3.10), and is wrapped under that domain's
 * DKEK. XKEK domains (key agreement with a PKI-as-a-Service group key) are recognised in a status
 * answer and refused: sc-hsm-ts does not manage them.
 */
import type { SwOverrides } from '../apdu/status.js';
import { ScHsmError } from '../errors.js';
import { CLA_PROPRIETARY, INS, PREFIX } from '../protocol/constants.js';
import { bytesEqual, toHex } from '../util/bytes.js';
import { tlv } from '../util/tlv.js';
import type { SessionContext } from './context.js';
import {
  dkekKcvUnknown,
  domainOutOfRange,
  type KeyDomainStatus,
  parseDkekStatus,
  queryKeyDomain,
  xkekDomain,
} from './dkek.js';
import { readKeyRestrictions } from './key-restrictions.js';
import { checkInt, checkObject } from './validate.js';

/** Highest key domain number: the count (INITIALIZE tag 97) is one byte. */
export const MAX_KEY_DOMAIN = 254;

/** Every key domain slot of the device (listKeyDomains). */
export interface KeyDomains {
  /** Number of domain slots, 0..slots−1 (1 on a device initialized without key domains). */
  slots: number;
  /** The domains in use (with a DKEK configured, complete or not), by number. */
  domains: KeyDomainStatus[];
}

function checkDomain(domain: number): void {
  checkInt(domain, 0, MAX_KEY_DOMAIN, 'the key domain');
}

/** One domain's status; undefined when unused. KEY_DOMAIN_OUT_OF_RANGE beyond the device's domains. */
export async function keyDomainStatus(
  ctx: SessionContext,
  domain: number,
): Promise<KeyDomainStatus | undefined> {
  checkDomain(domain);
  const q = await queryKeyDomain(ctx, domain);
  if (q === 'out-of-range') throw domainOutOfRange(domain);
  return q === 'unused' ? undefined : q;
}

/**
 * Every domain slot: status queries from domain 0 up to the first the device refuses as out of
 * range (6A86), as pypicohsm counts them. Costs no PIN try; one APDU per slot plus one.
 */
export async function listKeyDomains(ctx: SessionContext): Promise<KeyDomains> {
  return ctx.channel.exclusive(async () => {
    const domains: KeyDomainStatus[] = [];
    let slots = 0;
    for (let d = 0; d <= MAX_KEY_DOMAIN; d++) {
      const q = await queryKeyDomain(ctx, d);
      if (q === 'out-of-range') break;
      slots = d + 1;
      if (q !== 'unused') domains.push(q);
    }
    return { slots: Math.max(1, slots), domains };
  });
}

function manageOverrides(domain: number): SwOverrides {
  return {
    0x6982: ['SECURITY_STATUS', 'managing key domains needs the user PIN: verify it first'],
    0x6a86: [
      'KEY_DOMAIN_OUT_OF_RANGE',
      `the device refused key domain ${domain} (beyond its domains, or it exists)`,
    ],
    0x6a88: ['KEY_DOMAIN_UNUSED', `key domain ${domain} is unused`],
  };
}

/**
 * Creates DKEK domain `domain` expecting `shares` shares (`80 52 01 <domain> 01 <shares>`, spec
 * §3.10); returns its status (all shares outstanding). Needs the user PIN. Checked first, nothing
 * sent that changes anything: the domain exists on the device (KEY_DOMAIN_OUT_OF_RANGE) and is
 * unused (KEY_DOMAIN_EXISTS).
 */
export async function createKeyDomain(
  ctx: SessionContext,
  domain: number,
  shares: number,
): Promise<KeyDomainStatus> {
  checkDomain(domain);
  checkInt(shares, 1, 255, 'the number of DKEK shares of the domain');
  return ctx.channel.exclusive(async () => {
    const q = await queryKeyDomain(ctx, domain);
    if (q === 'out-of-range') throw domainOutOfRange(domain);
    if (q !== 'unused') {
      if (q.xkekUid) throw xkekDomain(domain);
      throw new ScHsmError(
        'KEY_DOMAIN_EXISTS',
        `key domain ${domain} exists already (${q.total} share(s), ${q.outstanding} outstanding). Nothing was changed.`,
        {
          fix: 'import its shares (sc-hsm-ts domain import), or choose an unused domain (sc-hsm-ts domain status)',
        },
      );
    }
    const r = await ctx.channel.exchange(
      {
        cla: CLA_PROPRIETARY,
        ins: INS.MANAGE_KEY_DOMAIN,
        p1: 0x01,
        p2: domain,
        data: Uint8Array.of(shares),
        ne: 256,
      },
      'MANAGE KEY DOMAIN',
      { overrides: manageOverrides(domain) },
    );
    ctx.importedShares?.delete(domain);
    return { domain, ...parseDkekStatus(r.data) };
  });
}

export interface DeleteKeyDomainOptions {
  /** Delete only the domain's DKEK (`P1=04`): its shares become outstanding again; keys stay. */
  dkekOnly?: boolean;
}

/**
 * Deletes key domain `domain` (`80 52 03 <domain>`; the card refuses while keys belong to it:
 * KEY_DOMAIN_NOT_EMPTY), or with `dkekOnly` only its DKEK (`80 52 04 <domain>`: the keys stay, and
 * can be wrapped again once the same shares are imported). Needs the user PIN. An unused or
 * out-of-range domain is refused before anything is sent. Returns the status after (undefined when
 * the domain was deleted).
 */
export async function deleteKeyDomain(
  ctx: SessionContext,
  domain: number,
  opts: DeleteKeyDomainOptions = {},
): Promise<KeyDomainStatus | undefined> {
  checkDomain(domain);
  checkObject(opts, 'the delete options', { dkekOnly: 'boolean' });
  return ctx.channel.exclusive(async () => {
    const q = await queryKeyDomain(ctx, domain);
    if (q === 'out-of-range') throw domainOutOfRange(domain);
    if (q === 'unused')
      throw new ScHsmError(
        'KEY_DOMAIN_UNUSED',
        `key domain ${domain} is unused: there is nothing to delete. Nothing was sent.`,
      );
    if (q.xkekUid) throw xkekDomain(domain);
    // the keys' domains are public (tag 92 of each key's FCP): a domain holding keys is refused
    // here, before the PIN (Ctx.login's precheck) and before the card refuses it (6A89)
    if (!opts.dkekOnly) {
      const held = await keysInDomain(ctx, domain);
      if (held.length)
        throw new ScHsmError(
          'KEY_DOMAIN_NOT_EMPTY',
          `key domain ${domain} still holds key(s) at key reference(s) ${held.join(', ')}. Nothing was sent.`,
          {
            fix: `delete those keys first (sc-hsm-ts delete-key --key-ref N; back them up first if in doubt), or delete only the domain's DKEK: sc-hsm-ts domain delete --domain ${domain} --dkek-only`,
          },
        );
    }
    ctx.importedShares?.delete(domain);
    if (opts.dkekOnly) {
      const r = await ctx.channel.exchange(
        { cla: CLA_PROPRIETARY, ins: INS.MANAGE_KEY_DOMAIN, p1: 0x04, p2: domain, ne: 256 },
        'MANAGE KEY DOMAIN',
        {
          overrides: {
            ...manageOverrides(domain),
            0x6985: [
              'CONDITIONS_NOT_SATISFIED',
              `the DKEK of key domain ${domain} was generated by the card: it cannot be imported again, so it is not deleted`,
            ],
          },
        },
      );
      return { domain, ...parseDkekStatus(r.data) };
    }
    // pico answers the status of the now unused domain (6A88) and pypicohsm reads it as success
    await ctx.channel.exchange(
      { cla: CLA_PROPRIETARY, ins: INS.MANAGE_KEY_DOMAIN, p1: 0x03, p2: domain },
      'MANAGE KEY DOMAIN',
      {
        accept: [0x6a88],
        overrides: {
          ...manageOverrides(domain),
          0x6a89: [
            'KEY_DOMAIN_NOT_EMPTY',
            `key domain ${domain} still holds keys: delete them first (or delete only its DKEK)`,
          ],
        },
      },
    );
    return undefined;
  });
}

/** The key references whose key's FCP names key domain `domain` (tag 92, spec §3.10; public reads). */
async function keysInDomain(ctx: SessionContext, domain: number): Promise<number[]> {
  const refs: number[] = [];
  for (const f of await ctx.files.enumerate()) {
    if (f >> 8 !== PREFIX.KEY || (f & 0xff) === 0) continue;
    if ((await readKeyRestrictions(ctx, f & 0xff)).domain === domain) refs.push(f & 0xff);
  }
  return refs;
}

/**
 * Before WRAP KEY of a key in `domain` (tag 92 of its FCP; undefined: the card does not say): that
 * domain's DKEK exists and is complete, else the typed error naming the domain and its remedy —
 * only public reads are sent (the domain status, memoised in a CardFiles run), so Ctx.login's
 * precheck refuses before the PIN. Domain 0 without a DKEK is left to the card (NO_DKEK).
 */
export async function checkWrapDomain(
  ctx: SessionContext,
  keyRef: number,
  domain: number | undefined,
): Promise<void> {
  if (domain === undefined) return;
  const q = await ctx.files.runMemo(`key domain ${domain}`, () => queryKeyDomain(ctx, domain));
  if (q === 'out-of-range' || (q === 'unused' && domain !== 0))
    throw new ScHsmError(
      'KEY_DOMAIN_UNUSED',
      `key ${keyRef} belongs to key domain ${domain}, which has no DKEK on this device: it cannot be wrapped. Nothing was sent.`,
      {
        fix: `create the domain's DKEK again from the same share files: sc-hsm-ts domain create --domain ${domain} --shares K, then sc-hsm-ts domain import FILE.pbe --domain ${domain}`,
      },
    );
  if (q === 'unused' || q.xkekUid || q.outstanding === 0) return;
  throw new ScHsmError(
    'DKEK_INCOMPLETE',
    `key ${keyRef} belongs to key domain ${domain}, whose DKEK still misses ${q.outstanding} share(s): it cannot be wrapped until they are imported. Nothing was sent.`,
    {
      fix: `import the outstanding share(s): ${domain === 0 ? 'sc-hsm-ts dkek import FILE.pbe' : `sc-hsm-ts domain import FILE.pbe --domain ${domain}`}`,
    },
  );
}

/** Tag 92 of a key generation request (spec §3.11–3.12), none without a domain. */
export function keyDomainTlv(domain: number | undefined): Uint8Array[] {
  return domain === undefined ? [] : [tlv(0x92, Uint8Array.of(domain))];
}

/**
 * Before a key is generated into `domain`: the domain exists on the device, is a DKEK domain and
 * its DKEK is complete (so that the key can be wrapped), else the typed error; nothing that creates
 * anything has been sent. Domain 0 without a DKEK is fine (a device without DKEK).
 */
export async function checkKeyDomainReady(ctx: SessionContext, domain: number): Promise<void> {
  const q = await queryKeyDomain(ctx, domain);
  if (q === 'out-of-range') throw domainOutOfRange(domain);
  if (q === 'unused') {
    if (domain === 0) return;
    throw new ScHsmError(
      'KEY_DOMAIN_UNUSED',
      `key domain ${domain} is unused: create it first. Nothing was generated.`,
      {
        fix: 'create the domain and import its shares (sc-hsm-ts domain create, sc-hsm-ts domain import)',
      },
    );
  }
  if (q.xkekUid) throw xkekDomain(domain);
  if (q.outstanding > 0)
    throw new ScHsmError(
      'DKEK_INCOMPLETE',
      `the DKEK of key domain ${domain} still misses ${q.outstanding} share(s): import them first. Nothing was generated.`,
      {
        fix: `import the outstanding share(s): ${domain === 0 ? 'sc-hsm-ts dkek import FILE.pbe' : `sc-hsm-ts domain import FILE.pbe --domain ${domain}`}`,
      },
    );
}

/** The domain UNWRAP KEY will put a blob's key into, and that domain's KCV (undefined: shown as zeros). */
export interface UnwrapTarget {
  domain: number;
  kcv: Uint8Array | undefined;
}

/**
 * Which key domain a blob with KCV `kcv` unwraps into: the card takes the lowest domain whose
 * complete DKEK has the blob's KCV (spec §3.10), so the host does the same before anything is
 * sent. With `wanted`, that domain must be the one (KEY_DOMAIN_OUT_OF_RANGE, KEY_DOMAIN_UNUSED,
 * DKEK_INCOMPLETE, KCV_MISMATCH otherwise). Domain 0 is asked first: a device without key domains
 * costs one status query, as before domains. A complete domain 0 whose KCV shows as zeros
 * (firmware that reveals it only after login) is unknown, not a mismatch: it is taken.
 */
export async function unwrapTarget(
  ctx: SessionContext,
  kcv: Uint8Array | undefined,
  wanted?: number,
): Promise<UnwrapTarget> {
  const hex = (b: Uint8Array) => toHex(b).toUpperCase();
  const mismatch = (what: string) =>
    new ScHsmError(
      'KCV_MISMATCH',
      `the wrapped key was made under a different DKEK (key check value ${hex(kcv!)}; ${what}). Nothing was changed.`,
    );
  // once per run of a backup or restore (CardFiles.run: the card held, no DKEK changes in it)
  const query = (d: number) => ctx.files.runMemo(`key domain ${d}`, () => queryKeyDomain(ctx, d));
  const zero = await query(0);
  const usable = (q: KeyDomainStatus | 'unused' | 'out-of-range'): q is KeyDomainStatus =>
    typeof q === 'object' && q.outstanding === 0 && !q.xkekUid;
  if (wanted === undefined || wanted === 0) {
    if (usable(zero)) {
      if (dkekKcvUnknown(zero) || !kcv) return { domain: 0, kcv: undefined };
      if (bytesEqual(zero.kcv, kcv)) return { domain: 0, kcv: zero.kcv };
    }
    if (wanted === 0) {
      if (zero === 'unused' || zero === 'out-of-range')
        throw new ScHsmError(
          'NO_DKEK',
          'key domain 0 has no DKEK: initialize the device with DKEK shares and import them first. Nothing was changed.',
        );
      if (zero.outstanding > 0)
        throw new ScHsmError(
          'DKEK_INCOMPLETE',
          `the DKEK of key domain 0 still misses ${zero.outstanding} share(s): import them first. Nothing was changed.`,
        );
      throw mismatch(`key domain 0 has ${hex(zero.kcv)}`);
    }
  }
  // the other domains, up to the first the device refuses as out of range
  const all: KeyDomainStatus[] = typeof zero === 'object' ? [zero] : [];
  for (let d = 1; d <= MAX_KEY_DOMAIN; d++) {
    const q = await query(d);
    if (q === 'out-of-range') {
      if (wanted !== undefined && wanted >= d) throw domainOutOfRange(wanted);
      break;
    }
    if (typeof q === 'object') all.push(q);
    if (wanted !== undefined && d === wanted) break;
  }
  const complete = all.filter(usable);
  // no KCV (a blob that does not parse): only the device's DKEK state is checked here
  const first = complete.find((q) => !kcv || bytesEqual(q.kcv, kcv));
  if (wanted !== undefined) {
    const w = all.find((q) => q.domain === wanted);
    if (!w)
      throw new ScHsmError(
        'KEY_DOMAIN_UNUSED',
        `key domain ${wanted} is unused: create it and import its shares first. Nothing was changed.`,
      );
    if (w.xkekUid) throw xkekDomain(wanted);
    if (w.outstanding > 0)
      throw new ScHsmError(
        'DKEK_INCOMPLETE',
        `the DKEK of key domain ${wanted} still misses ${w.outstanding} share(s): import them first. Nothing was changed.`,
      );
    if (kcv && !bytesEqual(w.kcv, kcv)) throw mismatch(`key domain ${wanted} has ${hex(w.kcv)}`);
    if (kcv && first && first.domain !== wanted)
      throw new ScHsmError(
        'INVALID_ARGUMENT',
        `key domains ${first.domain} and ${wanted} have the same DKEK (${hex(kcv)}): the device puts the key into domain ${first.domain}, not ${wanted}. Nothing was changed.`,
      );
    return { domain: wanted, kcv: w.kcv };
  }
  if (first) return { domain: first.domain, kcv: first.kcv };
  if (all.length === 0)
    throw new ScHsmError(
      'NO_DKEK',
      'the device has no DKEK: initialize it with DKEK shares and import them first. Nothing was changed.',
    );
  if (complete.length === 0) {
    const o = all.map((q) => `domain ${q.domain}: ${q.outstanding} outstanding`).join(', ');
    throw new ScHsmError(
      'DKEK_INCOMPLETE',
      `no key domain of the device has a complete DKEK (${o}): import the shares first. Nothing was changed.`,
    );
  }
  const pending = all
    .filter((q) => q.outstanding > 0)
    .map((q) => `domain ${q.domain} still misses ${q.outstanding} share(s)`);
  throw mismatch(
    `this device: ${complete.map((q) => `domain ${q.domain} ${hex(q.kcv)}`).join(', ')}${pending.length ? `; ${pending.join(', ')}` : ''}`,
  );
}
