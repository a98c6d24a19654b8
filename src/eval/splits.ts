// The evaluation protocol's splits. Test = the cache's held-out split ('valid' in CT-RATE); the cache's
// training split is divided into an evaluation-train part and an evaluation-validation part (early stopping,
// operating thresholds). Label-fraction subsets of evaluation-train (1 %, 10 %, ...) are nested, stratified
// and saved as JSON, so every method trains on exactly the same volumes.
// The stratification, which keeps the volumes of one patient together, is in stratification.ts.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from '../util/files.js';
import { dirname } from 'node:path';
import { readCacheIndex, type CacheIndex } from '../data/cache.js';
import { Rng } from '../util/rng.js';
import {
  Partition,
  balanceSizes,
  coverLabels,
  iterativeStratification,
  unitsOf,
  wantedCounts,
} from './stratification.js';

export interface EvalSplits {
  /** evaluation-train volumes (label subsets are drawn from these) */
  train: string[];
  /** evaluation-validation volumes: early stopping and thresholds */
  val: string[];
  /** held-out test volumes (the cache's test split, untouched) */
  test: string[];
  seed: number;
  valFraction: number;
}

/**
 * Label fractions whose subsets are nested by construction: evaluation-train is partitioned once into the
 * increments between consecutive fractions, and the subset for a fraction is the union of the increments
 * up to it. A fraction off this ladder is the ladder subset below it plus a stratified part of the next
 * increment, so it is nested with every ladder fraction (two off-ladder fractions between the same ladder
 * steps need not nest with each other).
 */
export const FRACTION_LADDER = [0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1] as const;

const hash16 = (s: string): string => createHash('sha256').update(s).digest('hex').slice(0, 16);

/** Identifies a cache's content: label names and each volume's name, split, source hash and labels. */
export function cacheFingerprint(cacheDir: string, index: CacheIndex = readCacheIndex(cacheDir)): string {
  const entries = [...index.entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return hash16(
    JSON.stringify({
      labels: index.labelNames,
      entries: entries.map((e) => [e.name, e.split, e.sourceHash, e.labels]),
    }),
  );
}

/** Identifies a set of volume names (order-free). */
export function namesFingerprint(names: readonly string[]): string {
  return hash16([...names].sort().join('\n'));
}

function checkFraction(what: string, v: number, allowOne: boolean): void {
  if (!(typeof v === 'number' && v > 0 && (allowOne ? v <= 1 : v < 1)))
    throw new Error(`${what} must be in (0, ${allowOne ? '1]' : '1)'}, got ${v}`);
}

/**
 * The evaluation splits of a cache, as volume names in cache-index order: `test` = the cache's `testSplit`
 * ('valid'); the cache's `trainSplit` ('train') divided by iterative stratification into `train` and `val`
 * (`valFraction` of its volumes, default 0.2, rounded; patients never straddle the two). Deterministic in
 * (cache, seed, valFraction).
 */
export function evalSplits(
  cacheDir: string,
  o: { seed?: number; valFraction?: number; trainSplit?: string; testSplit?: string } = {},
): EvalSplits {
  const seed = o.seed ?? 0,
    valFraction = o.valFraction ?? 0.2;
  const trainSplit = o.trainSplit ?? 'train',
    testSplit = o.testSplit ?? 'valid';
  checkFraction('evalSplits: valFraction', valFraction, false);
  const index = readCacheIndex(cacheDir);
  const splitNames = [...new Set(index.entries.map((e) => e.split))].join(', ');
  const pool = index.entries.filter((e) => e.split === trainSplit);
  const test = index.entries.filter((e) => e.split === testSplit).map((e) => e.name);
  if (pool.length < 2)
    throw new Error(
      `${cacheDir}: split '${trainSplit}' has ${pool.length} volumes, need ≥ 2 to divide into train and val ` +
        `(splits: ${splitNames})`,
    );
  if (!test.length) throw new Error(`${cacheDir}: no volumes in test split '${testSplit}' (splits: ${splitNames})`);
  const labels = new Map(pool.map((e) => [e.name, e.labels]));
  const L = index.labelNames.length;
  const units = unitsOf(
    pool.map((e) => e.name),
    (n) => labels.get(n)!,
    L,
  );
  if (units.length < 2)
    throw new Error(`${cacheDir}: split '${trainSplit}' holds a single patient; cannot divide it into train and val`);
  const nVal = Math.min(pool.length - 1, Math.max(1, Math.round(valFraction * pool.length)));
  const targets = [pool.length - nVal, nVal];
  const rng = new Rng(seed, 0x5b117);
  const fold = iterativeStratification(units, targets, L, rng);
  const part = new Partition(units, fold, 2, L);
  balanceSizes(part, targets, wantedCounts(units, targets, L), rng);
  const inVal = new Set(units.filter((_, i) => fold[i] === 1).flatMap((u) => u.names));
  return {
    train: pool.filter((e) => !inVal.has(e.name)).map((e) => e.name),
    val: pool.filter((e) => inVal.has(e.name)).map((e) => e.name),
    test,
    seed,
    valFraction,
  };
}

/** Volumes wanted in each ladder prefix: round(f·n), at least 1, non-decreasing. */
function prefixSizes(n: number): number[] {
  let prev = 0;
  return FRACTION_LADDER.map((f) => (prev = Math.max(prev, 1, Math.round(f * n))));
}

/** The label subset of `train` for `fraction`, computed (see FRACTION_LADDER). */
function computeSubset(
  train: string[],
  labelsOf: (name: string) => number[],
  L: number,
  fraction: number,
  seed: number,
): string[] {
  if (fraction === 1) return [...train];
  const units = unitsOf(train, labelsOf, L);
  const sizes = prefixSizes(train.length);
  const targets = sizes.map((s, k) => s - (k ? sizes[k - 1]! : 0));
  const rng = new Rng(seed, 0x1adde7);
  const fold = iterativeStratification(units, targets, L, rng);
  const part = new Partition(units, fold, targets.length, L);
  const wantLabel = wantedCounts(units, targets, L);
  balanceSizes(part, targets, wantLabel, rng);
  coverLabels(part, targets.map((_, k) => k).slice(0, -1), targets.length - 1, wantLabel, rng);
  const namesIn = (pred: (f: number) => boolean) =>
    new Set(units.filter((_, i) => pred(fold[i]!)).flatMap((u) => u.names));
  const step = FRACTION_LADDER.findIndex((f) => Math.abs(f - fraction) < 1e-12);
  if (step >= 0) {
    const chosen = namesIn((f) => f <= step);
    return train.filter((n) => chosen.has(n));
  }
  // Off the ladder: the ladder subset below plus a stratified part of the next increment.
  const hi = FRACTION_LADDER.findIndex((f) => f > fraction);
  const below = hi > 0 ? sizesOf(part, hi - 1) : 0;
  const inc = units.map((_, i) => i).filter((i) => fold[i] === hi);
  const incUnits = inc.map((i) => units[i]!);
  const need = Math.max(0, Math.max(1, Math.round(fraction * train.length)) - below);
  const incSize = incUnits.reduce((s, u) => s + u.names.length, 0);
  const subTargets = [Math.min(need, incSize), Math.max(0, incSize - need)];
  const subRng = new Rng(seed, 0x0ff1ad, Math.round(fraction * 1e9));
  const subFold = iterativeStratification(incUnits, subTargets, L, subRng);
  // Folds: 0 = ladder subset below (fixed), 1 = the part taken, 2 = the rest of the increment, 3 = later increments.
  const all = units.map((_, i) => (fold[i]! < hi ? 0 : fold[i]! > hi ? 3 : 1 + subFold[inc.indexOf(i)]!));
  const sub = new Partition(units, all, 4, L);
  const subWant = [[...sub.counts[0]!], ...wantedCounts(incUnits, subTargets, L), [...sub.counts[3]!]];
  balanceSizes(sub, [sub.sizes[0]!, ...subTargets, sub.sizes[3]!], subWant, subRng, new Set([0, 3]));
  coverLabels(sub, [1], 2, subWant, subRng);
  const chosen = new Set(units.filter((_, i) => all[i]! <= 1).flatMap((u) => u.names));
  return train.filter((n) => chosen.has(n));
}

function sizesOf(p: Partition, lastFold: number): number {
  return p.sizes.slice(0, lastFold + 1).reduce((a, b) => a + b, 0);
}

/** What a subset file holds. */
export interface LabelSubsetFile {
  format: 't3d-label-subset/1';
  cache: string;
  fraction: number;
  seed: number;
  /** the evaluation-train part it was drawn from */
  splits: { seed: number; valFraction: number; train: string };
  count: number;
  names: string[];
}

/**
 * The volumes of `splits.train` labelled at `fraction` (0 < fraction ≤ 1): a stratified subset with about
 * round(fraction·n) volumes (at least 1; more only where needed to hold one positive of every label that
 * evaluation-train has), nested across fractions (see FRACTION_LADDER), deterministic in (cache, splits,
 * fraction, seed). `seed` defaults to the splits' seed. With `file`: read when it exists (it must be for
 * the same cache, splits, fraction and seed, else an error says which differs), otherwise computed and
 * written atomically, so that every method sees the same subset.
 */
export function labelSubset(
  cacheDir: string,
  splits: EvalSplits,
  fraction: number,
  o: { seed?: number; file?: string } = {},
): string[] {
  checkFraction('labelSubset: fraction', fraction, true);
  const seed = o.seed ?? splits.seed;
  const index = readCacheIndex(cacheDir);
  const expect = {
    cache: cacheFingerprint(cacheDir, index),
    fraction,
    seed,
    splits: { seed: splits.seed, valFraction: splits.valFraction, train: namesFingerprint(splits.train) },
  };
  if (o.file && existsSync(o.file)) return readSubsetFile(o.file, expect, splits.train);
  const labels = new Map(index.entries.map((e) => [e.name, e.labels]));
  const missing = splits.train.filter((n) => !labels.has(n));
  if (missing.length)
    throw new Error(
      `labelSubset: ${missing.length} evaluation-train volumes are not in ${cacheDir} (e.g. ${missing[0]}); ` +
        'splits from another cache?',
    );
  if (!splits.train.length) throw new Error('labelSubset: the evaluation-train part is empty');
  const names = computeSubset(splits.train, (n) => labels.get(n)!, index.labelNames.length, fraction, seed);
  if (o.file) {
    const body: LabelSubsetFile = { format: 't3d-label-subset/1', ...expect, count: names.length, names };
    mkdirSync(dirname(o.file), { recursive: true });
    writeFileAtomic(o.file, JSON.stringify(body, null, 1) + '\n');
  }
  return names;
}

function readSubsetFile(
  file: string,
  expect: Omit<LabelSubsetFile, 'format' | 'count' | 'names'>,
  train: string[],
): string[] {
  let saved: LabelSubsetFile;
  try {
    saved = JSON.parse(readFileSync(file, 'utf8')) as LabelSubsetFile;
  } catch (e) {
    throw new Error(`${file}: not a label-subset file (${(e as Error).message})`);
  }
  if (saved.format !== 't3d-label-subset/1' || !Array.isArray(saved.names))
    throw new Error(`${file}: not a label-subset file (format '${String(saved.format)}')`);
  const diffs: string[] = [];
  if (saved.cache !== expect.cache) diffs.push(`cache ${saved.cache} (this cache is ${expect.cache})`);
  if (saved.fraction !== expect.fraction) diffs.push(`fraction ${saved.fraction} (asked ${expect.fraction})`);
  if (saved.seed !== expect.seed) diffs.push(`seed ${saved.seed} (asked ${expect.seed})`);
  const s = saved.splits ?? {};
  if (s.train !== expect.splits.train || s.seed !== expect.splits.seed || s.valFraction !== expect.splits.valFraction) {
    diffs.push(
      `evaluation splits seed ${s.seed}, valFraction ${s.valFraction}, train ${s.train} ` +
        `(these are seed ${expect.splits.seed}, valFraction ${expect.splits.valFraction}, ` +
        `train ${expect.splits.train})`,
    );
  }
  if (diffs.length)
    throw new Error(`${file}: belongs to another subset: ${diffs.join('; ')}. Delete it or give another file.`);
  const inTrain = new Set(train);
  const stray = saved.names.filter((n) => !inTrain.has(n));
  if (stray.length)
    throw new Error(`${file}: ${stray.length} names are not in the evaluation-train part (e.g. ${stray[0]})`);
  return saved.names;
}
