// Mixed precision: autocast regions (CPU bfloat16 here; CUDA float16 uses the same path) and the dynamic
// loss scaler of float16 training.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/torch/index.js';
import { F, nn, optim } from '../src/torch/index.js';
import { assertClose } from './helpers.js';

test('autocast runs convolutions and matmuls in bfloat16, cross-entropy in float32, and restores the previous state', () => {
  torch.manualSeed(0);
  torch.tidy(() => {
    const x = torch.randn([2, 3, 8, 8, 8]);
    const w = torch.randn([4, 3, 3, 3, 3]);
    const a = torch.randn([4, 16]);
    const b = torch.randn([16, 5]);
    const ref = F.conv3d(x, w, undefined, { padding: 1 });
    assert.equal(torch.isAutocastEnabled('cpu'), false);
    torch.autocast('cpu', 'bfloat16', () => {
      assert.equal(torch.isAutocastEnabled('cpu'), true);
      const y = F.conv3d(x, w, undefined, { padding: 1 });
      assert.equal(y.dtype, 'bfloat16');
      // bfloat16 keeps 8 bits of mantissa: relative error of a 81-term sum stays within a few 1e-3
      const rel = y.to('float32').sub(ref).norm().div(ref.norm()).item();
      assert.ok(rel < 1e-2 && rel > 0, `relative error ${rel}`);
      const m = a.matmul(b);
      assert.equal(m.dtype, 'bfloat16');
      assert.equal(F.crossEntropy(m, torch.tensor(new BigInt64Array([0n, 1n, 2n, 3n]))).dtype, 'float32');
      torch.autocast('cpu', 'bfloat16', () => assert.equal(a.matmul(b).dtype, 'bfloat16'));
      assert.equal(torch.isAutocastEnabled('cpu'), true, 'an inner region leaves the outer one on');
    });
    assert.equal(torch.isAutocastEnabled('cpu'), false);
    assert.equal(a.matmul(b).dtype, 'float32');
    assert.throws(
      () =>
        torch.autocast('cpu', 'bfloat16', () => {
          throw new Error('boom');
        }),
      /boom/,
    );
    assert.equal(torch.isAutocastEnabled('cpu'), false, 'state restored after an exception');
  });
});

test("layer and group norm take a bfloat16 input with float32 parameters and compute in float32 (CUDA autocast's rule)", () => {
  const ln = new nn.LayerNorm(6);
  const gn = new nn.GroupNorm(2, 4);
  torch.tidy(() => {
    const x = torch.randn([3, 6]);
    const y = ln.forward(x.to('bfloat16'));
    assert.equal(y.dtype, 'float32');
    assertClose(y, ln.forward(x.to('bfloat16').to('float32')), { atol: 1e-6 });
    assert.equal(gn.forward(torch.randn([2, 4, 3, 3, 3]).to('bfloat16')).dtype, 'float32');
  });
  ln.dispose();
  gn.dispose();
});

test('gradients through an autocast region land on the float32 parameters', () => {
  torch.manualSeed(1);
  const lin = new nn.Linear(8, 3);
  torch.tidy(() => {
    const loss = torch.autocast('cpu', 'bfloat16', () =>
      F.crossEntropy(lin.forward(torch.randn([5, 8])), torch.tensor(new BigInt64Array([0n, 1n, 2n, 0n, 1n]))),
    );
    loss.backward();
    assert.equal(lin.weight.grad!.dtype, 'float32');
    assert.ok(lin.weight.grad!.abs().sum().item() > 0);
  });
  lin.dispose();
});

test("the loss scaler unscales gradients, detects overflow, backs off and grows like PyTorch's GradScaler", () => {
  const p = torch.zeros([3]).requiresGrad_().keep();
  const s = new optim.GradScaler({ initScale: 1024, growthInterval: 2 });
  torch.tidy(() => s.scaleLoss(p.sum().add(p.mul(2).sum())).backward());
  assert.deepEqual(p.grad!.toArray(), [3072, 3072, 3072]);
  assert.equal(s.unscale([p]), false);
  assert.deepEqual(p.grad!.toArray(), [3, 3, 3]);
  s.update(false);
  assert.equal(s.scale, 1024);
  s.update(false);
  assert.equal(s.scale, 2048, 'grows after growthInterval clean steps');
  torch.noGrad(() => p.grad!.copy_(torch.tensor([1, Infinity, 0])));
  assert.equal(s.unscale([p]), true);
  s.update(true);
  assert.equal(s.scale, 1024, 'backs off on overflow');
  const copy = new optim.GradScaler();
  copy.loadStateDict(s.stateDict());
  assert.deepEqual(copy.stateDict(), { scale: 1024, growthTracker: 0 });
  p.dispose();
});
