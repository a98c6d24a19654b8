// TMA formulations (objective.tma.formulation): explicit predictor → code pairs, gradients against finite
// differences, which parameters each formulation trains, and the leak check: after training, the cross-entropy of
// the global view against the report's codes must be clearly lower for the true volume than for another patient's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/torch/index.js';
import { optim } from '../src/torch/index.js';
import { applyOverrides, loadConfig } from '../src/train/config.js';
import { buildT3dModel } from '../src/train/factory.js';
import { type T3dModel } from '../src/models/t3d.js';
import { t3dLoss, type ObjectiveConfig } from '../src/objectives/t3d.js';
import { type TmaFormulation } from '../src/objectives/tma/index.js';
import { tmaLoss } from '../src/objectives/tma/shared.js';
import { EmaTeacher } from '../src/train/ema.js';
import { validateConfig } from '../src/train/config.js';
import { TextInformedFusion } from '../src/models/heads.js';
import { assertClose, fixture } from './helpers.js';

/** the test objectives switch formulations by spreading, so they are asserted to the union */
type Tma = ObjectiveConfig['tma'];
const config = () => applyOverrides(loadConfig(fixture('pretrain', 'tiny.json')), ['model.textPooling="mean"']);
const objectiveFor = (formulation: TmaFormulation, useText = true, clip = 0): ObjectiveConfig => {
  const c = config().objective;
  const tma = { ...c.tma, formulation, useText, weight: 1, warmupSteps: 0, queue: 0, codeViews: ['text'] } as Tma;
  return { ...c, clip: { weight: clip }, tma };
};
const ids = () => torch.tensor(new BigInt64Array([2n, 7n, 9n, 3n, 2n, 11n, 3n, 0n, 2n, 5n, 8n, 3n]), [3, 4]).keep();
const mask = () => torch.tensor(new BigInt64Array([1n, 1n, 1n, 1n, 1n, 1n, 1n, 0n, 1n, 1n, 1n, 1n]), [3, 4]).keep();

/** Whether any parameter under `prefix` received a non-zero gradient. */
const hasGradient = (model: T3dModel, prefix: string) =>
  [...model.namedParameters()]
    .filter(([n]) => n.startsWith(prefix))
    .some(([, p]) => p.grad && p.grad.abs().sum().item() > 0);

/** A float64 global view (3×1×4³) and two local views (3×1×2³), seeded; kept: the caller disposes them. */
function float64Views(seed: number): [torch.Tensor, torch.Tensor, torch.Tensor] {
  const g = new torch.Generator(seed);
  return [
    [3, 1, 4, 4, 4],
    [3, 1, 2, 2, 2],
    [3, 1, 2, 2, 2],
  ].map((shape) => torch.randn(shape, { dtype: 'float64', generator: g }).keep()) as [
    torch.Tensor,
    torch.Tensor,
    torch.Tensor,
  ];
}

test('tmaLoss with explicit pairs is the mean of exactly those cross-entropies', () => {
  torch.tidy(() => {
    const g = new torch.Generator(4);
    const s = new Map(
      ['text', 'global', 'local0'].map((v) => [v, torch.randn([4, 6], { dtype: 'float64', generator: g })]),
    );
    const pairs: [string, string][] = [
      ['global', 'text'],
      ['local0', 'text'],
      ['text', 'global'],
    ];
    const { loss, codes } = tmaLoss(s, ['text', 'global'], { temperature: 0.1, pairs });
    const ce = (v: string, w: string) => codes.get(w)!.mul(s.get(v)!.div(0.1).logSoftmax(1)).sum(1).mean().neg();
    assertClose(loss, ce('global', 'text').add(ce('local0', 'text')).add(ce('text', 'global')).div(3), { atol: 1e-12 });
    assert.throws(() => tmaLoss(s, ['text'], { pairs: [['local0', 'global']] }), /pair local0 → global/);
    torch.dispose([...codes.values()]);
  });
});

for (const useText of [true, false]) {
  test(`swapped formulation${useText ? '' : ' without text (vision-only multi-crop)'}: gradient w.r.t. a local view matches finite differences; only the right parts train`, () => {
    torch.manualSeed(1);
    const model = buildT3dModel(config().model, [4, 4, 4], 40).to({ dtype: 'float64' });
    model.eval(); // fixed BatchNorm statistics and no dropout: a deterministic function of the inputs
    const [i, m] = [ids(), mask()];
    const [x, l0, l1] = float64Views(5);
    const objective = objectiveFor('swapped', useText);
    const batch = (local: torch.Tensor) => ({
      global: x,
      locals: [local, l1],
      inputIds: useText ? i : undefined,
      attentionMask: useText ? m : undefined,
    });
    // The codes come from the report and the global view, never from local view 0: finite differences w.r.t. it see
    // exactly the function autograd differentiates.
    const res = torch.gradcheck((local) => t3dLoss(model, batch(local), objective, 10).total, [l0], {
      atol: 1e-6,
      rtol: 1e-4,
    });
    assert.ok(res.ok, res.worst);
    model.train();
    torch.tidy(() => t3dLoss(model, batch(l0), objective, 10).total.backward());
    const has = (prefix: string) => hasGradient(model, prefix);
    assert.equal(has('fusion.'), false, 'the fusion block takes no part: no predictor reads the report');
    assert.equal(has('visual.'), true);
    assert.equal(has('prototypes.'), true);
    assert.equal(
      has('text.'),
      useText,
      useText ? "the report predicts the global view's codes" : 'no text without useText',
    );
    torch.dispose([i, m, x, l0, l1]);
    model.dispose();
  });
}

/** A float64 student in eval mode, its EMA teacher (another init), tokenised reports and views; the caller disposes them. */
function teacherFixture() {
  torch.manualSeed(1);
  const model = buildT3dModel(config().model, [4, 4, 4], 40).to({ dtype: 'float64' });
  torch.manualSeed(2);
  const teacher = new EmaTeacher(buildT3dModel(config().model, [4, 4, 4], 40).to({ dtype: 'float64' }), model, 0.9);
  model.eval();
  const [x, l0, l1] = float64Views(6);
  return { model, teacher, i: ids(), m: mask(), x, l0, l1 };
}

for (const useText of [true, false]) {
  test(`teacher formulation${useText ? '' : ' without text'}: gradient w.r.t. a local view matches finite differences; the student's text and fusion take no part`, () => {
    const { model, teacher, i, m, x, l0, l1 } = teacherFixture();
    const objective = objectiveFor('teacher', useText);
    const batch = (local: torch.Tensor) => ({ global: x, locals: [local, l1], inputIds: i, attentionMask: m });
    // the codes are the teacher's, of the global view: local view 0 only predicts
    const res = torch.gradcheck(
      (local) => t3dLoss(model, batch(local), objective, 10, undefined, teacher.model).total,
      [l0],
      { atol: 1e-6, rtol: 1e-4 },
    );
    assert.ok(res.ok, res.worst);
    // the report changes the targets exactly when useText is on
    const withReport = (ids2: torch.Tensor) =>
      torch.tidy(() =>
        t3dLoss(model, { ...batch(l0), inputIds: ids2 }, objective, 10, undefined, teacher.model).total.item(),
      );
    const other = torch.tensor(new BigInt64Array([2n, 13n, 4n, 3n, 2n, 6n, 3n, 0n, 2n, 17n, 19n, 3n]), [3, 4]).keep();
    assert.equal(withReport(other) !== withReport(i), useText);
    model.train();
    torch.tidy(() => t3dLoss(model, batch(l0), objective, 10, undefined, teacher.model).total.backward());
    const has = (prefix: string) => hasGradient(model, prefix);
    assert.equal(has('fusion.'), false, 'the student never reads the report');
    assert.equal(has('text.'), false);
    assert.equal(has('visual.'), true);
    assert.equal(has('prototypes.'), true);
    assert.throws(() => t3dLoss(model, batch(l0), objective, 10), /formulation 'teacher' needs an EMA teacher/);
    assert.throws(
      () => t3dLoss(model, { ...batch(l0), locals: [] }, objective, 10, undefined, teacher.model),
      /needs local views/,
    );
    torch.dispose([i, m, x, l0, l1, other]);
    model.dispose();
    teacher.model.dispose();
  });
}

test("teacher formulation with embedding codes: gradient w.r.t. a local view matches finite differences; the report and the teacher's global embedding set the codes, the fusion head takes no part", () => {
  const { model, teacher, i, m, x, l0, l1 } = teacherFixture();
  const fusionCodes = objectiveFor('teacher');
  const embeddingCodes = { ...fusionCodes.tma, teacherCodes: 'embedding', relativeEpsilon: true, epsilon: 0.3 } as Tma;
  const objective: ObjectiveConfig = { ...fusionCodes, tma: embeddingCodes };
  const batch = (local: torch.Tensor) => ({ global: x, locals: [local, l1], inputIds: i, attentionMask: m });
  const res = torch.gradcheck(
    (local) => t3dLoss(model, batch(local), objective, 10, undefined, teacher.model).total,
    [l0],
    { atol: 1e-6, rtol: 1e-4 },
  );
  assert.ok(res.ok, res.worst);
  const loss = (o: ObjectiveConfig, b = batch(l0)) =>
    torch.tidy(() => t3dLoss(model, b, o, 10, undefined, teacher.model).total.item());
  const other = torch.tensor(new BigInt64Array([2n, 13n, 4n, 3n, 2n, 6n, 3n, 0n, 2n, 17n, 19n, 3n]), [3, 4]).keep();
  assert.notEqual(loss(objective, { ...batch(l0), inputIds: other }), loss(objective), 'the report sets the codes');
  const withFusionCodes = { ...objective, tma: { ...objective.tma, teacherCodes: 'fusion' } as Tma };
  assert.notEqual(loss(objective), loss(withFusionCodes), 'embedding and fusion codes differ');
  // the teacher's fusion head does not enter the embedding codes
  const before = loss(objective);
  torch.noGrad(() => {
    for (const p of teacher.model.fusion.parameters()) p.mul_(0).add_(0.5);
  });
  assert.equal(loss(objective), before);
  torch.dispose([i, m, x, l0, l1, other]);
  model.dispose();
  teacher.model.dispose();
});

test("local formulation: gradients w.r.t. a local view and the report's token states path match finite differences; text and visual train, prototypes and fusion do not", () => {
  torch.manualSeed(1);
  const model = buildT3dModel(config().model, [4, 4, 4], 40).to({ dtype: 'float64' });
  model.eval();
  const [i, m] = [ids(), mask()];
  const [x, l0, l1] = float64Views(7);
  // row 0: two sentences; row 1: one; row 2: one (specials -1)
  const sentenceIndex = torch
    .tensor(new BigInt64Array([-1n, 0n, 1n, -1n, -1n, 0n, -1n, -1n, -1n, 0n, 0n, -1n]), [3, 4])
    .keep();
  const objective = objectiveFor('local');
  const batch = (local: torch.Tensor) => ({
    global: x,
    locals: [local, l1],
    inputIds: i,
    attentionMask: m,
    sentenceIndex,
  });
  const res = torch.gradcheck((local) => t3dLoss(model, batch(local), objective, 10).total, [l0], {
    atol: 1e-6,
    rtol: 1e-4,
  });
  assert.ok(res.ok, res.worst);
  model.train();
  torch.tidy(() => t3dLoss(model, batch(l0), objective, 10).total.backward());
  const has = (prefix: string) => hasGradient(model, prefix);
  assert.equal(has('text.'), true, 'sentence embeddings come from the text encoder');
  assert.equal(has('text_projection.'), true);
  assert.equal(has('visual.'), true);
  assert.equal(has('prototypes.'), false);
  assert.equal(has('fusion.'), false);
  assert.throws(
    () => t3dLoss(model, { ...batch(l0), sentenceIndex: undefined }, objective, 10),
    /needs tokenised reports and their sentence indices/,
  );
  torch.dispose([i, m, x, l0, l1, sentenceIndex]);
  model.dispose();
});

test("config: the 'teacher' formulation requires an EMA teacher; 'swapped' refuses one", () => {
  const problems = (sets: string[]) => {
    try {
      validateConfig(applyOverrides(config(), sets));
      return '';
    } catch (e) {
      return (e as Error).message;
    }
  };
  assert.match(
    problems(['objective.tma.formulation="teacher"', 'objective.tma.teacherMomentum=0']),
    /'teacher' takes its codes from an EMA teacher/,
  );
  assert.equal(problems(['objective.tma.formulation="teacher"', 'objective.tma.teacherMomentum=0.99']), '');
  assert.match(
    problems(['objective.tma.formulation="swapped"', 'objective.tma.teacherMomentum=0.99']),
    /applies to the 'fused' and 'teacher' formulations/,
  );
  assert.match(
    problems(['objective.tma.formulation="local"', 'objective.tma.useText=false']),
    /'local' aligns local views with the report's sentences/,
  );
  assert.equal(
    problems([
      'objective.tma.formulation="teacher"',
      'objective.tma.teacherMomentum=0.99',
      'objective.tma.teacherCodes="embedding"',
      'objective.tma.relativeEpsilon=true',
    ]),
    '',
  );
  assert.match(
    problems([
      'objective.tma.formulation="teacher"',
      'objective.tma.teacherMomentum=0.99',
      'objective.tma.teacherCodes="fused"',
    ]),
    /teacherCodes must be 'fusion' or 'embedding'/,
  );
  assert.match(
    problems(['objective.tma.formulation="swapped"', 'objective.tma.teacherCodes="embedding"']),
    /teacherCodes applies to the 'teacher' formulation/,
  );
  assert.match(problems(['objective.tma.relativeEpsilon=1']), /relativeEpsilon must be true or false/);
  assert.equal(problems(['data.views.localAnchor="foreground"']), '');
  assert.match(
    problems(['data.views.localAnchor="organ"']),
    /localAnchor must be 'uniform', 'foreground', 'report' or 'lobes' \(got "organ"\)/,
  );
});

/** Trains TMA alone on 8 volumes whose reports name where a bright block lies; returns the last leak gap (nats). */
function trainedLeakGap(formulation: TmaFormulation, tma: Partial<ObjectiveConfig['tma']> = {}): number {
  const B = 8,
    cls = [0, 1, 2, 3, 0, 1, 2, 3];
  torch.manualSeed(1);
  const model = buildT3dModel(config().model, [8, 8, 8], 40);
  const noise = torch.tidy(
    () =>
      torch
        .randn([B * 512], { generator: new torch.Generator(3) })
        .mul(0.3)
        .toArray() as number[],
  );
  const data = Float32Array.from(
    noise,
    (v, k) => v + (Math.floor((k % 512) / 128) === cls[Math.floor(k / 512)] ? 1.5 : 0),
  );
  const x = torch.tensor(data, [B, 1, 8, 8, 8]).keep();
  const inputIds = torch
    .tensor(BigInt64Array.from(cls.flatMap((c) => [2n, BigInt(10 + c), BigInt(20 + c), 3n])), [B, 4])
    .keep();
  const attentionMask = torch.tensor(new BigInt64Array(B * 4).fill(1n), [B, 4]).keep();
  const sentenceIndex = torch.tensor(BigInt64Array.from(cls.flatMap(() => [-1n, 0n, 0n, -1n])), [B, 4]).keep();
  const base = objectiveFor(formulation);
  const objective = { ...base, tma: { ...base.tma, ...tma } as Tma };
  const opt = new optim.AdamW(model.parameters(), { lr: 3e-3 });
  const teacher =
    formulation === 'teacher' ? new EmaTeacher(buildT3dModel(config().model, [8, 8, 8], 40), model, 0.9) : undefined;
  let gap = NaN;
  for (let step = 0; step < 40; step++) {
    gap = torch.tidy(() => {
      const out = t3dLoss(
        model,
        { global: x, locals: [x.narrow(2, 0, 4), x.narrow(2, 4, 4)], inputIds, attentionMask, sentenceIndex },
        objective,
        step,
        undefined,
        teacher?.model,
      );
      opt.zeroGrad();
      out.total.backward();
      opt.step();
      return out.stats.tmaLeakGap!;
    });
    teacher?.update(model);
  }
  torch.dispose([x, inputIds, attentionMask, sentenceIndex]);
  model.dispose();
  teacher?.model.dispose();
  return gap;
}

test('leak check: after training, the swapped, teacher and local formulations need the true volume; the fused one is solved from the report', () => {
  const swapped = trainedLeakGap('swapped');
  const teacher = trainedLeakGap('teacher');
  const teacherEmbedding = trainedLeakGap('teacher', {
    teacherCodes: 'embedding',
    relativeEpsilon: true,
    epsilon: 0.3,
  });
  const local = trainedLeakGap('local');
  const fused = trainedLeakGap('fused');
  console.log(
    `leak gaps (nats): swapped ${swapped.toFixed(2)}, teacher ${teacher.toFixed(2)}, teacher with embedding codes ${teacherEmbedding.toFixed(2)}, local ${local.toFixed(2)}, fused ${fused.toFixed(2)}`,
  );
  assert.ok(
    teacherEmbedding > 1,
    `teacher, embedding codes: another patient's volume costs ${teacherEmbedding.toFixed(2)} nats more (want > 1)`,
  );
  assert.ok(local > 1, `local: another patient's volume costs ${local.toFixed(2)} nats more (want > 1)`);
  assert.ok(swapped > 2, `swapped: another patient's volume costs ${swapped.toFixed(2)} nats more (want > 2)`);
  assert.ok(teacher > 1, `teacher: another patient's volume costs ${teacher.toFixed(2)} nats more (want > 1)`);
  assert.ok(
    fused < swapped / 4,
    `fused: ${fused.toFixed(2)} nats, much less than swapped ${swapped.toFixed(2)}: its predictor reads the report`,
  );
});

test('fusion: all views of a volume against its report at once equal one view at a time against the report repeated (values and gradients)', () => {
  torch.manualSeed(3);
  const [V, B, N, C, L, D] = [3, 2, 5, 12, 7, 10];
  const fusion = new TextInformedFusion(C, D, 16, 8, 4);
  const tokens = torch
    .randn([V * B, N, C])
    .requiresGrad_(true)
    .keep();
  const text = torch.randn([B, L, D]).requiresGrad_(true).keep();
  const paddingMask = torch.tensor([0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1], [B, L], { dtype: 'bool' }).keep();
  const weights = torch.randn([V * B, 8]).keep();
  const run = (grouped: boolean) =>
    torch.tidy(() => {
      const repeat = (t: torch.Tensor) => t.repeat(V, ...Array(t.ndim - 1).fill(1));
      const h = grouped
        ? fusion.forwardViews(tokens, V, { tokens: text, paddingMask })
        : fusion.forward(tokens, { tokens: repeat(text), paddingMask: repeat(paddingMask) });
      h.mul(weights).sum().backward();
      const grads = [tokens.grad!.clone(), text.grad!.clone(), ...fusion.parameters().map((p) => p.grad!.clone())];
      [tokens, text, ...fusion.parameters()].forEach((p) => p.grad!.zero_());
      return [h.detach(), ...grads].map((t) => t.keep());
    });
  const one = run(false),
    all = run(true);
  one.forEach((t, i) => assertClose(all[i]!, t, { atol: 1e-5, rtol: 1e-5, what: i === 0 ? 'h' : `gradient ${i}` }));
  torch.dispose([tokens, text, paddingMask, weights, ...one, ...all]);
});
