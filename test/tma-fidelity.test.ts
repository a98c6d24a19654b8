// The reference-fidelity options of the prototype formulations (src/objectives/tma/options.ts): each changes the
// objective only when switched on, and then does what its reference does — SwAV's averaging by code view and its
// late, only-when-full queue, local→global pairs with text, prototypes frozen for the first steps (SwAV, MGCA), and
// DINO's teacher (cosine momentum towards 1, BatchNorm with batch statistics).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/torch/index.js';
import { F, nn } from '../src/torch/index.js';
import { applyOverrides, loadConfig, validateConfig } from '../src/train/config.js';
import { buildT3dModel } from '../src/train/factory.js';
import { t3dLoss, type ObjectiveConfig } from '../src/objectives/t3d.js';
import { EmbeddingQueue, tmaLoss } from '../src/objectives/tma/shared.js';
import { tmaFormulation } from '../src/objectives/tma/index.js';
import { EmaTeacher } from '../src/train/ema.js';
import { fixture } from './helpers.js';

type Tma = ObjectiveConfig['tma'];
/** Equal up to the last bits (each term re-normalises the prototypes in place). */
const same = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) < 1e-12, `${what}: ${a} vs ${b}`);
const config = () => applyOverrides(loadConfig(fixture('pretrain', 'tiny.json')), ['model.textPooling="mean"']);
const objectiveFor = (tma: Record<string, unknown>): ObjectiveConfig => {
  const c = config().objective;
  const t = { ...c.tma, weight: 1, warmupSteps: 0, queue: 0, codeViews: ['text'], ...tma } as unknown as Tma;
  return { ...c, clip: { weight: 0 }, tma: t };
};
/** The options switched off explicitly: a config that names them must train as one that does not. */
const OFF = {
  freezePrototypesSteps: 0,
  queueStartStep: 0,
  queueWhenFull: false,
  averageByCodeView: false,
  localToGlobal: false,
};

/** A float64 model in eval mode (deterministic), three tokenised reports, a global and two local views. */
function setup() {
  torch.manualSeed(1);
  const model = buildT3dModel(config().model, [4, 4, 4], 40).to({ dtype: 'float64' });
  model.eval();
  const g = new torch.Generator(7);
  const [global, l0, l1] = [
    [3, 1, 4, 4, 4],
    [3, 1, 2, 2, 2],
    [3, 1, 2, 2, 2],
  ].map((shape) => torch.randn(shape, { dtype: 'float64', generator: g }).keep());
  const inputIds = torch.tensor(BigInt64Array.from([2n, 7n, 9n, 3n, 2n, 11n, 3n, 0n, 2n, 5n, 8n, 3n]), [3, 4]).keep();
  const attentionMask = torch.tensor(BigInt64Array.from([1n, 1n, 1n, 1n, 1n, 1n, 1n, 0n, 1n, 1n, 1n, 1n]), [3, 4]);
  const batch = { global: global!, locals: [l0!, l1!], inputIds, attentionMask: attentionMask.keep() };
  const loss = (tma: Record<string, unknown>, step = 10, queue?: EmbeddingQueue) =>
    torch.tidy(() => {
      const out = t3dLoss(model, batch, objectiveFor(tma), step, queue);
      return { total: out.total.item(), stats: out.stats };
    });
  const dispose = () => {
    torch.dispose([global!, l0!, l1!, inputIds, batch.attentionMask]);
    model.dispose();
  };
  return { model, loss, dispose };
}

test('tmaLoss averaged by code view: each code view’s predictors first, then the code views (SwAV)', () => {
  torch.tidy(() => {
    const g = new torch.Generator(4);
    const s = new Map(['text', 'global', 'local0', 'local1'].map((v) => [v, torch.randn([4, 6], { generator: g })]));
    const pairs: [string, string][] = [
      ['global', 'text'],
      ['local0', 'text'],
      ['local1', 'text'],
      ['text', 'global'],
    ];
    const byPair = tmaLoss(s, ['text', 'global'], { pairs });
    const byCodeView = tmaLoss(s, ['text', 'global'], { pairs, average: 'codeViews' });
    const ce = byPair.pairs.map((p) => p.ce);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    assert.ok(Math.abs(byPair.loss.item() - mean(ce)) < 1e-5);
    assert.ok(Math.abs(byCodeView.loss.item() - (mean(ce.slice(0, 3)) + ce[3]!) / 2) < 1e-5);
    assert.ok(Math.abs(byCodeView.loss.item() - byPair.loss.item()) > 1e-4, 'the weights differ');
    torch.dispose([...byPair.codes.values(), ...byCodeView.codes.values()]);
  });
});

test('swapped: the options switched off explicitly give today’s loss exactly; localToGlobal and averageByCodeView change it as defined', () => {
  const { loss, dispose } = setup();
  const base = loss({ formulation: 'swapped' });
  same(loss({ formulation: 'swapped', ...OFF }).total, base.total, 'explicit defaults change nothing');
  assert.equal(base.stats['ce.local>global'], undefined);
  const l2g = loss({ formulation: 'swapped', localToGlobal: true });
  const s = l2g.stats;
  // two local views: g→t, 2 × l→t, t→g, 2 × l→g, averaged over the six pairs
  const want = (s['ce.global>text']! + 2 * s['ce.local>text']! + s['ce.text>global']! + 2 * s['ce.local>global']!) / 6;
  assert.ok(Math.abs(l2g.total - want) < 1e-10, `${l2g.total} vs ${want}`);
  const avg = loss({ formulation: 'swapped', averageByCodeView: true }).total;
  const b = base.stats;
  const wantAvg = ((b['ce.global>text']! + 2 * b['ce.local>text']!) / 3 + b['ce.text>global']!) / 2;
  assert.ok(Math.abs(avg - wantAvg) < 1e-10, `${avg} vs ${wantAvg}`);
  assert.ok(Math.abs(avg - base.total) > 1e-6);
  dispose();
});

test('queueStartStep: before it the queue is neither read nor filled; queueWhenFull: read only once full', () => {
  const { loss, dispose } = setup();
  const tma = { formulation: 'swapped', queue: 6 };
  const noQueue = loss({ ...tma, queue: 0 }).total;
  const q = new EmbeddingQueue(6);
  same(loss({ ...tma, queueStartStep: 20 }, 10, q).total, noQueue, 'before the start step: no queue');
  assert.equal(q.get('text'), undefined, 'and nothing was pushed');
  loss({ ...tma, queueStartStep: 20 }, 20, q);
  assert.equal(q.get('text')!.size(0), 3, 'from the start step on it fills');
  // other patients in the queue (a queue holding this very batch again would leave Sinkhorn's codes unchanged)
  const g = new torch.Generator(12);
  const others = (queue: EmbeddingQueue) =>
    torch.tidy(() => {
      for (const v of ['text', 'global']) {
        queue.push(v, F.normalize(torch.randn([3, 32], { dtype: 'float64', generator: g }), 1));
      }
    });
  others(q);
  const withQueue = loss(tma, 21, q).total;
  assert.ok(Math.abs(withQueue - noQueue) > 1e-6, 'a queue takes part by default');
  const whenFull = new EmbeddingQueue(6, true);
  others(whenFull);
  assert.equal(whenFull.get('text'), undefined, 'half full: not read');
  same(loss(tma, 11, whenFull).total, noQueue, 'half full: Sinkhorn sees the batch alone');
  assert.equal(whenFull.get('text')!.size(0), 6, 'full now');
  assert.ok(Math.abs(loss(tma, 12, whenFull).total - noQueue) > 1e-6, 'full: read');
  q.dispose();
  whenFull.dispose();
  dispose();
});

test('DINO teacher: the cosine momentum goes from m₀ to 1; constant by default; BatchNorm with batch statistics on request', () => {
  torch.manualSeed(3);
  const student = buildT3dModel(config().model, [4, 4, 4], 40);
  const fresh = () => buildT3dModel(config().model, [4, 4, 4], 40);
  const constant = new EmaTeacher(fresh(), student, 0.9);
  assert.deepEqual(
    [0, 50, 100].map((s) => constant.momentumAt(s)),
    [0.9, 0.9, 0.9],
  );
  const cosine = new EmaTeacher(fresh(), student, 0.9, { schedule: 'cosine', steps: 100 });
  const m = [0, 50, 100].map((s) => cosine.momentumAt(s));
  assert.ok(Math.abs(m[0]! - 0.9) < 1e-12 && Math.abs(m[1]! - 0.95) < 1e-12 && Math.abs(m[2]! - 1) < 1e-12, `${m}`);
  assert.throws(() => new EmaTeacher(fresh(), student, 0.9, { schedule: 'cosine' }), /needs the run's steps/);
  const modes = (t: EmaTeacher) => {
    const all = [...t.model.namedModules()].map(([, mod]) => mod);
    const bn: nn.Module[] = all.filter((mod) => mod instanceof nn.BatchNorm3d);
    return { bn: bn.map((mod) => mod.training), other: all.filter((mod) => !bn.includes(mod)).some((x) => x.training) };
  };
  assert.ok(modes(constant).bn.length > 0);
  assert.ok(
    modes(constant).bn.every((t) => !t),
    'default: running statistics',
  );
  const trainBn = new EmaTeacher(fresh(), student, 0.9, { batchNorm: 'train' });
  assert.ok(
    modes(trainBn).bn.every((t) => t),
    "'train': batch statistics",
  );
  assert.equal(modes(trainBn).other, false, 'dropout and the rest stay in eval mode');
  // the same update with the cosine schedule at step 0 and the constant momentum
  const w = (t: EmaTeacher) => torch.tidy(() => t.model.prototypes.weight.sum().item());
  constant.update(student, 0);
  cosine.update(student, 0);
  assert.equal(w(constant), w(cosine));
  for (const t of [constant, cosine, trainBn]) t.model.dispose();
  student.dispose();
});

test('the teacher options reach the trainer through the needs, and are validated', () => {
  const tma = { formulation: 'teacher', teacherMomentum: 0.99 };
  const needs = (extra: Record<string, unknown>) => {
    const cfg = objectiveFor({ ...tma, ...extra }).tma;
    return tmaFormulation(cfg).needs(cfg);
  };
  assert.deepEqual(needs({}), needs({ teacherMomentumSchedule: 'constant', teacherBatchNorm: 'eval' }));
  const on = needs({ teacherMomentumSchedule: 'cosine', teacherBatchNorm: 'train' });
  assert.equal(on.teacherSchedule, 'cosine');
  assert.equal(on.teacherBatchNorm, 'train');
  const c = (sets: string[]) => applyOverrides(config(), sets);
  assert.throws(
    () => validateConfig(c(['objective.tma.teacherMomentumSchedule="linear"'])),
    /teacherMomentumSchedule must be 'constant' or 'cosine'/,
  );
  assert.throws(
    () => validateConfig(c(['objective.tma.formulation="swapped"', 'objective.tma.teacherBatchNorm="train"'])),
    /teacherBatchNorm applies to the 'fused' and 'teacher' formulations/,
  );
  assert.throws(
    () => validateConfig(c(['objective.tma.formulation="teacher"', 'objective.tma.localToGlobal=true'])),
    /localToGlobal applies to the 'swapped' formulation/,
  );
  assert.throws(() => validateConfig(c(['objective.tma.queueStartStep=-2'])), /queueStartStep must be an integer ≥ 0/);
});
