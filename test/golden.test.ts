// Forward values of ops, layers and optimizer steps against PyTorch-Python's (fixtures made by
// scripts/fixtures/make_engine_fixtures.py with Python's safetensors, so loading them also tests that path).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as torch from '../src/torch/index.js';
import { F, nn, optim, type Tensor } from '../src/torch/index.js';
import { assertClose, fixture } from './helpers.js';

interface Case {
  name: string;
  inputs: string[];
  outputs: string[];
  params: Record<string, unknown>;
}
const meta = JSON.parse(readFileSync(fixture('engine', 'golden.json'), 'utf8')) as { cases: Case[] };
const { tensors } = torch.loadSafetensors(fixture('engine', 'golden.safetensors'));
for (const t of tensors.values()) t.keep();

const input = (c: string, k: string): Tensor => {
  const t = tensors.get(`${c}.in.${k}`);
  if (!t) throw new Error(`fixture lacks ${c}.in.${k}`);
  return t;
};
const stateOf = (c: string): Map<string, Tensor> =>
  new Map(
    [...tensors].filter(([k]) => k.startsWith(`${c}.in.sd.`)).map(([k, t]) => [k.slice(`${c}.in.sd.`.length), t]),
  );

function trajectory(c: Case, make: (p: Tensor[]) => optim.Optimizer<object>): Record<string, Tensor> {
  const p = input(c.name, 'p0').clone().keep().requiresGrad_(true);
  const opt = make([p]);
  const out: Record<string, Tensor> = {};
  for (let i = 1; i <= 3; i++) {
    p.grad = input(c.name, `g${i}`).clone();
    opt.step();
    out[`p${i}`] = p.detach().clone();
  }
  return out;
}

// Each case computes the same outputs as the Python script, by name.
const compute: Record<string, (c: Case) => Record<string, Tensor>> = {
  add_alpha: (c) => ({ y: input(c.name, 'a').add(input(c.name, 'b'), 0.5) }),
  div: (c) => ({ y: input(c.name, 'a').div(input(c.name, 'b')) }),
  pow: (c) => ({ y: input(c.name, 'a').pow(input(c.name, 'b')) }),
  exp_log: (c) => {
    const a = input(c.name, 'a');
    return { exp: a.exp(), log: a.log(), sqrt: a.sqrt() };
  },
  activations: (c) => {
    const a = input(c.name, 'a');
    return {
      sigmoid: a.sigmoid(),
      tanh: a.tanh(),
      relu: a.relu(),
      gelu: a.gelu(),
      gelu_tanh: a.gelu('tanh'),
      silu: a.silu(),
    };
  },
  softmax: (c) => ({ softmax: input(c.name, 'a').softmax(1), log_softmax: input(c.name, 'a').logSoftmax(0) }),
  clamp_where: (c) => {
    const a = input(c.name, 'a'),
      b = input(c.name, 'b');
    return { clamp: a.clamp(-0.5, 0.7), where: torch.where(a.gt(b), a, b) };
  },
  reductions: (c) => {
    const m = input(c.name, 'a');
    return {
      sum: m.sum([0, 2]),
      mean: m.mean(1, true),
      amax: m.max(2),
      argmax: m.argmax(1),
      logsumexp: m.logsumexp(2),
      norm: m.norm(2, 1),
      var: m.var(1),
      std: m.std([0, 1], { correction: 0 }),
      cumsum: m.cumsum(2),
    };
  },
  topk_sort: (c) => {
    const m = input(c.name, 'a');
    const [tv, ti] = m.topk(3, 2);
    const [sv, si] = m.sort(1, true);
    return { topk_v: tv, topk_i: ti, sort_v: sv, sort_i: si };
  },
  matmul: (c) => {
    const a = input(c.name, 'a'),
      b = input(c.name, 'b');
    return { matmul: a.matmul(b), bmm: a.bmm(b), einsum: torch.einsum('bij,bjk->bik', a, b) };
  },
  interpolate: (c) => {
    const a = input(c.name, 'a');
    return {
      nearest: F.interpolate(a, [5, 3, 9]),
      tri_ac: F.interpolate(a, [5, 3, 9], 'trilinear', true),
      tri: F.interpolate(a, [5, 3, 9], 'trilinear'),
    };
  },
  pad: (c) => {
    const a = input(c.name, 'a');
    return {
      constant: F.pad(a, [1, 2, 0, 1, 2, 0], 'constant', -1),
      replicate: F.pad(a, [1, 1, 2, 0, 0, 1], 'replicate'),
      reflect: F.pad(a, [1, 1, 2, 0, 0, 1], 'reflect'),
    };
  },
  conv3d: (c) => ({
    y: F.conv3d(input(c.name, 'x'), input(c.name, 'w'), input(c.name, 'b'), { stride: [1, 2, 1], padding: 1 }),
  }),
  conv_transpose3d: (c) => ({
    y: F.convTranspose3d(input(c.name, 'x'), input(c.name, 'w'), input(c.name, 'b'), {
      stride: 2,
      padding: 1,
      outputPadding: 1,
    }),
  }),
  pool3d: (c) => {
    const x = input(c.name, 'x');
    return {
      max: F.maxPool3d(x, 2, { stride: 2, padding: 1 }),
      avg: F.avgPool3d(x, 3, { stride: 2, padding: 1 }),
      adaptive: F.adaptiveAvgPool3d(x, [2, 1, 3]),
    };
  },
  batch_norm: (c) => {
    const bn = new nn.BatchNorm3d(3);
    bn.loadStateDict(
      new Map([
        ['weight', input(c.name, 'w')],
        ['bias', input(c.name, 'b')],
      ]),
      false,
    );
    const y = bn.forward(input(c.name, 'x'));
    assert.equal(bn.getBuffer('num_batches_tracked')!.item(), 1);
    return { y, running_mean: bn.getBuffer('running_mean')!, running_var: bn.getBuffer('running_var')! };
  },
  group_norm: (c) => ({ y: F.groupNorm(input(c.name, 'x'), 3, input(c.name, 'w'), input(c.name, 'b')) }),
  layer_norm: (c) => ({ y: F.layerNorm(input(c.name, 'x'), [8], input(c.name, 'w'), input(c.name, 'b')) }),
  embedding: (c) => ({ y: F.embedding(input(c.name, 'w'), input(c.name, 'ids'), 0) }),
  losses: (c) => {
    const logits = input(c.name, 'logits'),
      target = input(c.name, 'target'),
      x = input(c.name, 'x'),
      y = input(c.name, 'y');
    return {
      ce: F.crossEntropy(logits, target),
      ce_ls: F.crossEntropy(logits, target, { labelSmoothing: 0.1 }),
      ce_none: F.crossEntropy(logits, target, { reduction: 'none' }),
      ce_probs: F.crossEntropy(logits, input(c.name, 'probs')),
      bce: F.binaryCrossEntropyWithLogits(x, y.gt(0).to('float32')),
      mse: F.mseLoss(x, y),
      l1: F.l1Loss(x, y, 'sum'),
    };
  },
  normalize: (c) => ({
    normalize: F.normalize(input(c.name, 'a'), 1),
    cos: F.cosineSimilarity(input(c.name, 'a'), input(c.name, 'b'), 1),
  }),
  indexing: (c) => {
    const a = input(c.name, 'a'),
      ix = input(c.name, 'ix'),
      src = input(c.name, 'src');
    return {
      gather: a.gather(1, ix),
      index_select: a.indexSelect(1, torch.tensor(new BigInt64Array([4n, 0n]))),
      scatter: a.scatter(1, ix, src),
      scatter_add: a.scatterAdd(1, ix, src),
      masked_fill: a.maskedFill(a.gt(0.3), -2),
      flip: a.flip([1]),
      narrow: a.narrow(1, 1, 3),
    };
  },
  linear: (c) => {
    const m = new nn.Linear(5, 3);
    m.loadStateDict(stateOf(c.name));
    return { y: m.forward(input(c.name, 'x')) };
  },
  conv3d_module: (c) => {
    const m = new nn.Conv3d(3, 4, 3, { stride: 2, padding: 1 });
    m.loadStateDict(stateOf(c.name));
    return { y: m.forward(input(c.name, 'x')) };
  },
  layer_norm_module: (c) => {
    const m = new nn.LayerNorm(8);
    m.loadStateDict(stateOf(c.name));
    return { y: m.forward(input(c.name, 'x')) };
  },
  mha: (c) => {
    const m = new nn.MultiheadAttention(8, 2, { batchFirst: true });
    m.loadStateDict(stateOf(c.name));
    m.eval();
    const kv = input(c.name, 'kv');
    const [y, w] = m.forward(input(c.name, 'q'), kv, kv, { keyPaddingMask: input(c.name, 'kpm'), needWeights: true });
    return { y, w: w! };
  },
  adamw: (c) => trajectory(c, (p) => new optim.AdamW(p, { lr: 0.01, betas: [0.9, 0.99], eps: 1e-8, weightDecay: 0.1 })),
  adam: (c) => trajectory(c, (p) => new optim.Adam(p, { lr: 0.02, weightDecay: 0.05 })),
  sgd_nesterov: (c) =>
    trajectory(c, (p) => new optim.SGD(p, { lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 0.01 })),
};

test('every fixture case has a TypeScript counterpart', () => {
  assert.deepEqual(
    meta.cases.map((c) => c.name).filter((n) => !compute[n]),
    [],
  );
  assert.ok(meta.cases.length >= 29);
});

for (const c of meta.cases) {
  test(`golden: ${c.name} equals PyTorch within 1e-5`, () => {
    torch.tidy(() => {
      const fn = compute[c.name];
      assert.ok(fn, `no computation for ${c.name}`);
      const got = fn(c);
      for (const k of c.outputs) {
        const expected = tensors.get(`${c.name}.out.${k}`)!;
        assert.ok(got[k], `${c.name}: output ${k} not computed`);
        assertClose(got[k]!, expected, { atol: 1e-5, rtol: 1e-5, what: `${c.name}.${k}` });
      }
    });
  });
}
