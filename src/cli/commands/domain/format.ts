/** How `domain status`, `status` and `dump` show a key domain (spec §3.10); loads nothing heavy. */
import type { KeyDomainStatus } from '../../../sc-hsm/session.js';
import { toHex } from '../../../util/bytes.js';
import { kcvText } from '../../format.js';

/**
 * The JSON form of a domain: `{ domain, total, outstanding, kcv }` (kcv lowercase hex like every
 * KCV in JSON — `dkek.kcv`, manifests —, null while shares are outstanding).
 */
export function domainJson(d: KeyDomainStatus): Record<string, unknown> {
  const o: Record<string, unknown> = {
    domain: d.domain,
    total: d.total,
    outstanding: d.outstanding,
    kcv: d.outstanding > 0 ? null : toHex(d.kcv),
  };
  if (d.xkekUid) o.xkek = toHex(d.xkekUid).toUpperCase();
  return o;
}

/** One line per domain, as `status` and `dump` print them. */
export function domainText(d: KeyDomainStatus): string {
  if (d.xkekUid)
    return `XKEK domain (key agreement; not managed by sc-hsm-ts), UID ${toHex(d.xkekUid).toUpperCase()}`;
  const shares = `${d.total} share(s)`;
  if (d.outstanding > 0) return `${shares}, import pending: ${d.outstanding} still missing`;
  return `${shares}, key check value ${kcvText(d.kcv)}${d.allZero ? ' (ALL-ZERO DKEK: anyone can unwrap its keys)' : ''}`;
}
