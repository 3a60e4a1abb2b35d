import { describe, expect, it } from 'vitest';
import {
  combinePasswordShares,
  formatShareHex,
  type PasswordShare,
  parseShareHex,
  resplitPassword,
  shareIdForScHsmTool,
  splitPassword,
} from '../src/dkek/index.js';
import { bigintFromBytes, fromHex, toHex } from '../src/util/bytes.js';

const code = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return 'no error';
};

describe('password shares (spec §7.2)', () => {
  const pw = fromHex('3a41f27c9d0e5b61');

  it('splits with a 64-bit safe prime above the secret and recovers from any threshold subset', () => {
    const shares = splitPassword(pw, 3, 5);
    expect(shares.map((s) => s.id)).toEqual([1, 2, 3, 4, 5]);
    const p = bigintFromBytes(shares[0]!.prime);
    expect(p > bigintFromBytes(pw)).toBe(true);
    expect(p >> 63n).toBe(1n);
    expect(((p - 1n) / 2n) % 2n).toBe(1n); // (p−1)/2 odd, as for any safe prime > 7
    for (const s of shares) expect(bigintFromBytes(s.value) < p).toBe(true);
    for (const pick of [
      [0, 1, 2],
      [4, 2, 0],
      [1, 3, 4],
      [0, 1, 2, 3, 4],
    ]) {
      expect(toHex(combinePasswordShares(pick.map((i) => shares[i]!)))).toBe(toHex(pw));
    }
  });

  it('fewer than the threshold do not give the password', () => {
    const shares = splitPassword(pw, 3, 4);
    expect(toHex(combinePasswordShares(shares.slice(0, 2)))).not.toBe(toHex(pw));
  });

  it('keeps a leading 00 through our round trip, and behaves like sc-hsm-tool without the length', () => {
    const zpw = fromHex('00b1c2d3e4f50617');
    const shares = splitPassword(zpw, 2, 3);
    expect(toHex(combinePasswordShares(shares.slice(1)))).toBe(toHex(zpw));
    const asTyped: PasswordShare[] = shares.map(({ prime, id, value }) => ({ prime, id, value }));
    expect(toHex(combinePasswordShares(asTyped.slice(0, 2)))).toBe('b1c2d3e4f50617');
    expect(toHex(combinePasswordShares(asTyped.slice(0, 2), { length: 8 }))).toBe(toHex(zpw));
  });

  it('resplit changes custodians without changing the password', () => {
    const old = splitPassword(pw, 2, 3);
    const next = resplitPassword([old[0]!, old[2]!], 3, 6);
    expect(next).toHaveLength(6);
    expect(toHex(next[0]!.prime)).not.toBe('');
    expect(toHex(combinePasswordShares([next[5]!, next[1]!, next[3]!]))).toBe(toHex(pw));
  });

  it('splits longer passwords with a larger prime', () => {
    const long = new TextEncoder().encode('a longer password!');
    const shares = splitPassword(long, 2, 3);
    expect(bigintFromBytes(shares[0]!.prime) > bigintFromBytes(long)).toBe(true);
    expect(new TextDecoder().decode(combinePasswordShares([shares[2]!, shares[0]!]))).toBe(
      'a longer password!',
    );
  });

  it('validates threshold, total, duplicates and primes', () => {
    expect(code(() => splitPassword(pw, 2, 2))).toBe('INVALID_ARGUMENT');
    expect(code(() => splitPassword(pw, 1, 3))).toBe('INVALID_ARGUMENT');
    expect(code(() => splitPassword(pw, 4, 3))).toBe('INVALID_ARGUMENT');
    expect(code(() => splitPassword(new Uint8Array(0), 2, 3))).toBe('INVALID_ARGUMENT');
    const s = splitPassword(pw, 2, 3);
    expect(code(() => combinePasswordShares([s[0]!, s[0]!]))).toBe('INVALID_ARGUMENT');
    expect(code(() => combinePasswordShares([s[0]!]))).toBe('INVALID_ARGUMENT');
    const other = splitPassword(pw, 2, 3);
    expect(code(() => combinePasswordShares([s[0]!, other[1]!]))).toBe('INVALID_ARGUMENT');
  });

  it('formats and parses hex as sc-hsm-tool prints it; share IDs ≥ 10 are typed in hex', () => {
    expect(formatShareHex(fromHex('00e14f0a'))).toBe('00:e1:4f:0a');
    expect(toHex(parseShareHex('00:E1:4f:0a\n'))).toBe('00e14f0a');
    expect(toHex(parseShareHex('e14f0a'))).toBe('e14f0a');
    expect(toHex(parseShareHex('1:02'))).toBe('0102');
    expect(code(() => parseShareHex('zz:01'))).toBe('INVALID_ARGUMENT');
    expect(code(() => parseShareHex(''))).toBe('INVALID_ARGUMENT');
    expect(shareIdForScHsmTool(9)).toBe('9');
    expect(shareIdForScHsmTool(10)).toBe('a');
    const shares = splitPassword(pw, 2, 3);
    const typed = shares.map((sh) => ({
      prime: parseShareHex(formatShareHex(sh.prime)),
      id: Number.parseInt(shareIdForScHsmTool(sh.id), 16),
      value: parseShareHex(formatShareHex(sh.value)),
    }));
    expect(toHex(combinePasswordShares(typed.slice(1)))).toBe(toHex(pw));
  });
});
