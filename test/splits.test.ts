// Evaluation splits and label-fraction subsets: determinism, disjointness, sizes, stratification quality,
// nesting and the subset file. Only the cache index is needed, so the cache here has no volume files.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { evalSplits, labelSubset, FRACTION_LADDER } from '../src/eval/splits.js';
import { patientOf } from '../src/eval/stratification.js';
import { Rng } from '../src/util/rng.js';

const tmp = mkdtempSync(join(tmpdir(), 't3d-splits-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const PREVALENCE = [0.4, 0.3, 0.2, 0.12, 0.08, 0.05, 0.02, 0.01];
const L = PREVALENCE.length;

/** An index-only cache: 600 training patients (every 7th with a second reconstruction), 150 test patients. */
function writeIndex(dir: string, o: { flip?: string } = {}): Map<string, number[]> {
  mkdirSync(dir, { recursive: true });
  const rng = new Rng(42);
  const labels = new Map<string, number[]>();
  const entries: object[] = [];
  const add = (split: string, name: string, y: number[]) => {
    labels.set(name, y);
    entries.push({
      name,
      file: `volumes/${name}.safetensors`,
      split,
      shape: [4, 4, 4],
      spacing: [1, 1, 1],
      sourceHash: name,
      labels: y,
      report: '',
      hasMask: false,
      rescale: 'none',
    });
  };
  for (const [split, n] of [
    ['train', 600],
    ['valid', 150],
  ] as const) {
    for (let i = 0; i < n; i++) {
      // correlated labels: a latent severity raises every label's chance
      const severity = rng.next();
      const y = PREVALENCE.map((p) => (rng.next() < p * (0.5 + severity) ? 1 : 0));
      const name = `${split}_${i}_a_1`;
      add(split, name, name === o.flip ? y.map((v) => 1 - v) : y);
      if (i % 7 === 3) add(split, `${split}_${i}_a_2`, y);
    }
  }
  writeFileSync(join(dir, 'index.jsonl'), entries.map((e) => JSON.stringify(e)).join('\n') + '\n');
  writeFileSync(
    join(dir, 'cache.json'),
    JSON.stringify({
      preset: { name: 'tiny', shape: [4, 4, 4] },
      labelNames: PREVALENCE.map((_, l) => `label ${l}`),
      count: entries.length,
    }),
  );
  return labels;
}

const cache = join(tmp, 'cache');
const labels = writeIndex(cache);
const positives = (names: string[]) =>
  Array.from({ length: L }, (_, l) => names.reduce((s, n) => s + labels.get(n)![l]!, 0));

test('evaluation splits: deterministic per seed, disjoint, complete, patients on one side, val ≈ 20 %', () => {
  const a = evalSplits(cache),
    b = evalSplits(cache, { seed: 0 });
  assert.deepEqual(a, b);
  const c = evalSplits(cache, { seed: 1 });
  assert.notDeepEqual(a.val, c.val);
  const trainPool = [...labels.keys()].filter((n) => n.startsWith('train_'));
  assert.deepEqual([...a.train, ...a.val].sort(), trainPool.sort());
  assert.deepEqual(
    a.test,
    [...labels.keys()].filter((n) => n.startsWith('valid_')),
  );
  const val = new Set(a.val);
  assert.ok(a.train.every((n) => !val.has(n)));
  const valPatients = new Set(a.val.map(patientOf));
  assert.ok(
    a.train.every((n) => !valPatients.has(patientOf(n))),
    'a patient sits on both sides',
  );
  assert.ok(
    Math.abs(a.val.length - Math.round(0.2 * trainPool.length)) <= 1,
    `val has ${a.val.length} of ${trainPool.length}`,
  );
  // stratified: every label with ≥ 5 positives keeps its share in val within ±3 volumes
  const all = positives(trainPool),
    inVal = positives(a.val);
  all.forEach((n, l) => {
    if (n >= 5) assert.ok(Math.abs(inVal[l]! - 0.2 * n) <= 3, `label ${l}: ${inVal[l]} of ${n} in val`);
  });
  assert.equal(evalSplits(cache, { valFraction: 0.1 }).val.length, Math.round(0.1 * trainPool.length));
  assert.throws(() => evalSplits(cache, { valFraction: 1 }), /valFraction must be in \(0, 1\), got 1/);
  assert.throws(
    () => evalSplits(cache, { testSplit: 'test' }),
    /no volumes in test split 'test' \(splits: train, valid\)/,
  );
});

test('label subsets: sizes within rounding, one positive per label, nested, deterministic', () => {
  const s = evalSplits(cache);
  const n = s.train.length;
  const subsets = new Map(FRACTION_LADDER.map((f) => [f, labelSubset(cache, s, f)]));
  const present = positives(s.train).map((c) => c > 0);
  let prev: Set<string> = new Set();
  for (const [f, names] of subsets) {
    const set = new Set(names);
    assert.equal(set.size, names.length, 'duplicates');
    assert.ok(
      names.every((x) => s.train.includes(x)),
      'outside evaluation-train',
    );
    assert.ok(
      [...prev].every((x) => set.has(x)),
      `fraction ${f} does not contain the smaller subset`,
    );
    const pos = positives(names);
    present.forEach((p, l) => {
      if (p) assert.ok(pos[l]! > 0, `fraction ${f}: no positive of label ${l}`);
    });
    const want = Math.max(1, Math.round(f * n));
    if (f >= 0.1) assert.ok(Math.abs(names.length - want) <= 1, `fraction ${f}: ${names.length} volumes, want ${want}`);
    else
      assert.ok(
        names.length >= want && names.length <= want + L,
        `fraction ${f}: ${names.length} volumes, want ${want} (+ label cover)`,
      );
    prev = set;
  }
  assert.equal(subsets.get(1)!.length, n);
  // off the ladder: between its neighbours, and deterministic
  const mid = labelSubset(cache, s, 0.15);
  assert.ok(Math.abs(mid.length - Math.round(0.15 * n)) <= 1);
  assert.ok(subsets.get(0.1)!.every((x) => mid.includes(x)) && mid.every((x) => subsets.get(0.2)!.includes(x)));
  assert.deepEqual(labelSubset(cache, s, 0.15), mid);
  assert.deepEqual(labelSubset(cache, s, 0.1), subsets.get(0.1));
  assert.notDeepEqual(labelSubset(cache, s, 0.1, { seed: 5 }), subsets.get(0.1));
  assert.throws(() => labelSubset(cache, s, 0), /fraction must be in \(0, 1\], got 0/);
});

test('iterative stratification keeps per-label proportions closer than random subsets', () => {
  const s = evalSplits(cache);
  const full = positives(s.train);
  const err = (names: string[]) =>
    positives(names).reduce((e, c, l) => e + Math.abs(c / names.length - full[l]! / s.train.length), 0);
  const strat = labelSubset(cache, s, 0.1);
  const randomErrs = Array.from({ length: 20 }, (_, seed) =>
    err(new Rng(seed, 7).shuffle([...s.train]).slice(0, strat.length)),
  );
  const meanRandom = randomErrs.reduce((a, b) => a + b, 0) / randomErrs.length;
  assert.ok(
    err(strat) < 0.5 * meanRandom,
    `stratified error ${err(strat).toFixed(4)} vs random ${meanRandom.toFixed(4)}`,
  );
  assert.ok(
    err(strat) <= Math.min(...randomErrs),
    `stratified error ${err(strat).toFixed(4)} vs best random ${Math.min(...randomErrs).toFixed(4)}`,
  );
});

test('subset file: written, read back as saved, and refused for another fraction or cache', () => {
  const s = evalSplits(cache);
  const file = join(tmp, 'subsets', 'frac-0.1.json');
  const names = labelSubset(cache, s, 0.1, { file });
  const saved = JSON.parse(readFileSync(file, 'utf8')) as {
    names: string[];
    fraction: number;
    seed: number;
    count: number;
    cache: string;
  };
  assert.deepEqual(saved.names, names);
  assert.equal(saved.fraction, 0.1);
  assert.equal(saved.seed, 0);
  assert.equal(saved.count, names.length);
  // the file is what is used: a hand-edited (still valid) list comes back as is
  writeFileSync(file, JSON.stringify({ ...saved, names: names.slice(1) }));
  assert.deepEqual(labelSubset(cache, s, 0.1, { file }), names.slice(1));
  assert.throws(
    () => labelSubset(cache, s, 0.01, { file }),
    /belongs to another subset: fraction 0\.1 \(asked 0\.01\)/,
  );
  assert.throws(() => labelSubset(cache, s, 0.1, { file, seed: 3 }), /seed 0 \(asked 3\)/);
  const other = join(tmp, 'other');
  writeIndex(other, { flip: 'train_0_a_1' });
  assert.throws(
    () => labelSubset(other, evalSplits(other), 0.1, { file }),
    /belongs to another subset: cache [0-9a-f]{16} \(this cache is [0-9a-f]{16}\)/,
  );
});
