// Finite-difference gradient checks (float64) for every differentiable op the engine exposes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/torch/index.js';
import { F, nn, type Tensor } from '../src/torch/index.js';

const g = new torch.Generator(42);
const r = (...shape: number[]) => torch.randn(shape, { dtype: 'float64', generator: g }).keep();
/** positive inputs, away from 0 (log, sqrt, pow, div) */
const pos = (...shape: number[]) => torch.rand(shape, { dtype: 'float64', generator: g }).add(0.5).keep();
const long = (values: number[], shape?: number[]) => torch.tensor(new BigInt64Array(values.map(BigInt)), shape).keep();

type Check = [name: string, fn: (...xs: Tensor[]) => Tensor, inputs: Tensor[], wrt?: number[]];
const checks: Check[] = [
  ['add', (a, b) => a.add(b, 0.7), [r(3, 4), r(4)]],
  ['sub', (a, b) => a.sub(b), [r(3, 4), r(3, 1)]],
  ['mul', (a, b) => a.mul(b), [r(3, 4), r(3, 4)]],
  ['div', (a, b) => a.div(b), [r(3, 4), pos(3, 4)]],
  ['pow', (a, b) => a.pow(b), [pos(3, 4), r(3, 4)]],
  ['pow scalar', (a) => a.pow(2.5), [pos(5)]],
  ['scalar ops', (a) => a.mul(3).add(1).sub(2).div(4).rsub(1), [r(5)]],
  ['abs', (a) => a.abs(), [r(6)]],
  ['neg', (a) => a.neg(), [r(6)]],
  ['exp', (a) => a.exp(), [r(6)]],
  ['log', (a) => a.log(), [pos(6)]],
  ['sqrt', (a) => a.sqrt(), [pos(6)]],
  ['sigmoid', (a) => a.sigmoid(), [r(6)]],
  ['tanh', (a) => a.tanh(), [r(6)]],
  ['relu', (a) => a.relu(), [r(6)]],
  ['relu_ (in place, on an intermediate)', (a) => a.mul(1.5).relu_(), [r(6)]],
  ['addRecorded_ (in place, on an intermediate)', (a, b) => a.mul(2).addRecorded_(b.sigmoid()), [r(3, 4), r(3, 4)]],
  ['gelu', (a) => a.gelu(), [r(6)]],
  ['gelu tanh', (a) => a.gelu('tanh'), [r(6)]],
  ['silu', (a) => a.silu(), [r(6)]],
  ['softmax', (a) => a.softmax(1), [r(3, 5)]],
  ['logSoftmax', (a) => a.logSoftmax(0), [r(3, 5)]],
  ['clamp', (a) => a.clamp(-0.5, 0.5), [r(8)]],
  ['where', (a, b) => torch.where(a.gt(0), a, b), [r(8), r(8)]],
  ['maskedFill', (a) => a.maskedFill(a.gt(0.2), 0.5), [r(8)]],
  ['matmul', (a, b) => a.matmul(b), [r(2, 3, 4), r(4, 2)]],
  ['bmm', (a, b) => a.bmm(b), [r(2, 3, 4), r(2, 4, 2)]],
  ['einsum', (a, b) => torch.einsum('bij,bkj->bik', a, b), [r(2, 3, 4), r(2, 2, 4)]],
  ['linear', (x, w, b) => F.linear(x, w, b), [r(2, 4), r(3, 4), r(3)]],
  [
    'conv3d',
    (x, w, b) => F.conv3d(x, w, b, { stride: [1, 2, 1], padding: 1 }),
    [r(2, 2, 3, 4, 3), r(3, 2, 3, 3, 3), r(3)],
  ],
  [
    'conv3d groups+dilation',
    (x, w) => F.conv3d(x, w, undefined, { dilation: 2, padding: 2, groups: 2 }),
    [r(1, 2, 4, 4, 4), r(2, 1, 2, 2, 2)],
  ],
  ['conv2d', (x, w, b) => F.conv2d(x, w, b, { padding: 1 }), [r(2, 2, 4, 4), r(3, 2, 3, 3), r(3)]],
  [
    'convTranspose3d',
    (x, w, b) => F.convTranspose3d(x, w, b, { stride: 2, padding: 1, outputPadding: 1 }),
    [r(1, 2, 2, 3, 2), r(2, 2, 3, 3, 3), r(2)],
  ],
  ['maxPool3d', (x) => F.maxPool3d(x, 2, { stride: 2 }), [r(1, 2, 4, 4, 4)]],
  ['avgPool3d', (x) => F.avgPool3d(x, 3, { stride: 2, padding: 1 }), [r(1, 2, 4, 5, 4)]],
  ['adaptiveAvgPool3d', (x) => F.adaptiveAvgPool3d(x, [2, 1, 3]), [r(1, 2, 4, 3, 5)]],
  [
    'batchNorm (training)',
    (x, w, b) => F.batchNorm(x, { weight: w, bias: b, training: true }),
    [r(3, 2, 2, 2, 2), r(2), r(2)],
  ],
  ['groupNorm', (x, w, b) => F.groupNorm(x, 2, w, b), [r(2, 4, 2, 3, 2), r(4), r(4)]],
  ['layerNorm', (x, w, b) => F.layerNorm(x, [5], w, b), [r(3, 5), r(5), r(5)]],
  ['instanceNorm', (x) => F.instanceNorm(x), [r(2, 2, 3, 2, 2)]],
  [
    'dropout (fixed seed)',
    (x) => {
      torch.manualSeed(3);
      return F.dropout(x, 0.4, true);
    },
    [r(10)],
  ],
  ['embedding', (w, i) => F.embedding(w, i), [r(5, 3), long([0, 4, 4, 2])], [0]],
  ['interpolate nearest', (x) => F.interpolate(x, [3, 5, 2]), [r(1, 2, 2, 3, 4)]],
  ['interpolate trilinear', (x) => F.interpolate(x, [3, 5, 2], 'trilinear'), [r(1, 2, 2, 3, 4)]],
  ['interpolate trilinear alignCorners', (x) => F.interpolate(x, [3, 5, 2], 'trilinear', true), [r(1, 2, 2, 3, 4)]],
  ['interpolate bilinear', (x) => F.interpolate(x, [5, 2], 'bilinear'), [r(2, 2, 3, 4)]],
  ['interpolate nearest 2-D', (x) => F.interpolate(x, [5, 2]), [r(2, 2, 3, 4)]],
  ['pad constant', (x) => F.pad(x, [1, 0, 2, 1], 'constant', 0.3), [r(2, 3, 3)]],
  ['pad reflect', (x) => F.pad(x, [1, 1, 0, 2, 1, 0], 'reflect'), [r(1, 1, 3, 3, 3)]],
  ['pad replicate', (x) => F.pad(x, [2, 1, 0, 1, 1, 1], 'replicate'), [r(1, 1, 2, 3, 3)]],
  ['sum/mean', (x) => x.sum(1).add(x.mean([0, 1], true).squeeze(0)), [r(3, 4, 2)]],
  ['max/min', (x) => x.max(1).add(x.min(1)), [r(3, 4)]],
  ['maxDim values', (x) => x.maxDim(0)[0], [r(3, 4)]],
  ['logsumexp', (x) => x.logsumexp(1), [r(3, 4)]],
  ['norm', (x) => x.norm(2, 1), [r(3, 4)]],
  ['var/std', (x) => x.var(1).add(x.std(0, { correction: 0 }).sum()), [r(3, 4)]],
  ['cumsum', (x) => x.cumsum(1), [r(3, 4)]],
  ['prod', (x) => x.prod(1), [r(3, 4)]],
  ['sort values', (x) => x.sort(1, true)[0], [r(3, 4)]],
  ['topk values', (x) => x.topk(2, 1)[0], [r(3, 4)]],
  ['cat/stack', (a, b) => torch.cat([a, b], 1).add(torch.stack([a, b], 1).sum(1).repeat(1, 2)), [r(2, 3), r(2, 3)]],
  [
    'split/chunk',
    (x) => {
      const [a, b] = x.split([1, 3], 1) as [Tensor, Tensor];
      const [c, d] = x.chunk(2, 1) as [Tensor, Tensor];
      return a.mul(b.sum(1, true)).add(c.mul(d).sum());
    },
    [r(3, 4)],
  ],
  ['reshape/view/permute/transpose', (x) => x.reshape(4, 6).view(2, 12).T.permute(1, 0).transpose(0, 1), [r(2, 3, 4)]],
  ['squeeze/unsqueeze/expand/flatten', (x) => x.unsqueeze(0).expand(3, 2, 1, 4).squeeze(2).flatten(1), [r(2, 1, 4)]],
  ['flip/roll', (x) => x.flip([0, 2]).roll([1], [1]), [r(2, 3, 4)]],
  ['narrow/slice/select', (x) => x.narrow(1, 1, 2).slice(2, 0, 4, 2).select(0, 1), [r(2, 3, 4)]],
  ['indexSelect', (x, i) => x.indexSelect(1, i), [r(3, 4), long([3, 0, 3])], [0]],
  ['gather', (x, i) => x.gather(1, i), [r(3, 4), long([0, 3, 1, 1, 2, 0], [3, 2])], [0]],
  ['scatter', (x, i, s) => x.scatter(1, i, s), [r(3, 4), long([0, 3, 1, 2, 2, 0], [3, 2]), r(3, 2)], [0, 2]],
  ['scatterAdd', (x, i, s) => x.scatterAdd(1, i, s), [r(3, 4), long([0, 0, 1, 1, 2, 0], [3, 2]), r(3, 2)], [0, 2]],
  ['index', (x, i) => x.index([i]), [r(4, 3), long([2, 0, 2])], [0]],
  ['normalize', (x) => F.normalize(x, 1), [r(3, 4)]],
  ['cosineSimilarity', (a, b) => F.cosineSimilarity(a, b, 1), [r(3, 4), r(3, 4)]],
  [
    'crossEntropy + label smoothing',
    (x, t) => F.crossEntropy(x, t, { labelSmoothing: 0.1 }),
    [r(4, 5), long([0, 4, 2, 2])],
    [0],
  ],
  ['crossEntropy probabilities', (x, p) => F.crossEntropy(x, p), [r(4, 5), pos(4, 5)]],
  [
    'bceWithLogits',
    (x, y) => F.binaryCrossEntropyWithLogits(x, y),
    [r(3, 4), torch.rand([3, 4], { dtype: 'float64', generator: g }).keep()],
  ],
  ['mseLoss', (a, b) => F.mseLoss(a, b), [r(3, 4), r(3, 4)]],
  ['l1Loss', (a, b) => F.l1Loss(a, b, 'sum'), [r(3, 4), r(3, 4)]],
  [
    'scaledDotProductAttention',
    (q, k, v) => F.scaledDotProductAttention(q, k, v),
    [r(2, 3, 4), r(2, 5, 4), r(2, 5, 4)],
  ],
];

for (const [name, fn, inputs, wrt] of checks) {
  test(`gradcheck: ${name}`, () => {
    const res = torch.gradcheck(fn, inputs, { wrt, atol: 1e-5, rtol: 1e-4 });
    assert.ok(res.ok, `${name}: ${res.worst} (max abs error ${res.maxAbsError})`);
  });
}

test('gradcheck: MultiheadAttention module with key padding mask', () => {
  torch.manualSeed(0);
  const mha = new nn.MultiheadAttention(4, 2, { batchFirst: true }).to({ dtype: 'float64' });
  const mask = torch.tensor(new Uint8Array([0, 0, 1, 0, 0, 0]), [2, 3], { dtype: 'bool' }).keep();
  const res = torch.gradcheck((q, kv) => mha.forward(q, kv, kv, { keyPaddingMask: mask })[0], [r(2, 2, 4), r(2, 3, 4)]);
  assert.ok(res.ok, res.worst);
});

test('gradcheck detects a wrong gradient', () => {
  // detach() cuts the graph: autograd sees zero gradient where the function clearly depends on x.
  const res = torch.gradcheck((x) => x.mul(x.detach()), [r(4)]);
  assert.equal(res.ok, false);
});
