// Classification and retrieval metrics against scikit-learn and CT-CLIP's protocol (fixtures by
// scripts/fixtures/make_eval_fixtures.py), and the bootstrap's contract.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  auroc,
  averagePrecision,
  binaryStats,
  macroAuroc,
  recallAtK,
  rocCurve,
  youdenThreshold,
} from '../src/eval/metrics/classification.js';
import { mapAtK, rankSummary, retrievalRanks } from '../src/eval/metrics/retrieval.js';
import { bootstrapCi, bootstrapCis, pairedBootstrapDiff, quantileSorted } from '../src/eval/metrics/bootstrap.js';
import { mutualInformation, normalizedMutualInformation } from '../src/eval/metrics/clustering.js';
import { fixture } from './helpers.js';

/** The fixtures write non-finite numbers as strings (JSON has no literal for them). */
const load = <T>(name: string): T =>
  JSON.parse(readFileSync(fixture('eval', name), 'utf8'), (_k, v) =>
    v === 'NaN' ? NaN : v === 'Infinity' ? Infinity : v === '-Infinity' ? -Infinity : v,
  ) as T;

// Rates and areas are the same sums as scikit-learn's in another order: they agree to a few ulps, so 1e-12.
function close(actual: number, expected: number, what: string, tol = 1e-12): void {
  if (Number.isNaN(expected)) return assert.ok(Number.isNaN(actual), `${what}: ${actual}, expected NaN`);
  if (!Number.isFinite(expected)) return assert.equal(actual, expected, what);
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: ${actual}, expected ${expected}`);
}
const closeAll = (a: number[], e: number[], what: string) => {
  assert.equal(a.length, e.length, `${what}: length`);
  a.forEach((v, i) => close(v, e[i]!, `${what}[${i}]`));
};

interface StatsRow {
  threshold: number;
  f1: number;
  accuracy: number;
  precision: number;
  recall: number;
  specificity: number;
  tp: number;
  fp: number;
  tn: number;
  fn: number;
}
interface ClsCase {
  scores: number[];
  labels: number[];
  auroc: number;
  youden: number;
  ap: number;
  roc: { fpr: number[]; tpr: number[]; thresholds: number[] };
  stats: StatsRow[];
}
const cls = load<ClsCase[]>('metrics.json');

test('AUROC, average precision and ROC curve equal sklearn, with ties and one-class labels', () => {
  cls.forEach((c, i) => {
    close(auroc(c.scores, c.labels), c.auroc, `case ${i} auroc`);
    close(averagePrecision(c.scores, c.labels), c.ap, `case ${i} AP`);
    const roc = rocCurve(c.scores, c.labels);
    assert.deepEqual(roc.thresholds, c.roc.thresholds, `case ${i} thresholds`);
    closeAll(roc.fpr, c.roc.fpr, `case ${i} fpr`);
    closeAll(roc.tpr, c.roc.tpr, `case ${i} tpr`);
  });
  assert.ok(
    cls.some((c) => Number.isNaN(c.ap)) && cls.some((c) => c.labels.every(Boolean)),
    'fixture covers no positives and no negatives',
  );
});

test("Youden threshold is sklearn's argmax of TPR − FPR (+Infinity when no cut helps, NaN for one class)", () => {
  cls.forEach((c, i) => close(youdenThreshold(c.scores, c.labels), c.youden, `case ${i} youden`, 0));
  assert.ok(
    cls.some((c) => c.youden === Infinity),
    'fixture covers the inverted classifier',
  );
});

test('binaryStats at edge thresholds equals sklearn with zero_division=0 (score ≥ threshold is positive)', () => {
  cls.forEach((c, i) => {
    for (const row of c.stats) {
      const s = binaryStats(c.scores, c.labels, row.threshold);
      const what = `case ${i} @ ${row.threshold}`;
      assert.deepEqual([s.tp, s.fp, s.tn, s.fn], [row.tp, row.fp, row.tn, row.fn], `${what} counts`);
      for (const k of ['f1', 'accuracy', 'precision', 'recall', 'specificity'] as const)
        close(s[k], row[k], `${what} ${k}`);
      assert.equal(s.sensitivity, s.recall);
    }
  });
});

test('macro AUROC skips one-class labels; recall@K; argument errors', () => {
  const m = macroAuroc(
    [
      [0.9, 0.1],
      [0.2, 0.3],
      [0.8, 0.5],
    ],
    [
      [1, 0],
      [0, 0],
      [1, 0],
    ],
  );
  assert.equal(m.labelsCounted, 1);
  assert.equal(m.value, 1);
  assert.ok(Number.isNaN(m.perLabel[1]!));
  const sim = [
    [0.9, 0.1, 0.2],
    [0.8, 0.5, 0.1],
    [0.1, 0.2, 0.3],
  ];
  assert.deepEqual(recallAtK(sim, [1, 2]), { 1: 2 / 3, 2: 1 });
  assert.deepEqual(
    recallAtK(
      [
        [1, 1],
        [1, 1],
      ],
      [1],
    ),
    { 1: 0 },
    'a collapsed encoder does not get R@1 = 1',
  );
  assert.throws(() => auroc([1, 2], [1]), /2 scores but 1 labels/);
  assert.throws(() => rocCurve([1, NaN], [0, 1]), /scores\[1\] is NaN/);
  assert.throws(() => averagePrecision([1], [0, 1]), /1 scores but 2 labels/);
});

interface RetrievalFixture {
  ranks: { sim: number[][]; ranks: number[] }[];
  map: { embeddings: number[][]; labels: number[][]; ks: number[]; map: Record<string, number> }[];
}
const retrieval = load<RetrievalFixture>('retrieval.json');

test('retrieval ranks count ties against the query; summary; CT-CLIP MAP@K', () => {
  for (const c of retrieval.ranks) assert.deepEqual(retrievalRanks(c.sim), c.ranks);
  const s = rankSummary([1, 3, 2, 5, 1], [1, 2, 10]);
  assert.deepEqual(
    s,
    { recall: { 'R@1': 0.4, 'R@2': 0.6 }, medianRank: 2, meanRank: 2.4 },
    'R@10 > 5 candidates is left out',
  );
  assert.equal(rankSummary([4, 1, 2, 3], [1], 10).medianRank, 2.5);
  assert.deepEqual(Object.keys(rankSummary([1, 2], [1, 5, 10], 10).recall), ['R@1', 'R@5', 'R@10']);
  assert.throws(() => rankSummary([1, 6], [1], 5), /ranks\[1\] = 6 is not a rank in 1\.\.5/);
  assert.throws(() => retrievalRanks([[1, 2], [3]]), /row 1 has 1 candidates/);
  retrieval.map.forEach((c, i) => {
    const got = mapAtK(c.embeddings, c.labels, c.ks);
    assert.deepEqual(Object.keys(got), Object.keys(c.map));
    for (const k of Object.keys(c.map)) close(got[k]!, c.map[k]!, `case ${i} ${k}`);
  });
  assert.throws(
    () =>
      mapAtK(
        [
          [0, 0],
          [1, 0],
        ],
        [[1], [1]],
        [1],
      ),
    /embedding 0 has zero or NaN norm/,
  );
  assert.throws(() => mapAtK([[1, 0]], [[1]], [0]), /K must be a positive integer, got 0/);
});

test('quantile interpolates linearly between order statistics, bit for bit as numpy.percentile', () => {
  const v = Float64Array.of(1, 2, 4, 10);
  // numpy.percentile([1, 2, 4, 10], [0, 2.5, 50, 95, 100])
  assert.deepEqual(
    [0, 0.025, 0.5, 0.95, 1].map((q) => quantileSorted(v, q)),
    [1, 1.075, 3, 9.099999999999998, 10],
  );
  assert.ok(Number.isNaN(quantileSorted([], 0.5)));
});

test('bootstrap: seeded, contains the estimate, counts NaN resamples, paired differences', () => {
  const x = Array.from({ length: 200 }, (_, i) => Math.sin(i * 12.9898) * 0.5 + (i % 7) / 7);
  const mean = (idx: Int32Array) => idx.reduce((s, i) => s + x[i]!, 0) / idx.length;
  const all = Int32Array.from(x.keys());
  const a = bootstrapCi(x.length, mean, { seed: 3 });
  assert.deepEqual(bootstrapCi(x.length, mean, { seed: 3 }), a, 'same seed, same interval');
  assert.notDeepEqual(bootstrapCi(x.length, mean, { seed: 4 }), a);
  assert.ok(a.lo < mean(all) && mean(all) < a.hi, `${a.lo} < ${mean(all)} < ${a.hi}`);
  assert.equal(a.resamples + a.skipped, 1000);
  const narrow = bootstrapCi(x.length, mean, { seed: 3, alpha: 0.5 });
  assert.ok(narrow.lo > a.lo && narrow.hi < a.hi, 'a lower level gives a narrower interval');

  // AUROC is NaN on a resample without a positive: with 1 positive in 10, about (9/10)^10 ≈ 35 % are skipped
  const labels = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    scores = labels.map((l, i) => l + i / 20);
  const ci = bootstrapCi(
    10,
    (idx) =>
      auroc(
        Array.from(idx, (i) => scores[i]!),
        Array.from(idx, (i) => labels[i]!),
      ),
    { resamples: 400 },
  );
  assert.ok(ci.skipped > 80 && ci.skipped < 200, `skipped ${ci.skipped}`);
  assert.equal(ci.resamples + ci.skipped, 400);
  assert.equal(ci.hi, 1);
  const allNaN = bootstrapCi(5, () => NaN, { resamples: 10 });
  assert.ok(Number.isNaN(allNaN.lo) && allNaN.skipped === 10);

  const multi = bootstrapCis(x.length, (idx) => [mean(idx), NaN], { seed: 3 });
  assert.deepEqual([multi.lo[0], multi.hi[0]], [a.lo, a.hi], 'one pass, the same resamples as bootstrapCi');
  assert.deepEqual(multi.skipped, [0, 1000]);

  const better = (idx: Int32Array) => mean(idx) + 0.2;
  const d = pairedBootstrapDiff(x.length, better, mean, { seed: 1 });
  close(d.diff, 0.2, 'diff');
  assert.ok(d.exceedsNoise && d.lo > 0.19 && d.hi < 0.21, `clear difference: [${d.lo}, ${d.hi}]`);
  const same = pairedBootstrapDiff(x.length, mean, mean, { seed: 1 });
  assert.deepEqual([same.diff, same.lo, same.hi, same.exceedsNoise], [0, 0, 0, false]);
  // with several training runs, run indices are resampled too: the run-to-run spread widens the interval
  const runEffect = [0, 0.1, -0.1];
  const withRuns = (idx: Int32Array, runs: Int32Array) =>
    mean(idx) + runs.reduce((s, r) => s + runEffect[r]!, 0) / runs.length;
  const r = pairedBootstrapDiff(x.length, withRuns, mean, { seed: 1, runs: { a: 3, b: 1 } });
  close(r.diff, 0, 'diff over all runs');
  assert.ok(!r.exceedsNoise && r.hi - r.lo > 0.05, `runs widen the interval: [${r.lo}, ${r.hi}]`);
  assert.throws(() => bootstrapCi(0, mean), /n must be a positive integer/);
  assert.throws(() => bootstrapCi(5, mean, { alpha: 1 }), /alpha must lie in \(0, 1\)/);
  assert.throws(
    () => pairedBootstrapDiff(5, mean, mean, { runs: { a: 0, b: 1 } }),
    /runs\.a must be a positive integer/,
  );
});

test("normalised mutual information: scikit-learn's arithmetic definition on hand-computed cases", () => {
  const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} vs ${b}`);
  // the same partition under other names; independent labelings
  close(normalizedMutualInformation([0, 0, 1, 1], ['b', 'b', 'a', 'a']), 1);
  close(normalizedMutualInformation([0, 0, 1, 1], [0, 1, 0, 1]), 0);
  // a refines nothing, b splits each class: I = ⅔ ln 2, H(a) = ln 2, H(b) = ln 3
  close(mutualInformation([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 2, 2]), (2 / 3) * Math.log(2));
  close(normalizedMutualInformation([0, 0, 0, 1, 1, 1], [0, 0, 1, 1, 2, 2]), ((4 / 3) * Math.log(2)) / Math.log(6));
  // joint counts (0,0) 2, (1,0) 1, (1,1) 1 of 4
  const mi = Math.log(4 / 3) / 2 + Math.log(2 / 3) / 4 + Math.log(2) / 4;
  const hb = -(0.75 * Math.log(0.75) + 0.25 * Math.log(0.25));
  close(normalizedMutualInformation([0, 0, 1, 1], [0, 0, 0, 1]), mi / ((Math.log(2) + hb) / 2));
  // scikit-learn's limit cases: both single-class (or empty) → 1; one single-class → 0
  close(normalizedMutualInformation([3, 3, 3], [7, 7, 7]), 1);
  close(normalizedMutualInformation([], []), 1);
  close(normalizedMutualInformation([0, 0, 0], [0, 1, 2]), 0);
  assert.throws(() => normalizedMutualInformation([0], [0, 1]), /1 labels against 2/);
});
