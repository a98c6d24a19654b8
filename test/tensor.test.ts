// Tensors: creation, dtypes, data transfer, autograd basics, scopes, and error paths.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import * as torch from '../src/torch/index.js';
import { DTYPES } from '../src/torch/index.js';

test('factories give the documented shapes, dtypes and values', () => {
  torch.tidy(() => {
    assert.deepEqual(torch.zeros([2, 3]).toArray(), [0, 0, 0, 0, 0, 0]);
    assert.equal(torch.ones([2], { dtype: 'int32' }).dtype, 'int32');
    assert.deepEqual(torch.full([2], 7, { dtype: 'int64' }).toArray(), [7, 7]);
    assert.deepEqual(torch.arange(4).toArray(), [0, 1, 2, 3]);
    assert.equal(torch.arange(4).dtype, 'int64');
    assert.deepEqual(torch.arange(0, 1, 0.25).toArray(), [0, 0.25, 0.5, 0.75]);
    assert.deepEqual(torch.linspace(0, 1, 5).toArray(), [0, 0.25, 0.5, 0.75, 1]);
    assert.deepEqual(torch.eye(2).toArray(), [1, 0, 0, 1]);
    assert.deepEqual(torch.empty([3, 0]).shape, [3, 0]);
    const perm = torch
      .randperm(10)
      .toArray()
      .sort((a, b) => a - b);
    assert.deepEqual(perm, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const ri = torch.randint(3, 7, [1000]);
    assert.ok(ri.min().item() >= 3 && ri.max().item() <= 6);
    const u = torch.rand([10000]);
    assert.ok(Math.abs(u.mean().item() - 0.5) < 0.02);
    const n = torch.randn([10000], { dtype: 'float64' });
    assert.ok(Math.abs(n.std().item() - 1) < 0.05);
  });
});

test('explicit generators and manualSeed are reproducible; generator state restores the stream', () => {
  torch.tidy(() => {
    const a = torch.randn([5], { generator: new torch.Generator(7) }).toArray();
    const b = torch.randn([5], { generator: new torch.Generator(7) }).toArray();
    assert.deepEqual(a, b);
    torch.manualSeed(11);
    const c = torch.rand([3]).toArray();
    torch.manualSeed(11);
    assert.deepEqual(torch.rand([3]).toArray(), c);
    const g = new torch.Generator(3);
    const state = g.getState();
    const first = torch.rand([4], { generator: g }).toArray();
    g.setState(state);
    assert.deepEqual(torch.rand([4], { generator: g }).toArray(), first);
  });
});

test('every dtype converts and reads back', () => {
  torch.tidy(() => {
    for (const dt of DTYPES) {
      const t = torch.tensor([0, 1, 2, 3], [2, 2], { dtype: dt });
      assert.equal(t.dtype, dt);
      assert.deepEqual(t.shape, [2, 2]);
      const expect = dt === 'bool' ? [0, 1, 1, 1] : [0, 1, 2, 3];
      assert.deepEqual(t.toArray(), expect, dt);
    }
    const typed = torch.tensor(new Int16Array([-5, 300]));
    assert.equal(typed.dtype, 'int16');
    assert.deepEqual(Array.from(typed.toTypedArray() as Int16Array), [-5, 300]);
    assert.equal(torch.scalar(3.5).item(), 3.5);
  });
});

test('autograd: backward accumulates, zeroGrad resets, noGrad stops recording, retainGraph', () => {
  torch.tidy(() => {
    const x = torch.tensor([1, 2, 3], undefined, { dtype: 'float64', requiresGrad: true });
    const y = x.mul(x).sum();
    y.backward(undefined, { retainGraph: true });
    assert.deepEqual(x.grad!.toArray(), [2, 4, 6]);
    y.backward();
    assert.deepEqual(x.grad!.toArray(), [4, 8, 12], 'gradients accumulate');
    x.zeroGrad();
    assert.equal(x.grad, undefined);
    const z = torch.noGrad(() => x.mul(2));
    assert.equal(z.requiresGrad, false);
    assert.equal(torch.isGradEnabled(), true);
    const w = x.mul(3);
    w.backward(torch.tensor([1, 0, 2], undefined, { dtype: 'float64' }));
    assert.deepEqual(x.grad!.toArray(), [3, 0, 6], 'backward with a gradient argument');
    const [gx] = torch.grad([x.pow(3).sum()], [x]);
    assert.deepEqual(gx!.toArray(), [3, 12, 27]);
    assert.equal(x.detach().requiresGrad, false);
  });
});

test('tidy frees intermediates, keeps returned and kept tensors; nested scopes; errors release the scope', () => {
  const before = torch.memory().numTensors;
  let kept: torch.Tensor | undefined;
  const out = torch.tidy(() => {
    const a = torch.ones([4]);
    kept = a.mul(2).keep();
    const inner = torch.tidy(() => a.add(1).mul(3));
    return { result: inner.add(a), list: [a.sum()] };
  });
  assert.equal(torch.memory().numTensors, before + 3, 'result, list[0] and kept survive');
  assert.deepEqual(out.result.toArray(), [7, 7, 7, 7]);
  assert.throws(
    () =>
      torch.tidy(() => {
        torch.ones([2]);
        throw new Error('boom');
      }),
    /boom/,
  );
  assert.equal(torch.memory().scopeDepth, 0);
  assert.equal(torch.memory().numTensors, before + 3);
  torch.dispose([out, kept]);
  assert.equal(torch.memory().numTensors, before);
  assert.throws(() => torch.tidy(() => Promise.resolve(1) as unknown as number), /synchronous/);
});

test('error paths throw JS errors with the reason and the process survives', () => {
  torch.tidy(() => {
    const a = torch.ones([2, 3]);
    assert.throws(() => a.matmul(torch.ones([2, 3])), /cannot be multiplied \(2x3 and 2x3\)/);
    assert.throws(() => a.add(torch.ones([4])), /size of tensor a \(3\) must match the size of tensor b \(4\)/);
    assert.throws(() => torch.F.crossEntropy(torch.ones([2, 3]), torch.ones([2])), /expected scalar type Long|Float/);
    assert.throws(() => a.select(0, 5), /out of range/);
    assert.throws(() => a.indexSelect(1, torch.tensor(new BigInt64Array([7n]))), /out of (range|DATA bounds)/);
    assert.throws(() => a.view(4, 2), /shape '\[4, 2\]' is invalid/);
    assert.throws(() => torch.zeros([-1]), /every size must be an integer ≥ 0/);
    assert.throws(() => torch.tensor(new Float32Array(3), [2, 2]), /3 elements|12 bytes/);
    assert.throws(() => a.item(), /6 elements, expected 1/);
    assert.throws(() => torch.F.dropout(a, 2, true), /p must be in \[0, 1\]/);
    assert.throws(() => torch.ones([2], { dtype: 'complex' as never }), /unknown dtype 'complex'/);
    const d = torch.ones([1]);
    d.dispose();
    assert.throws(() => d.add(1), /disposed/);
    assert.throws(() => d.shape, /disposed/);
    d.dispose(); // double dispose is harmless
  });
  assert.equal(torch.ones([1]).add(1).item(), 2, 'still working after errors');
});

test('a stale handle never reaches a newer tensor in the same slot', () => {
  const a = torch.ones([1]);
  const staleId = a.id;
  a.dispose();
  const b = torch.zeros([1]); // likely reuses the slot
  const ghost = Object.assign(Object.create(torch.Tensor.prototype) as torch.Tensor, { id: staleId });
  assert.throws(() => ghost.add(1), /disposed/);
  b.dispose();
});

test('shape ops and indexing', () => {
  torch.tidy(() => {
    const x = torch.arange(24).reshape(2, 3, 4);
    assert.deepEqual(x.permute(2, 0, 1).shape, [4, 2, 3]);
    assert.deepEqual(x.transpose(0, 2).contiguous().view(4, 6).shape, [4, 6]);
    assert.deepEqual(
      x.split(2, 2).map((t) => t.shape),
      [
        [2, 3, 2],
        [2, 3, 2],
      ],
    );
    assert.deepEqual(x.chunk(3, 1).length, 3);
    assert.deepEqual(x.narrow(2, 1, 2).sum().item(), x.slice(2, 1, 3).sum().item());
    assert.deepEqual(x.flip([2]).select(0, 0).select(0, 0).toArray(), [3, 2, 1, 0]);
    assert.deepEqual(torch.stack([x, x]).shape, [2, 2, 3, 4]);
    assert.deepEqual(torch.cat([x, x], 1).shape, [2, 6, 4]);
    assert.deepEqual(x.unsqueeze(1).squeeze(1).shape, [2, 3, 4]);
    assert.deepEqual(torch.ones([1, 3]).expand(2, 3).shape, [2, 3]);
    assert.deepEqual(torch.ones([1, 3]).repeat(2, 2).shape, [2, 6]);
    const [v, i] = torch.tensor([3, 1, 2]).sort();
    assert.deepEqual(v.toArray(), [1, 2, 3]);
    assert.deepEqual(i.toArray(), [1, 2, 0]);
    assert.deepEqual(torch.tensor([1, 2, 3, 4]).cumsum(0).toArray(), [1, 3, 6, 10]);
    assert.deepEqual(x.max().item(), 23);
    assert.deepEqual(torch.tensor([1, 5, 2]).argmax().item(), 1);
    assert.deepEqual(torch.oneHot(torch.tensor(new BigInt64Array([2n, 0n])), 3).toArray(), [0, 0, 1, 1, 0, 0]);
    assert.equal(
      torch
        .tensor([1, 2])
        .eq(torch.tensor([1, 3]))
        .all()
        .item(),
      0,
    );
  });
});

test('engine facts: threads default to all cores, settable', () => {
  const n = torch.getNumThreads();
  assert.ok(n >= 1);
  torch.setNumThreads(1);
  assert.equal(torch.getNumThreads(), 1);
  torch.setNumThreads(n);
  assert.throws(() => torch.setNumThreads(0), /at least 1 thread/);
  const info = torch.buildInfo();
  assert.match(info.torchVersion, /^\d+\.\d+/);
  assert.equal(typeof torch.cuda.isAvailable(), 'boolean');
});

test('the BLAS this process loaded is found, and set-up gives libtorch OpenBLAS rather than the reference BLAS', () => {
  const blas = torch.loadedBlas();
  assert.ok(['openblas', 'mkl', 'blis', 'reference', 'unknown'].includes(blas.kind));
  if (blas.kind !== 'unknown') assert.ok(existsSync(blas.path!), blas.path);
  // CI runs scripts/setup.sh on Debian's libtorch: the reference BLAS there would make every matrix product 13-40x slower
  if (process.env.CI && torch.blasName() === 'generic') assert.equal(blas.kind, 'openblas', `loaded ${blas.path}`);
});
