// TMA formulation 'cluster' (P2, dataset-level report clustering): the spherical k-means on constructed sets (the
// clusters recovered, empty clusters re-seeded, determinism in the seed), the loss against its definition and finite
// differences, which parameters it trains, its diagnostics on a constructed case, and validation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/torch/index.js';
import { F } from '../src/torch/index.js';
import { applyOverrides, loadConfig, validateConfig } from '../src/train/config.js';
import { buildT3dModel } from '../src/train/factory.js';
import { type T3dModel, type VolumeEncoding, type ReportEncoding } from '../src/models/t3d.js';
import { t3dLoss, type ObjectiveConfig } from '../src/objectives/t3d.js';
import { tmaFormulation } from '../src/objectives/tma/index.js';
import { cluster } from '../src/objectives/tma/cluster.js';
import { kMeansFrom, sphericalKMeans } from '../src/objectives/tma/kmeans.js';
import { normalizedMutualInformation } from '../src/eval/metrics/clustering.js';
import { fixture } from './helpers.js';

type Tma = ObjectiveConfig['tma'];
const config = () => applyOverrides(loadConfig(fixture('pretrain', 'tiny.json')), ['model.textPooling="mean"']);
const objectiveFor = (tma: Record<string, unknown> = {}): ObjectiveConfig => {
  const c = config().objective;
  const t = { ...c.tma, formulation: 'cluster', weight: 1, warmupSteps: 0, queue: 0, ...tma } as unknown as Tma;
  return { ...c, clip: { weight: 0 }, tma: t };
};
const hasGradient = (model: T3dModel, prefix: string) =>
  [...model.namedParameters()]
    .filter(([n]) => n.startsWith(prefix))
    .some(([, p]) => p.grad && p.grad.abs().sum().item() > 0);

/** `groups` tight groups of `per` unit vectors around orthogonal directions in D dimensions, rows shuffled; kept. */
function separable(groups: number, per: number, D: number, seed: number): { x: torch.Tensor; truth: number[] } {
  const g = new torch.Generator(seed);
  const truth = Array.from({ length: groups * per }, (_, i) => i % groups);
  const x = torch.tidy(() => {
    const directions = torch.eye(groups, D, { dtype: 'float64' });
    const index = torch.tensor(BigInt64Array.from(truth.map(BigInt)), [truth.length]);
    const noise = torch.randn([truth.length, D], { dtype: 'float64', generator: g }).mul(0.08);
    return F.normalize(directions.indexSelect(0, index).add(noise), 1).keep();
  });
  return { x, truth };
}

test('spherical k-means recovers separable clusters (NMI 1), deterministically in its seed', () => {
  const { x, truth } = separable(5, 24, 16, 1);
  const lines: string[] = [];
  const r = sphericalKMeans(x, 5, { seed: 3, restarts: 3, log: (l) => lines.push(l) });
  const found = r.assignments.toArray();
  assert.ok(normalizedMutualInformation(found, truth) > 0.999, `NMI ${normalizedMutualInformation(found, truth)}`);
  assert.equal(lines.length, 3, 'a progress line per restart');
  assert.ok(r.objective > 0.9, `tight clusters: mean cosine ${r.objective}`);
  torch.tidy(() => {
    const norms = r.centroids.pow(2).sum(1).sqrt().toArray();
    for (const n of norms) assert.ok(Math.abs(n - 1) < 1e-9, `unit centroids: ${n}`);
  });
  const again = sphericalKMeans(x, 5, { seed: 3, restarts: 3 });
  assert.deepEqual(again.assignments.toArray(), found, 'the same seed gives the same clusters');
  assert.throws(() => sphericalKMeans(x, 121), /K must be an integer in \[1, 120\]/);
  torch.dispose([x, r.centroids, r.assignments, again.centroids, again.assignments]);
});

test('an empty cluster is re-seeded with the worst-served point, so the clusters are still recovered', () => {
  const { x, truth } = separable(3, 10, 8, 2);
  // two centres on groups 0 and 1, the third opposite to every point: no point picks it at the first assignment
  const rows = [
    [1, 0, 0, 0, 0, 0, 0, 0],
    [0, 1, 0, 0, 0, 0, 0, 0],
    [-1, -1, -1, 0, 0, 0, 0, 0],
  ];
  const init = torch.tidy(() => F.normalize(torch.tensor(rows.flat(), [3, 8], { dtype: 'float64' }), 1).keep());
  const r = kMeansFrom(x, init, 10);
  assert.ok(r.reseeded >= 1, 'the empty cluster was re-seeded');
  const found = r.assignments.toArray();
  assert.ok(normalizedMutualInformation(found, truth) > 0.999, `NMI ${normalizedMutualInformation(found, truth)}`);
  assert.equal(new Set(found).size, 3, 'no cluster is empty at the end');
  torch.dispose([x, init, r.centroids, r.assignments]);
});

/** Two heads (K 2 and 3) of unit centroids in the tiny model's 32 dimensions and three volumes' assignments; kept. */
function clusterTargets(seed: number) {
  const g = new torch.Generator(seed);
  const centroids = [2, 3].map((K) =>
    torch.tidy(() => F.normalize(torch.randn([K, 32], { dtype: 'float64', generator: g }), 1).keep()),
  );
  const assignments = torch.tensor(BigInt64Array.from([1n, 0n, 0n, 2n, 1n, 1n]), [3, 2]).keep();
  return { centroids, assignments };
}

/** The definition: mean over heads h and views v of −log softmax(z_v · C_hᵀ / τ)[a_h], written out row by row. */
function byDefinition(views: torch.Tensor[], centroids: torch.Tensor[], assignments: number[][], tau: number): number {
  return torch.tidy(() => {
    let sum = 0;
    let n = 0;
    centroids.forEach((C, h) => {
      for (const z of views) {
        const logp = z.matmul(C.T).div(tau).logSoftmax(1);
        const rows = assignments.map((a, i) => logp.select(0, i).select(0, a[h]!).item());
        sum += -rows.reduce((a, b) => a + b, 0) / rows.length;
        n += 1;
      }
    });
    return sum / n;
  });
}

test('cluster term: the mean over heads and views of each view’s cross-entropy with its report’s cluster; gradients match finite differences', () => {
  torch.manualSeed(1);
  const model = buildT3dModel(config().model, [4, 4, 4], 40).to({ dtype: 'float64' });
  const clusters = clusterTargets(4);
  const g = new torch.Generator(9);
  const [zg, zl] = [
    [3, 32],
    [6, 32],
  ].map((shape) => torch.randn(shape, { dtype: 'float64', generator: g }).keep()) as [torch.Tensor, torch.Tensor];
  const cfg = objectiveFor().tma;
  const view = (z: torch.Tensor) => ({ emb: F.normalize(z, -1) }) as VolumeEncoding;
  const term = (global: torch.Tensor, locals: torch.Tensor) =>
    tmaFormulation(cfg).term(model, { global: view(global), locals: view(locals), numLocal: 2, clusters }, cfg);
  const assignments = [
    [1, 0],
    [0, 2],
    [1, 1],
  ];
  torch.tidy(() => {
    const views = [zg, ...zl.chunk(2, 0)].map((z) => F.normalize(z, -1));
    const want = byDefinition(views, clusters.centroids, assignments, cfg.temperature);
    const got = term(zg, zl).loss.item();
    assert.ok(Math.abs(got - want) < 1e-10, `${got} vs ${want}`);
  });
  const res = torch.gradcheck((a, b) => term(a, b).loss, [zg, zl], { atol: 1e-6, rtol: 1e-4 });
  assert.ok(res.ok, res.worst);
  torch.dispose([zg, zl, ...clusters.centroids, clusters.assignments]);
  model.dispose();
});

test('cluster formulation through the model: gradient w.r.t. a local view matches finite differences; only the visual side trains', () => {
  torch.manualSeed(1);
  const model = buildT3dModel(config().model, [4, 4, 4], 40).to({ dtype: 'float64' });
  model.eval();
  const clusters = clusterTargets(5);
  const g = new torch.Generator(6);
  const [x, l0, l1] = [
    [3, 1, 4, 4, 4],
    [3, 1, 2, 2, 2],
    [3, 1, 2, 2, 2],
  ].map((shape) => torch.randn(shape, { dtype: 'float64', generator: g }).keep());
  const ids = torch.tensor(BigInt64Array.from([2n, 7n, 9n, 3n, 2n, 11n, 3n, 0n, 2n, 5n, 8n, 3n]), [3, 4]).keep();
  const mask = torch.tensor(BigInt64Array.from([1n, 1n, 1n, 1n, 1n, 1n, 1n, 0n, 1n, 1n, 1n, 1n]), [3, 4]).keep();
  const objective = objectiveFor();
  const batch = (local: torch.Tensor) => ({ global: x!, locals: [local, l1!], clusters });
  const res = torch.gradcheck((local) => t3dLoss(model, batch(local), objective, 10).total, [l0!], {
    atol: 1e-6,
    rtol: 1e-4,
  });
  assert.ok(res.ok, res.worst);
  model.train();
  torch.tidy(() => {
    const withClip = { ...objective, clip: { weight: 1 } };
    const out = t3dLoss(model, { ...batch(l0!), inputIds: ids, attentionMask: mask }, withClip, 10);
    // the stats: each view group's cross-entropy with its chance bound, and the oracle once the report is encoded
    for (const k of ['ce.global>cluster', 'ce.local>cluster', 'ce.global>cluster.chance', 'ce.local>cluster.oracle'])
      assert.ok(Number.isFinite(out.stats[k]), k);
  });
  torch.tidy(() => t3dLoss(model, batch(l0!), objective, 10).total.backward());
  assert.equal(hasGradient(model, 'visual.'), true);
  for (const part of ['text.', 'prototypes.', 'fusion.']) assert.equal(hasGradient(model, part), false, part);
  assert.throws(() => t3dLoss(model, { global: x!, locals: [l0!, l1!] }, objective, 10), /needs the epoch's report/);
  torch.dispose([x!, l0!, l1!, ids, mask, ...clusters.centroids, clusters.assignments]);
  model.dispose();
});

test('cluster diagnostics on a constructed case: a predictor equal to the report scores the oracle; chance rolls the assignments by one', () => {
  torch.tidy(() => {
    const model = undefined as unknown as T3dModel; // the term reads no parameter
    const g = new torch.Generator(11);
    const C = F.normalize(torch.randn([4, 6], { dtype: 'float64', generator: g }), 1);
    const E = F.normalize(torch.randn([5, 6], { dtype: 'float64', generator: g }), 1);
    const a = E.matmul(C.T).argmax(1); // every report in its nearest cluster
    const cfg = objectiveFor().tma;
    const x = {
      global: { emb: E } as VolumeEncoding,
      numLocal: 0,
      report: { emb: E } as ReportEncoding,
      clusters: { centroids: [C], assignments: a.unsqueeze(1) },
    };
    const { loss, stats } = cluster.term(model, x, cfg as never);
    const ce = (z: torch.Tensor, target: torch.Tensor) => F.crossEntropy(z.matmul(C.T).div(cfg.temperature), target);
    const rolled = torch.cat([a.narrow(0, 1, 4), a.narrow(0, 0, 1)], 0);
    assert.ok(Math.abs(stats['ce.global>cluster']! - loss.item()) < 1e-12);
    assert.ok(Math.abs(stats['ce.global>cluster.oracle']! - stats['ce.global>cluster']!) < 1e-12, 'oracle gap 0');
    assert.ok(Math.abs(stats['ce.global>cluster.chance']! - ce(E, rolled).item()) < 1e-12, 'chance: rolled by one');
    assert.ok(stats['ce.global>cluster.chance']! > stats['ce.global>cluster']!, 'the nearest cluster beats chance');
    assert.ok(Math.abs(stats.tmaLeakGap! - (stats['ce.global>cluster.chance']! - stats['ce.global>cluster']!)) < 1e-12);
  });
});

test('cluster validation: its options are checked, text is required, and the other formulations refuse its options', () => {
  const c = (sets: string[]) => applyOverrides(config(), ['objective.tma.formulation="cluster"', ...sets]);
  assert.doesNotThrow(() => validateConfig(c(['objective.tma.clusterHeads=[4,8]', 'objective.tma.kmeansRestarts=2'])));
  assert.throws(() => validateConfig(c(['objective.tma.clusterHeads=[1]'])), /clusterHeads must be a non-empty list/);
  assert.throws(() => validateConfig(c(['objective.tma.kmeansIterations=0'])), /kmeansIterations must be an integer/);
  assert.throws(() => validateConfig(c(['objective.tma.useText=false'])), /'cluster' clusters the training reports/);
  assert.throws(
    () => validateConfig(c(['objective.tma.freezePrototypesSteps=10'])),
    /freezePrototypesSteps applies to the 'fused', 'swapped', 'teacher' and 'sentence' formulations/,
  );
  const swapped = applyOverrides(config(), ['objective.tma.formulation="swapped"', 'objective.tma.clusterHeads=[4]']);
  assert.throws(() => validateConfig(swapped), /clusterHeads applies to the 'cluster' formulation/);
  const needs = tmaFormulation(objectiveFor().tma).needs(objectiveFor().tma);
  assert.deepEqual(needs.clusters, { heads: [8, 16, 32], iterations: 10, restarts: 3 }, 'the defaults');
});
