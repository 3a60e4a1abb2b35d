/** One measurement of a benchmark: ours against a reference implementation ("theirs"). */
export interface BenchResult {
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
