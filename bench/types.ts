/** One measurement of a benchmark: ours against a reference implementation ("theirs"). */
export interface BenchResult {
  /**
   * What is measured, starting with where: `[model]` on the virtual card under the nitrokey-hsm2
   * timing profile (src/sim/profile.ts: the real device's latencies, waited for real), `[raw virtual
   * card]` on the virtual card answering at once (the host's own costs), or no card at all.
   */
  name: string;
  /** Our time (or other cost) in `unit`. */
  ours: number;
  /** The reference's, in the same unit. */
  theirs: number;
  unit: string;
  /** ours / theirs: lower is better. */
  ratio: number;
  /** The ratio we aim to stay at or below. */
  target: number;
}

/** What every `bench/*.bench.ts` default-exports. */
export type BenchRun = () => Promise<BenchResult[]>;

/** Median of a non-empty list of numbers. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
