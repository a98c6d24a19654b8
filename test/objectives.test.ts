// Objectives against independent references (open_clip's ClipLoss, SwAV's Sinkhorn) and finite differences.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/torch/index.js';
import { clipLoss, logitScaleValue } from '../src/objectives/clip.js';
import { EmbeddingQueue, codeUsageEntropy, sinkhorn, tmaLoss } from '../src/objectives/tma/shared.js';
import { assertClose, fixture } from './helpers.js';

const { tensors: ref } = torch.loadSafetensors(fixture('objectives', 'reference.safetensors'));
const r = (k: string) => ref.get(k)!;

test('CLIP loss and its gradients equal open_clip-style ClipLoss', () => {
  torch.tidy(() => {
    const img = r('img').clone().requiresGrad_();
    const txt = r('txt').clone().requiresGrad_();
    const logScale = torch.scalar(Math.log(1 / 0.07)).requiresGrad_();
    const loss = clipLoss(img, txt, logScale);
    assertClose(loss, r('clip_loss'), { atol: 1e-5 });
    loss.backward();
    assertClose(img.grad!, r('clip_grad_img'), { atol: 1e-5 });
    assertClose(txt.grad!, r('clip_grad_txt'), { atol: 1e-5 });
    assertClose(logScale.grad!, r('clip_grad_scale'), { atol: 1e-5 });
  });
});

test('the logit scale is clamped at 100 and gets no gradient beyond it', () => {
  torch.tidy(() => {
    const s = torch.scalar(Math.log(500)).requiresGrad_();
    const v = logitScaleValue(s);
    assert.ok(Math.abs(v.item() - 100) < 1e-3);
    v.backward();
    assert.equal(s.grad!.item(), 0);
  });
});

test('Sinkhorn equals SwAV and converges to equal-partition marginals within 1e-3', () => {
  torch.tidy(() => {
    assertClose(sinkhorn(r('s_text'), { epsilon: 0.05, iterations: 3 }), r('q_text'), { atol: 1e-9, rtol: 1e-7 });
    assertClose(sinkhorn(r('s_text'), { epsilon: 0.05, iterations: 50 }), r('q_text_50'), { atol: 1e-9, rtol: 1e-7 });
    const q = sinkhorn(r('s_text'), { epsilon: 0.05, iterations: 1000 });
    const [B, K] = q.shape as [number, number];
    assertClose(q.sum(1), Array(B).fill(1), { atol: 1e-3, what: 'each sample sums to 1' });
    assertClose(q.sum(0), Array(K).fill(B / K), { atol: 1e-3, what: 'each prototype gets B/K' });
    // large scores / small epsilon stay finite (max subtraction)
    const extreme = sinkhorn(r('s_text').mul(400), { epsilon: 0.05, iterations: 3 });
    assert.equal(extreme.isfinite().all().item(), 1);
  });
});

test("Sinkhorn with relative ε: ε scales with the scores' spread between samples, so the codes ignore the scores' scale and each prototype's offset", () => {
  torch.tidy(() => {
    const s = r('s_text');
    const [B, K] = s.shape as [number, number];
    // the spread computed here in plain JS: sd over samples and prototypes of the scores minus each prototype's mean
    const v = s.toArray() as number[];
    const colMean = Array.from({ length: K }, (_, k) => v.filter((_, i) => i % K === k).reduce((a, b) => a + b, 0) / B);
    const sd = Math.sqrt(v.reduce((a, x, i) => a + (x - colMean[i % K]!) ** 2, 0) / v.length);
    const relative = sinkhorn(s, { epsilon: 0.3, iterations: 3, relative: true });
    assertClose(relative, sinkhorn(s, { epsilon: 0.3 * sd, iterations: 3 }), {
      atol: 1e-9,
      what: 'relative ε = ε × spread',
    });
    const offsets = torch.randn([1, K], { dtype: s.dtype, generator: new torch.Generator(5) });
    assertClose(sinkhorn(s.mul(0.05).add(offsets), { epsilon: 0.3, iterations: 3, relative: true }), relative, {
      atol: 1e-9,
      what: 'scaled and offset scores',
    });
    // absolute ε gives near-uniform codes on concentrated scores; relative ε keeps them as sharp as before
    const entropy = (q: torch.Tensor) => q.clampMin(1e-30).log().mul(q).sum(1).neg().mean().item();
    assert.ok(entropy(sinkhorn(s.mul(0.05), { epsilon: 0.05 })) > entropy(relative) + 0.5);
  });
});

test('TMA swapped-prediction loss and gradients equal the reference; codes carry no gradient', () => {
  torch.tidy(() => {
    const g = r('s_global').clone().requiresGrad_();
    const l = r('s_local').clone().requiresGrad_();
    const text = r('s_text').clone().requiresGrad_();
    const { loss, codes } = tmaLoss(
      new Map([
        ['text', text],
        ['global', g],
        ['local0', l],
      ]),
      ['text'],
      { temperature: 0.1, epsilon: 0.05, sinkhornIterations: 3 },
    );
    assertClose(loss, r('tma_loss'), { atol: 1e-9, rtol: 1e-7 });
    loss.backward();
    assertClose(g.grad!, r('tma_grad_global'), { atol: 1e-9, rtol: 1e-7 });
    assertClose(l.grad!, r('tma_grad_local'), { atol: 1e-9, rtol: 1e-7 });
    assert.equal(text.grad, undefined, 'the code view only provides targets here');
    const e = codeUsageEntropy(codes.get('text')!);
    assert.ok(e > 0 && e <= Math.log(5) + 1e-9);
    torch.dispose([...codes.values()]);
  });
});

test('TMA gradient matches finite differences (codes from two views and a queue, held fixed as stop-gradient targets)', () => {
  const g = new torch.Generator(3);
  const mk = (...s: number[]) => torch.randn(s, { dtype: 'float64', generator: g }).keep();
  const inputs = [mk(3, 5), mk(3, 5), mk(3, 5)];
  const views = (a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) =>
    new Map([
      ['text', a],
      ['global', b],
      ['local0', c],
    ]);
  // codes from constant copies of the code views' scores (and a queue), as the stop-gradient makes them
  const codeScores = new Map([
    ['text', inputs[0]!.clone().keep()],
    ['global', inputs[1]!.clone().keep()],
  ]);
  const queue = new Map([['global', mk(4, 5)]]);
  const res = torch.gradcheck((a, b, c) => {
    const out = tmaLoss(views(a, b, c), ['text', 'global'], {}, queue, codeScores);
    torch.dispose([...out.codes.values()]);
    return out.loss;
  }, inputs);
  assert.ok(res.ok, res.worst);
  torch.dispose([...codeScores.values(), ...queue.values(), ...inputs]);
});

test('embedding queue keeps the newest rows, up to its size, and round-trips through its state', () => {
  const q = new EmbeddingQueue(5);
  q.push('text', torch.full([3, 2], 1));
  q.push('text', torch.full([3, 2], 2));
  assert.deepEqual(q.get('text')!.select(1, 0).toArray(), [2, 2, 2, 1, 1]);
  const copy = new EmbeddingQueue(5);
  copy.loadStateDict(q.stateDict());
  assert.deepEqual(copy.get('text')!.toArray(), q.get('text')!.toArray());
  q.dispose();
  copy.dispose();
  assert.throws(() => tmaLoss(new Map([['global', torch.zeros([2, 3])]]), ['text']), /code view 'text' has no scores/);
});
