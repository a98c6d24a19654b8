// Percentile-bootstrap confidence intervals over evaluation items (volumes), seeded and reproducible.
import { Rng } from '../../util/rng.js';

export interface BootstrapOptions {
  /** Number of bootstrap resamples drawn (default 1000). */
  resamples?: number;
  /** Seed of the resampling stream (default 0): the same seed gives the same interval. */
  seed?: number;
  /** Two-sided level: the interval spans the alpha/2 and 1 − alpha/2 percentiles (default 0.05 → 95 %). */
  alpha?: number;
}

/**
 * Quantile q ∈ [0, 1] of ascending values with linear interpolation between order statistics — numpy's
 * percentile default and torch.quantile's 'linear', including their lerp form (from the upper end when the
 * fraction is ≥ ½) so results agree to the last bit.
 */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  const h = (sorted.length - 1) * q,
    i = Math.floor(h),
    t = h - i;
  const a = sorted[i]!,
    b = sorted[Math.min(i + 1, sorted.length - 1)]!;
  if (a === b) return a; // also keeps ±Infinity out of Infinity − Infinity
  return t < 0.5 ? a + (b - a) * t : b - (b - a) * (1 - t);
}

function checkOptions(fn: string, n: number, o: BootstrapOptions): { resamples: number; seed: number; alpha: number } {
  const resamples = o.resamples ?? 1000,
    seed = o.seed ?? 0,
    alpha = o.alpha ?? 0.05;
  if (!Number.isInteger(n) || n < 1) throw new Error(`${fn}: n must be a positive integer (number of items), got ${n}`);
  if (!Number.isInteger(resamples) || resamples < 1)
    throw new Error(`${fn}: resamples must be a positive integer, got ${resamples}`);
  if (!(alpha > 0 && alpha < 1)) throw new Error(`${fn}: alpha must lie in (0, 1), got ${alpha}`);
  return { resamples, seed, alpha };
}

function drawIndices(rng: Rng, n: number): Int32Array {
  const idx = new Int32Array(n);
  for (let i = 0; i < n; i++) idx[i] = rng.int(0, n - 1);
  return idx;
}

/** The alpha/2 and 1 − alpha/2 percentiles of the non-NaN values, how many those were and how many were NaN. */
function interval(values: number[], alpha: number): { lo: number; hi: number; used: number; skipped: number } {
  const kept = Float64Array.from(values.filter((v) => !Number.isNaN(v))).sort();
  return {
    lo: quantileSorted(kept, alpha / 2),
    hi: quantileSorted(kept, 1 - alpha / 2),
    used: kept.length,
    skipped: values.length - kept.length,
  };
}

function bootstrapColumns(
  fn: string,
  n: number,
  statistic: (idx: Int32Array) => ArrayLike<number>,
  o: BootstrapOptions,
): { lo: number[]; hi: number[]; resamples: number[]; skipped: number[] } {
  const { resamples, seed, alpha } = checkOptions(fn, n, o);
  const rng = new Rng(seed);
  const columns: number[][] = [];
  for (let r = 0; r < resamples; r++) {
    const v = statistic(drawIndices(rng, n));
    if (r === 0) for (let i = 0; i < v.length; i++) columns.push([]);
    if (v.length !== columns.length)
      throw new Error(
        `${fn}: statistic returned ${v.length} values on resample ${r} but ${columns.length} on the first`,
      );
    for (let i = 0; i < v.length; i++) columns[i]!.push(v[i]!);
  }
  const out = { lo: [] as number[], hi: [] as number[], resamples: [] as number[], skipped: [] as number[] };
  for (const column of columns) {
    const c = interval(column, alpha);
    out.lo.push(c.lo);
    out.hi.push(c.hi);
    out.resamples.push(c.used);
    out.skipped.push(c.skipped);
  }
  return out;
}

/**
 * Percentile bootstrap of several statistics from one pass: each resample draws n item indices with replacement
 * and `statistic` returns the values of all statistics on them (e.g. macro metrics and every label's AUROC), so
 * all intervals rest on the same resampled volumes. Each statistic skips, and counts, its own NaN resamples.
 * Entry i of lo/hi/resamples/skipped belongs to statistic i; resamples[i] + skipped[i] = requested.
 */
export function bootstrapCis(
  n: number,
  statistic: (idx: Int32Array) => ArrayLike<number>,
  o: BootstrapOptions = {},
): { lo: number[]; hi: number[]; resamples: number[]; skipped: number[] } {
  return bootstrapColumns('bootstrapCis', n, statistic, o);
}

/**
 * Percentile bootstrap over items (volumes): each resample draws n item indices with replacement and passes
 * them to `statistic` (so AUROC, Dice means, ... are recomputed on the resample). Resamples whose statistic is
 * NaN (e.g. no positive label drawn) are skipped and counted. Returns the interval, the number of resamples it
 * rests on and the number skipped (resamples + skipped = requested); lo = hi = NaN when all were skipped.
 */
export function bootstrapCi(
  n: number,
  statistic: (idx: Int32Array) => number,
  o: BootstrapOptions = {},
): { lo: number; hi: number; resamples: number; skipped: number } {
  const c = bootstrapColumns('bootstrapCi', n, (idx) => [statistic(idx)], o);
  return { lo: c.lo[0]!, hi: c.hi[0]!, resamples: c.resamples[0]!, skipped: c.skipped[0]! };
}

export interface PairedBootstrapOptions extends BootstrapOptions {
  /**
   * Training runs (seeds) per system, when each system was trained several times: every resample then also
   * draws, independently for each system, that many run indices with replacement and passes them as the
   * statistic's second argument. Default: one run each, so `runs` is always [0].
   */
  runs?: { a: number; b: number };
}

/**
 * Paired bootstrap of a difference A − B between two systems scored on the same items: each resample draws one
 * set of item indices used for both systems (pairing removes the between-volume variance), and, with
 * `o.runs`, run indices for each system, so item and seed variability are resampled jointly. `diff` is the
 * difference on all items and runs; `exceedsNoise` says the interval excludes 0. NaN resamples are skipped.
 */
export function pairedBootstrapDiff(
  n: number,
  statA: (idx: Int32Array, runs: Int32Array) => number,
  statB: (idx: Int32Array, runs: Int32Array) => number,
  o: PairedBootstrapOptions = {},
): { diff: number; lo: number; hi: number; exceedsNoise: boolean; resamples: number; skipped: number } {
  const { resamples, seed, alpha } = checkOptions('pairedBootstrapDiff', n, o);
  const runsA = o.runs?.a ?? 1,
    runsB = o.runs?.b ?? 1;
  for (const [name, v] of [
    ['runs.a', runsA],
    ['runs.b', runsB],
  ] as const) {
    if (!Number.isInteger(v) || v < 1)
      throw new Error(`pairedBootstrapDiff: ${name} must be a positive integer, got ${v}`);
  }
  const all = (m: number) => Int32Array.from({ length: m }, (_, i) => i);
  const items = all(n);
  const diff = statA(items, all(runsA)) - statB(items, all(runsB));
  const rng = new Rng(seed);
  const values: number[] = [];
  for (let r = 0; r < resamples; r++) {
    const idx = drawIndices(rng, n);
    values.push(statA(idx, drawIndices(rng, runsA)) - statB(idx, drawIndices(rng, runsB)));
  }
  const { lo, hi, used, skipped } = interval(values, alpha);
  return { diff, lo, hi, exceedsNoise: lo > 0 || hi < 0, resamples: used, skipped };
}
