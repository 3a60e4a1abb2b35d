/**
 * The key domains of the virtual card (firmware 3.x, spec §3.10): slots 0..n−1 where n is the
 * INITIALIZE tag 97 count (one slot, domain 0, without it). Domain 0's DKEK is `state.dkek` (what
 * INITIALIZE tag 92 configures), the others `state.domains`; an empty slot is an unused domain.
 * Keys belong to the domain of their tag 92 (domain 0 without one).
 */
import type { CardState, DkekState, StoredKey } from './state.js';
import { fail } from './sw.js';
import { DOMAIN_UNUSED_SW, KEY_FCP_DOMAIN, OTHER_KEY_DOMAIN_SW } from './uncertain.js';

/** Number of key domain slots. */
export function domainCount(s: CardState): number {
  return Math.max(1, s.keyDomains ?? 1);
}

/** The DKEK of domain `d`, undefined when the slot is unused. */
export function domainDkek(s: CardState, d: number): DkekState | undefined {
  return d === 0 ? s.dkek : s.domains?.get(d);
}

/** Sets (or, with undefined, clears) the DKEK of domain `d`. */
export function setDomainDkek(s: CardState, d: number, v: DkekState | undefined): void {
  if (d === 0) {
    if (v) s.dkek = v;
    else delete s.dkek;
    return;
  }
  if (v) {
    s.domains ??= new Map();
    s.domains.set(d, v);
  } else {
    s.domains?.delete(d);
    if (s.domains?.size === 0) delete s.domains;
  }
}

/** The domain a key belongs to. */
export function keyDomain(k: StoredKey): number {
  return k.domain ?? 0;
}

/** 6A86 for a domain number beyond the slots. */
export function checkDomainNumber(s: CardState, d: number): void {
  if (d < 0 || d >= domainCount(s)) fail(OTHER_KEY_DOMAIN_SW, `key domain ${d} beyond ${domainCount(s)}`);
}

/** The domain named by tag 92 at key generation: in range (6A86) and created (6A88). */
export function checkKeyDomain(s: CardState, d: number): void {
  checkDomainNumber(s, d);
  if (d !== 0 && !domainDkek(s, d)) fail(DOMAIN_UNUSED_SW, `key domain ${d} is unused`);
}

/** On a card with key domains every new key records its domain (0 without tag 92): see KEY_FCP_DOMAIN. */
export function bindKeyDomain(s: CardState, meta: { domain?: number }): void {
  if (KEY_FCP_DOMAIN && s.keyDomains !== undefined) meta.domain ??= 0;
}
