// TMA formulation 'sentence': sentence codes (Sinkhorn over the batch's sentences and a sentence queue) make each
// volume's target; the global view — or the views pooled per prototype — predicts it. Gradients against finite
// differences, the targets on a constructed case, which parameters train, the sentence queue, and validation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/torch/index.js';
import { F } from '../src/torch/index.js';
import { applyOverrides, loadConfig, validateConfig } from '../src/train/config.js';
import { buildT3dModel } from '../src/train/factory.js';
import { type T3dModel, type VolumeEncoding } from '../src/models/t3d.js';
import { t3dLoss, type ObjectiveConfig } from '../src/objectives/t3d.js';
import { tmaFormulation } from '../src/objectives/tma/index.js';
import { EmbeddingQueue } from '../src/objectives/tma/shared.js';
import {
  SENTENCE_QUEUE_VIEW,
  repairedTargets,
  sentenceTargets,
  shuffledPairing,
} from '../src/objectives/tma/sentence.js';
import { assertClose, fixture } from './helpers.js';

type Tma = ObjectiveConfig['tma'];
const config = () => applyOverrides(loadConfig(fixture('pretrain', 'tiny.json')), ['model.textPooling="mean"']);
const objectiveFor = (tma: Record<string, unknown> = {}): ObjectiveConfig => {
  const c = config().objective;
  const t = { ...c.tma, formulation: 'sentence', weight: 1, warmupSteps: 0, queue: 0, ...tma } as unknown as Tma;
  return { ...c, clip: { weight: 0 }, tma: t };
};
const hasGradient = (model: T3dModel, prefix: string) =>
  [...model.namedParameters()]
    .filter(([n]) => n.startsWith(prefix))
    .some(([, p]) => p.grad && p.grad.abs().sum().item() > 0);

/** A float64 model in eval mode, three tokenised reports with their sentence indices, a global view and two local
 * views; the caller disposes them. Report 0 has two sentences, reports 1 and 2 one each. */
function setup() {
  torch.manualSeed(1);
  const model = buildT3dModel(config().model, [4, 4, 4], 40).to({ dtype: 'float64' });
  model.eval(); // fixed BatchNorm statistics and no dropout: a deterministic function of the inputs
  const i64 = (v: bigint[]) => torch.tensor(BigInt64Array.from(v), [3, 4]).keep();
  const inputIds = i64([2n, 7n, 9n, 3n, 2n, 11n, 3n, 0n, 2n, 5n, 8n, 3n]);
  const attentionMask = i64([1n, 1n, 1n, 1n, 1n, 1n, 1n, 0n, 1n, 1n, 1n, 1n]);
  const sentenceIndex = i64([-1n, 0n, 1n, -1n, -1n, 0n, -1n, -1n, -1n, 0n, 0n, -1n]);
  const g = new torch.Generator(8);
  const [x, l0, l1] = [
    [3, 1, 4, 4, 4],
    [3, 1, 2, 2, 2],
    [3, 1, 2, 2, 2],
  ].map((shape) => torch.randn(shape, { dtype: 'float64', generator: g }).keep()) as [
    torch.Tensor,
    torch.Tensor,
    torch.Tensor,
  ];
  const batch = (global = x, local = l0) => ({
    global,
    locals: [local, l1],
    inputIds,
    attentionMask,
    sentenceIndex,
  });
  const dispose = () => {
    torch.dispose([inputIds, attentionMask, sentenceIndex, x, l0, l1]);
    model.dispose();
  };
  return { model, x, l0, batch, dispose };
}

for (const pool of ['global', 'max', 'logsumexp'] as const) {
  for (const sentenceTarget of ['mean', 'noisy-or'] as const) {
    test(`sentence term (pool ${pool}, ${sentenceTarget} targets): gradients w.r.t. the global and local embeddings match finite differences`, () => {
      const { model, batch, dispose } = setup();
      const b = batch();
      const report = torch.noGrad(() => model.encodeReport(b.inputIds, b.attentionMask));
      Object.values(report).forEach((t) => (t as torch.Tensor).keep());
      const g = new torch.Generator(9);
      const [zg, zl] = [
        [3, 32],
        [6, 32],
      ].map((shape) => torch.randn(shape, { dtype: 'float64', generator: g }).keep()) as [torch.Tensor, torch.Tensor];
      const cfg = objectiveFor({ pool, sentenceTarget, relativeEpsilon: true, epsilon: 0.3 }).tma;
      const spec = tmaFormulation(cfg);
      const view = (z: torch.Tensor) => ({ emb: F.normalize(z, -1) }) as VolumeEncoding;
      const term = (global: torch.Tensor, locals: torch.Tensor) =>
        spec.term(
          model,
          { global: view(global), locals: view(locals), numLocal: 2, report, sentenceIndex: b.sentenceIndex },
          cfg,
        ).loss;
      // the codes come from the reports' sentences only: finite differences see exactly what autograd differentiates
      const res = torch.gradcheck(term, [zg, zl], { atol: 1e-6, rtol: 1e-4 });
      assert.ok(res.ok, res.worst);
      const loss = (l: torch.Tensor) => torch.tidy(() => term(zg, l).item());
      assert.equal(loss(zl.flip([0])) !== loss(zl), pool !== 'global', 'the local views matter exactly when pooled');
      torch.dispose([zg, zl, ...(Object.values(report) as torch.Tensor[])]);
      dispose();
    });
  }
}

test('sentence formulation through the model (pool max, noisy-or): gradient w.r.t. a local view matches finite differences; the report sets the targets; visual and prototypes train, text and fusion do not', () => {
  const { model, l0, batch, dispose } = setup();
  const objective = objectiveFor({ pool: 'max', sentenceTarget: 'noisy-or', relativeEpsilon: true, epsilon: 0.3 });
  const res = torch.gradcheck((local) => t3dLoss(model, batch(undefined, local), objective, 10).total, [l0], {
    atol: 1e-6,
    rtol: 1e-4,
  });
  assert.ok(res.ok, res.worst);
  const loss = (b: ReturnType<typeof batch>) => torch.tidy(() => t3dLoss(model, b, objective, 10).total.item());
  const other = torch.tensor(BigInt64Array.from([2n, 13n, 4n, 3n, 2n, 6n, 3n, 0n, 2n, 17n, 19n, 3n]), [3, 4]);
  assert.notEqual(loss({ ...batch(), inputIds: other }), loss(batch()));
  other.dispose();
  model.train();
  torch.tidy(() => t3dLoss(model, batch(), objective, 10).total.backward());
  assert.equal(hasGradient(model, 'visual.'), true);
  assert.equal(hasGradient(model, 'prototypes.'), true);
  assert.equal(hasGradient(model, 'text.'), false, 'no gradient into the codes: the report shapes targets only');
  assert.equal(hasGradient(model, 'text_projection.'), false);
  assert.equal(hasGradient(model, 'fusion.'), false, 'no predictor reads the report');
  dispose();
});

test('sentence targets on a constructed case: mean and noisy-or of known codes, by hand', () => {
  torch.tidy(() => {
    // volume 0 states two sentences, volume 1 one, volume 2 none
    const codes = torch.tensor([0.5, 0.5, 0, 0, 0.5, 0, 0.5, 0, 0, 0, 0, 1], [3, 4], { dtype: 'float64' });
    const owner = torch.tensor(BigInt64Array.from([0n, 0n, 1n]), [3]);
    const expected = (rows: number[]) => torch.tensor(rows, [3, 4], { dtype: 'float64' });
    assertClose(sentenceTargets(codes, owner, 3, 'mean'), expected([0.5, 0.25, 0.25, 0, 0, 0, 0, 1, 0, 0, 0, 0]), {
      atol: 1e-12,
    });
    // noisy-or of volume 0: 1 − (1 − ½)(1 − ½) = ¾, 1 − (1 − ½) = ½, ½, 0 → normalised by 7/4
    const noisyOr = [3 / 7, 2 / 7, 2 / 7, 0, 0, 0, 0, 1, 0, 0, 0, 0];
    assertClose(sentenceTargets(codes, owner, 3, 'noisy-or'), expected(noisyOr), { atol: 1e-9 });
  });
});

test('sentence formulation: the sentence queue holds the batch’s sentences under its own view and enters Sinkhorn', () => {
  const { model, batch, dispose } = setup();
  const objective = objectiveFor({ queue: 16 });
  const queue = new EmbeddingQueue(16);
  const first = torch.tidy(() => t3dLoss(model, batch(), objective, 10, queue).total.item());
  assert.equal(queue.get(SENTENCE_QUEUE_VIEW)?.size(0), 4, 'four sentences in the three reports');
  assert.equal(queue.get('text'), undefined);
  const second = torch.tidy(() => t3dLoss(model, batch(), objective, 10, queue).total.item());
  assert.equal(queue.get(SENTENCE_QUEUE_VIEW)?.size(0), 8);
  assert.notEqual(second, first, 'the queued sentences change the codes');
  queue.dispose();
  // the sentence indices are required; pooling requires local views
  assert.throws(
    () => t3dLoss(model, { ...batch(), sentenceIndex: undefined }, objective, 10),
    /needs tokenised reports and their sentence indices/,
  );
  assert.throws(
    () => t3dLoss(model, { ...batch(), locals: [] }, objectiveFor({ pool: 'max' }), 10),
    /pool 'max' pools the global and local views: it needs local views/,
  );
  dispose();
});

test('sentence formulation: needs and config validation', () => {
  const needs = (tma: Record<string, unknown>) => {
    const t = objectiveFor(tma).tma;
    return tmaFormulation(t).needs(t);
  };
  assert.deepEqual(needs({}), { report: true, sentenceIndex: true, localViews: false, teacherMomentum: 0 });
  assert.equal(needs({ pool: 'logsumexp' }).localViews, true);
  const problems = (sets: string[]) => {
    try {
      validateConfig(applyOverrides(config(), ['objective.tma.formulation="sentence"', ...sets]));
      return '';
    } catch (e) {
      return (e as Error).message;
    }
  };
  assert.equal(problems(['objective.tma.sentenceTarget="noisy-or"', 'objective.tma.pool="max"']), '');
  assert.match(problems(['objective.tma.sentenceTarget="sum"']), /sentenceTarget must be 'mean' or 'noisy-or'/);
  assert.match(problems(['objective.tma.pool="mean"']), /pool must be 'global', 'max' or 'logsumexp' \(got "mean"\)/);
  assert.match(problems(['objective.tma.useText=false']), /'sentence' takes its targets from the report's sentences/);
  const swapped = applyOverrides(config(), ['objective.tma.formulation="swapped"', 'objective.tma.pool="max"']);
  assert.throws(() => validateConfig(swapped), /objective.tma.pool applies to the 'sentence' formulation/);
});

test('shufflePairs: the pairing is a derangement drawn from the step (none keeps its own; the same step, the same one)', () => {
  for (const B of [2, 3, 8]) {
    for (let step = 0; step < 40; step++) {
      const p = shuffledPairing(B, step);
      assert.deepEqual(
        [...p].sort((a, b) => a - b),
        Array.from({ length: B }, (_, i) => i),
      );
      assert.ok(
        p.every((j, i) => j !== i),
        `B ${B}, step ${step}: ${p.join(',')}`,
      );
      assert.deepEqual(shuffledPairing(B, step), p, 'deterministic given the step');
    }
  }
  // 14,833 derangements of 8: 40 steps draw (almost) 40 different ones
  assert.ok(new Set(Array.from({ length: 40 }, (_, s) => shuffledPairing(8, s).join())).size >= 38);
  assert.throws(() => shuffledPairing(1, 0), /shufflePairs needs batches of two volumes or more \(got 1\)/);
});

test('shufflePairs on a constructed batch: row i of the targets becomes row pairing[i], exactly', () => {
  torch.tidy(() => {
    const rows = [0.5, 0.25, 0.25, 0, 0, 0, 0, 1, 0.1, 0.2, 0.3, 0.4];
    const targets = torch.tensor(rows, [3, 4], { dtype: 'float64' });
    const repaired = repairedTargets(targets, [2, 0, 1]).toArray();
    assert.deepEqual(repaired, [...rows.slice(8, 12), ...rows.slice(0, 4), ...rows.slice(4, 8)]);
  });
});

test('shufflePairs through the term: the loss of each volume against its partner’s target; off, the loss is unchanged; gradients match finite differences', () => {
  const { model, batch, dispose } = setup();
  const b = batch();
  const report = torch.noGrad(() => model.encodeReport(b.inputIds, b.attentionMask));
  Object.values(report).forEach((t) => (t as torch.Tensor).keep());
  const zg = torch.randn([3, 32], { dtype: 'float64', generator: new torch.Generator(9) }).keep();
  const base = objectiveFor({ relativeEpsilon: true, epsilon: 0.3 }).tma;
  const spec = tmaFormulation(base);
  const run = (cfg: Tma, global: torch.Tensor, step = 7) =>
    spec.term(
      model,
      {
        global: { emb: F.normalize(global, -1) } as VolumeEncoding,
        numLocal: 0,
        report,
        sentenceIndex: b.sentenceIndex,
        step,
      },
      cfg,
    );
  const value = (cfg: Tma, global: torch.Tensor, step = 7) =>
    torch.tidy(() => {
      const t = run(cfg, global, step);
      return { loss: t.loss.item(), keys: Object.keys(t.stats).sort() };
    });
  const off = value(base, zg);
  // (each call renormalises the prototypes in place, which moves the last bits: equal up to rounding, not to the bit)
  const offExplicit = value({ ...base, shufflePairs: false } as Tma, zg);
  assert.ok(Math.abs(offExplicit.loss - off.loss) < 1e-12, 'false is the formulation as before');
  assert.deepEqual(offExplicit.keys, off.keys);
  const shuffled = { ...base, shufflePairs: true } as Tma;
  // volume i against the target of volume p[i] is the unshuffled loss with volume i's view moved to row p[i]
  const p = shuffledPairing(3, 7);
  const inverse = p.map((_, j) => p.indexOf(j));
  const moved = torch.tidy(() =>
    zg.indexSelect(
      0,
      torch.tensor(
        BigInt64Array.from(inverse, (i) => BigInt(i)),
        [3],
      ),
    ),
  );
  const on = value(shuffled, zg);
  assert.ok(Math.abs(on.loss - value(base, moved).loss) < 1e-12, `${on.loss} vs ${value(base, moved).loss}`);
  assert.notEqual(on.loss, off.loss);
  assert.deepEqual(on.keys, off.keys, 'the same diagnostics');
  // the pairing follows the step: equal pairings, equal losses; another pairing, another loss
  const other = Array.from({ length: 20 }, (_, s) => s).find((s) => shuffledPairing(3, s).join() !== p.join())!;
  assert.notEqual(value(shuffled, zg, other).loss, on.loss);
  const res = torch.gradcheck((g) => run(shuffled, g).loss, [zg], { atol: 1e-6, rtol: 1e-4 });
  assert.ok(res.ok, res.worst);
  const noStep = {
    global: { emb: F.normalize(zg, -1) } as VolumeEncoding,
    numLocal: 0,
    report,
    sentenceIndex: b.sentenceIndex,
  };
  assert.throws(() => torch.tidy(() => spec.term(model, noStep, shuffled)), /from the training step/);
  torch.dispose([zg, moved, ...(Object.values(report) as torch.Tensor[])]);
  dispose();
});

test('shufflePairs: validated as true or false, and refused on the formulations it does not apply to', () => {
  const problems = (sets: string[]) => {
    try {
      validateConfig(applyOverrides(config(), sets));
      return '';
    } catch (e) {
      return (e as Error).message;
    }
  };
  assert.equal(problems(['objective.tma.formulation="sentence"', 'objective.tma.shufflePairs=true']), '');
  assert.match(
    problems(['objective.tma.formulation="sentence"', 'objective.tma.shufflePairs="yes"']),
    /objective.tma.shufflePairs must be true or false \(got "yes"\)/,
  );
  for (const f of ['swapped', 'cluster', 'fused'])
    assert.match(
      problems([`objective.tma.formulation="${f}"`, 'objective.tma.shufflePairs=true']),
      new RegExp(`objective.tma.shufflePairs applies to the 'sentence' formulation \\(formulation is '${f}'\\)`),
    );
  assert.equal(problems(['objective.tma.formulation="swapped"', 'objective.tma.shufflePairs=false']), '');
});
