// The text-side objectives beside CLIP: report-derived labels (BCE of a linear head on the image embedding) and
// sentence-level CLIP (multi-positive sentence↔volume InfoNCE). Gradients against finite differences, values by hand
// and against plain CLIP where the two coincide, the positives of duplicate sentences, and the terms in t3dLoss.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/torch/index.js';
import { F, type Tensor } from '../src/torch/index.js';
import { applyOverrides, loadConfig } from '../src/train/config.js';
import { buildT3dModel } from '../src/train/factory.js';
import { t3dLoss, type ObjectiveConfig } from '../src/objectives/t3d.js';
import { labelLoss } from '../src/objectives/labels.js';
import { clipLoss } from '../src/objectives/clip.js';
import { multiPositiveInfoNce, sentenceClipTerm, sentencePositives } from '../src/objectives/sentence-clip.js';
import { fixture } from './helpers.js';

const g = new torch.Generator(5);
const r = (...shape: number[]) => torch.randn(shape, { dtype: 'float64', generator: g }).keep();
const f64 = (values: number[], shape: number[]) => torch.tensor(values, shape, { dtype: 'float64' }).keep();
const i64 = (values: number[], shape: number[]) => torch.tensor(BigInt64Array.from(values.map(BigInt)), shape).keep();
const unit = (x: Tensor) => F.normalize(x, -1);

test('label loss: the mean BCE with logits of a 2×2 case, by hand', () => {
  const logits = f64([2, -1, 0.5, 0], [2, 2]);
  const targets = f64([1, 0, 0, 1], [2, 2]);
  // log(1 + e^−2), log(1 + e^−1), log(1 + e^0.5), log 2
  const expected = (0.1269280110429725 + 0.31326168751822286 + 0.9740769841801067 + 0.6931471805599453) / 4;
  assert.ok(Math.abs(torch.tidy(() => labelLoss(logits, targets).item()) - expected) < 1e-12);
  assert.throws(() => labelLoss(logits, f64([1, 0], [1, 2])), /logits \[2, 2\] and report labels \[1, 2\] differ/);
  torch.dispose([logits, targets]);
});

test('label loss through a linear head on normalised embeddings: gradients match finite differences', () => {
  const targets = f64([1, 0, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0], [3, 4]);
  const res = torch.gradcheck((z, w, b) => labelLoss(F.linear(unit(z), w, b), targets), [r(3, 5), r(4, 5), r(4)], {
    atol: 1e-6,
    rtol: 1e-4,
  });
  assert.ok(res.ok, res.worst);
  targets.dispose();
});

/** The loss written out as a double loop over plain numbers, from its definition in docs/ARCHITECTURE.md §3. */
function byHand(z: number[][], u: number[][], p: number[][], s: number): number {
  const dot = (a: number[], b: number[]) => a.reduce((acc, v, k) => acc + v * b[k]!, 0);
  const l = z.map((zi) => u.map((uj) => s * dot(zi, uj)));
  const lse = (v: number[]) => Math.log(v.reduce((acc, x) => acc + Math.exp(x), 0));
  let v2s = 0,
    volumes = 0;
  z.forEach((_, i) => {
    const pos = p[i]!.reduce((a, b) => a + b, 0);
    if (pos === 0) return;
    volumes++;
    const norm = lse(l[i]!);
    v2s -= u.reduce((acc, _u, j) => acc + (p[i]![j]! / pos) * (l[i]![j]! - norm), 0);
  });
  let s2v = 0;
  u.forEach((_, j) => {
    const column = z.map((_z, i) => l[i]![j]!);
    const pos = z.reduce((acc, _z, i) => acc + p[i]![j]!, 0);
    const norm = lse(column);
    s2v -= z.reduce((acc, _z, i) => acc + (p[i]![j]! / pos) * (column[i]! - norm), 0);
  });
  return 0.5 * (v2s / volumes + s2v / u.length);
}

test('multi-positive InfoNCE: the value by hand (a volume without sentences left out), and plain CLIP when each volume has one sentence', () => {
  const z = unit(r(3, 4)).keep(),
    u = unit(r(5, 4)).keep();
  // volume 0 owns sentences 0, 1 and shares 4 with volume 1; volume 2 has none
  const P = [
    [1, 1, 0, 0, 1],
    [0, 0, 1, 1, 1],
    [0, 0, 0, 0, 0],
  ];
  const scale = f64([7], []);
  const got = torch.tidy(() => multiPositiveInfoNce(z, u, f64(P.flat(), [3, 5]), scale).item());
  const rows = (t: Tensor, n: number) => Array.from({ length: n }, (_, i) => t.select(0, i).toArray());
  assert.ok(Math.abs(got - byHand(rows(z, 3), rows(u, 5), P, 7)) < 1e-10, `${got}`);
  // one sentence per volume, positives on the diagonal: CLIP's symmetric InfoNCE
  const v = unit(r(3, 4)).keep();
  const eye = torch.eye(3, 3, { dtype: 'float64' }).keep();
  const logScale = f64([Math.log(7)], []);
  const a = torch.tidy(() => multiPositiveInfoNce(z, v, eye, scale).item());
  const b = torch.tidy(() => clipLoss(z, v, logScale).item());
  assert.ok(Math.abs(a - b) < 1e-10, `${a} vs CLIP ${b}`);
  torch.dispose([z, u, v, eye, scale, logScale]);
});

test('multi-positive InfoNCE: gradients w.r.t. volumes, sentences and the scale match finite differences', () => {
  const P = f64([1, 1, 0, 0, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0], [3, 5]);
  const res = torch.gradcheck(
    (z, u, s) => multiPositiveInfoNce(unit(z), unit(u), P, s.exp()),
    [r(3, 4), r(5, 4), r(1)],
    {
      atol: 1e-6,
      rtol: 1e-4,
    },
  );
  assert.ok(res.ok, res.worst);
  P.dispose();
});

test('sentence positives: a sentence is positive for every report that states the same tokens', () => {
  // report 0: sentences [7 9] [4]; report 1: [4] [7 9 9]; report 2: [4] only, then padding
  const ids = i64([2, 7, 9, 4, 3, 0, 2, 4, 7, 9, 9, 3, 2, 4, 3, 0, 0, 0], [3, 6]);
  const index = i64([-1, 0, 0, 1, -1, -1, -1, 0, 1, 1, 1, -1, -1, 0, -1, -1, -1, -1], [3, 6]);
  const { rows, positive } = sentencePositives(ids, index, 2);
  assert.deepEqual(rows, [0, 1, 2, 3, 4]); // slot b·S + s of each present sentence
  assert.deepEqual(positive.toArray(), [1, 1, 1, 0, 1, 0, 1, 1, 1, 1, 0, 1, 1, 0, 1]);
  torch.dispose([ids, index, positive]);
});

const config = () => applyOverrides(loadConfig(fixture('pretrain', 'tiny.json')), ['model.textPooling="mean"']);

/** A float64 tiny model (with a label head) in eval mode and three reports with sentence indices. */
function setup() {
  torch.manualSeed(2);
  const model = buildT3dModel({ ...config().model, labels: 18 }, [4, 4, 4], 40).to({ dtype: 'float64' });
  model.eval();
  const inputIds = i64([2, 7, 9, 3, 2, 11, 3, 0, 2, 5, 8, 3], [3, 4]);
  const attentionMask = i64([1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1], [3, 4]);
  const sentenceIndex = i64([-1, 0, 1, -1, -1, 0, -1, -1, -1, 0, 0, -1], [3, 4]);
  const x = torch.randn([3, 1, 4, 4, 4], { dtype: 'float64', generator: new torch.Generator(3) }).keep();
  const dispose = () => {
    torch.dispose([inputIds, attentionMask, sentenceIndex, x]);
    model.dispose();
  };
  return { model, inputIds, attentionMask, sentenceIndex, x, dispose };
}

test('sentence-level CLIP through the model: gradients w.r.t. the volume embeddings and the token states match finite differences', () => {
  const { model, inputIds, attentionMask, sentenceIndex, dispose } = setup();
  const report = torch.noGrad(() => model.encodeReport(inputIds, attentionMask));
  Object.values(report).forEach((t) => (t as Tensor).keep());
  const term = (z: Tensor, tokens: Tensor) =>
    sentenceClipTerm(model, unit(z), { ...report, tokens }, inputIds, sentenceIndex);
  const res = torch.gradcheck(term, [r(3, 32), report.tokens.clone().keep()], { atol: 1e-6, rtol: 1e-4 });
  assert.ok(res.ok, res.worst);
  torch.dispose(Object.values(report) as Tensor[]);
  dispose();
});

test('t3dLoss with sentence-level CLIP and extracted labels: both parts logged; the label head and the text tower train', () => {
  const { model, inputIds, attentionMask, sentenceIndex, x, dispose } = setup();
  const c = config().objective;
  const objective: ObjectiveConfig = {
    ...c,
    clip: { weight: 1 },
    tma: { ...c.tma, weight: 0 },
    sentenceClip: { weight: 0.5 },
    labels: { weight: 2 },
  };
  const reportLabels = f64(
    Array.from({ length: 54 }, (_, k) => (k % 5 === 0 ? 1 : 0)),
    [3, 18],
  );
  const batch = { global: x, locals: [], inputIds, attentionMask, sentenceIndex, reportLabels };
  model.train();
  const parts = torch.tidy(() => {
    const out = t3dLoss(model, batch, objective, 0);
    out.total.backward();
    const sum = out.parts.clip! + 0.5 * out.parts.sentenceClip! + 2 * out.parts.labels!;
    assert.ok(Math.abs(out.total.item() - sum) < 1e-9, `total ${out.total.item()} vs ${sum}`);
    return out.parts;
  });
  assert.ok(parts.sentenceClip! > 0 && parts.labels! > 0, JSON.stringify(parts));
  const grad = (prefix: string) =>
    [...model.namedParameters()].some(([n, p]) => n.startsWith(prefix) && p.grad && p.grad.abs().sum().item() > 0);
  assert.ok(grad('label_head.') && grad('text.') && grad('visual.'));
  assert.throws(
    () => torch.tidy(() => t3dLoss(model, { ...batch, reportLabels: undefined }, objective, 0)),
    /objective.labels needs the labels extracted from the reports/,
  );
  assert.throws(
    () => torch.tidy(() => t3dLoss(model, { ...batch, sentenceIndex: undefined }, objective, 0)),
    /objective.sentenceClip needs the reports' sentence indices/,
  );
  reportLabels.dispose();
  dispose();
});
