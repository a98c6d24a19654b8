// nn.Module behaviour, layer shapes and names, optimizer groups, schedules and clipping.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/torch/index.js';
import { nn, optim, type Tensor } from '../src/torch/index.js';
import { assertClose } from './helpers.js';

class Block extends nn.Module {
  readonly conv1 = this.registerModule('conv1', new nn.Conv3d(1, 4, 3, { padding: 1, bias: false }));
  readonly bn1 = this.registerModule('bn1', new nn.BatchNorm3d(4));
  readonly layers = this.registerModule('layers', new nn.ModuleList([new nn.Linear(4, 4), new nn.Linear(4, 2)]));
}

test('state dict names, buffers, train/eval, freeze', () => {
  const m = new Block();
  assert.deepEqual(
    [...m.stateDict().keys()],
    [
      'conv1.weight',
      'bn1.weight',
      'bn1.bias',
      'layers.0.weight',
      'layers.0.bias',
      'layers.1.weight',
      'layers.1.bias',
      'bn1.running_mean',
      'bn1.running_var',
      'bn1.num_batches_tracked',
    ],
  );
  assert.equal(m.numParameters(), 4 * 27 + 8 + 20 + 10);
  m.eval();
  assert.equal(m.bn1.training, false);
  m.train();
  assert.equal(m.layers.at(1).training, true);
  m.freeze();
  assert.ok(m.parameters().every((p) => !p.requiresGrad));
  m.freeze(false);
  assert.ok(m.parameters().every((p) => p.requiresGrad));
  m.to({ dtype: 'float64' });
  assert.equal(m.conv1.weight.dtype, 'float64');
  assert.equal(m.getBuffer('bn1.num_batches_tracked'), undefined);
  assert.equal(m.bn1.getBuffer('num_batches_tracked')!.dtype, 'int64', 'integer buffers keep their dtype');
  assert.ok(m.conv1.weight.requiresGrad);
  assert.ok(m.conv1.weight.isLeaf, 'moved parameters are leaves (they receive .grad)');
  torch.tidy(() =>
    m.conv1
      .forward(torch.randn([1, 1, 4, 4, 4], { dtype: 'float64' }))
      .sum()
      .backward(),
  );
  assert.ok(m.conv1.weight.grad, 'gradient reaches a moved parameter');
  m.dispose();
});

test('default initialisation follows PyTorch bounds', () => {
  torch.tidy(() => {
    const lin = new nn.Linear(100, 50);
    const bound = 1 / Math.sqrt(100);
    assert.ok(lin.weight.abs().max().item() <= bound + 1e-7);
    assert.ok(lin.weight.abs().max().item() > bound * 0.9);
    assert.ok(Math.abs(lin.weight.std().item() - bound / Math.sqrt(3)) < 0.01);
    const conv = new nn.Conv3d(4, 8, 3);
    assert.ok(conv.weight.abs().max().item() <= 1 / Math.sqrt(4 * 27) + 1e-7);
    const emb = new nn.Embedding(10, 4, 0);
    assert.deepEqual(emb.weight.select(0, 0).toArray(), [0, 0, 0, 0]);
    const t = torch.empty([20000]);
    nn.init.truncNormal_(t, 0.02);
    assert.ok(t.abs().max().item() <= 2);
    assert.ok(Math.abs(t.std().item() - 0.02) < 0.001);
    lin.dispose();
    conv.dispose();
    emb.dispose();
  });
});

test('layers produce PyTorch shapes', () => {
  torch.tidy(() => {
    const x = torch.randn([2, 3, 8, 8, 8]);
    assert.deepEqual(new nn.Conv3d(3, 5, 3, { stride: 2, padding: 1 }).forward(x).shape, [2, 5, 4, 4, 4]);
    assert.deepEqual(new nn.ConvTranspose3d(3, 2, 2, { stride: 2 }).forward(x).shape, [2, 2, 16, 16, 16]);
    assert.deepEqual(new nn.GroupNorm(3, 3).forward(x).shape, [2, 3, 8, 8, 8]);
    const d = new nn.Dropout(0.5);
    d.eval();
    assert.deepEqual(d.forward(x).sub(x).abs().max().item(), 0, 'eval-mode dropout is the identity');
    const mha = new nn.MultiheadAttention(8, 2);
    const [y, w] = mha.forward(torch.randn([5, 2, 8]), torch.randn([7, 2, 8]), torch.randn([7, 2, 8]), {
      needWeights: true,
    });
    assert.deepEqual(y.shape, [5, 2, 8]);
    assert.deepEqual(w!.shape, [2, 5, 7]);
    assert.throws(() => new nn.MultiheadAttention(10, 3), /not divisible/);
  });
});

test('parameter groups: per-group weight decay and lr; schedules; state round trip', () => {
  const lin = new nn.Linear(3, 2);
  const decay = [...lin.namedParameters()].filter(([n]) => !n.endsWith('bias')).map(([, p]) => p);
  const noDecay = [...lin.namedParameters()].filter(([n]) => n.endsWith('bias')).map(([, p]) => p);
  const opt = new optim.AdamW(
    [
      { params: decay, weightDecay: 0.1 },
      { params: noDecay, weightDecay: 0, lr: 0.5 },
    ],
    { lr: 0.01 },
  );
  assert.equal(opt.groups[0]!.options.weightDecay, 0.1);
  assert.equal(opt.groups[1]!.options.lr, 0.5);
  const sched = new optim.LRScheduler(opt, optim.warmupCosine(2, 10, 0.1));
  assert.deepEqual(sched.currentLrs(), [0.005, 0.25]);
  sched.step();
  assert.deepEqual(sched.currentLrs(), [0.01, 0.5]);
  sched.setStep(10);
  assertClose(torch.tensor(sched.currentLrs()), [0.001, 0.05], { atol: 1e-9 });
  assert.deepEqual([0, 1, 2, 3].map(optim.stepDecay(2, 0.5)), [1, 1, 0.5, 0.5]);
  assert.throws(() => optim.warmupCosine(20, 10), /warmupSteps/);
  lin.dispose();
});

test('clipGradNorm matches the global-norm formula and returns the pre-clip norm', () => {
  const a = torch.tensor([3, 0], undefined, { requiresGrad: true }).keep();
  const b = torch.tensor([0, 4], undefined, { requiresGrad: true }).keep();
  torch.tidy(() =>
    a
      .mul(torch.tensor([1, 1]))
      .sum()
      .add(b.mul(torch.tensor([0, 1])).sum())
      .mul(1)
      .backward(),
  );
  a.grad = torch.tensor([3, 0]);
  b.grad = torch.tensor([0, 4]);
  const norm = optim.clipGradNorm([a, b], 1);
  assert.ok(Math.abs(norm - 5) < 1e-6);
  assertClose(a.grad!, [0.6, 0], { atol: 1e-6 });
  assertClose(b.grad!, [0, 0.8], { atol: 1e-6 });
  torch.dispose([a, b]);
});

test('SGD state (momentum buffers) survives stateDict/loadStateDict', () => {
  const run = (p: Tensor, opt: optim.SGD, steps: number) => {
    for (let i = 0; i < steps; i++) {
      torch.tidy(() => p.mul(p).sum().backward());
      opt.step();
      opt.zeroGrad();
    }
  };
  const p1 = torch.tensor([1, -2, 3], undefined, { dtype: 'float64' }).keep().requiresGrad_();
  const o1 = new optim.SGD([p1], { lr: 0.1, momentum: 0.9 });
  run(p1, o1, 2);
  const p2 = p1.detach().clone().keep().requiresGrad_();
  const o2 = new optim.SGD([p2], { lr: 0.1, momentum: 0.9 });
  o2.loadStateDict(o1.stateDict());
  run(p1, o1, 3);
  run(p2, o2, 3);
  assertClose(p2, p1, { atol: 0, rtol: 0 });
  assert.throws(() => new optim.AdamW([p2]).loadStateDict(o1.stateDict()), /state is for SGD/);
  assert.throws(() => new optim.SGD([p2], { lr: 1, nesterov: true }), /nesterov needs momentum/);
});
