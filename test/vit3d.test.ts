// ViT3d: timm-named state dict loads PyTorch-made weights strictly and gives PyTorch's tokens, pooled
// vectors and gradients, at the configured size and (resampled position embeddings) a smaller one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/torch/index.js';
import { type Tensor } from '../src/torch/index.js';
import { ViT3d, type ViT3dConfig } from '../src/models/vit3d.js';
import { assertClose, fixture } from './helpers.js';

const { tensors } = torch.loadSafetensors(fixture('vit3d', 'vit3d.safetensors'));
const get = (k: string): Tensor => {
  const t = tensors.get(k);
  if (!t) throw new Error(`fixture has no '${k}'`);
  return t;
};
const weights = new Map(
  [...tensors].filter(([k]) => k.startsWith('sd.')).map(([k, t]) => [k.slice(3), t] as [string, Tensor]),
);
const withoutPosEmbed = new Map([...weights].filter(([k]) => k !== 'pos_embed'));
const tiny: ViT3dConfig = { imageSize: [16, 16, 16], patchSize: [4, 4, 4], hiddenSize: 32, depth: 2, numHeads: 4 };
const sizes = { full: [4, 4, 4], small: [2, 3, 4] } as const;

for (const kind of ['learnable', 'sincos'] as const) {
  for (const pooling of ['cls', 'mean'] as const) {
    test(`ViT3d ${kind} / ${pooling}: strict load, outputs equal PyTorch's at both input sizes`, () => {
      const m = new ViT3d({ ...tiny, posEmbed: kind, pooling }).eval();
      const state = kind === 'learnable' ? weights : withoutPosEmbed;
      assert.deepEqual([...m.stateDict().keys()].sort(), [...state.keys()].sort());
      m.loadStateDict(state);
      torch.tidy(() => {
        for (const [size, grid] of Object.entries(sizes)) {
          const { tokens, featureMap, pooled } = m.encode(get(`input.${size}`));
          const n = grid[0] * grid[1] * grid[2];
          assert.deepEqual(tokens.shape, [2, n, 32]);
          assert.deepEqual(featureMap.shape, [2, 32, ...grid]);
          assertClose(tokens, get(`${kind}.${size}.tokens`), { atol: 1e-5, rtol: 1e-5, what: `${size} tokens` });
          assertClose(featureMap.flatten(2).transpose(1, 2), get(`${kind}.${size}.tokens`), {
            atol: 1e-5,
            rtol: 1e-5,
            what: `${size} feature map`,
          });
          assertClose(pooled, get(`${kind}.${size}.pooled_${pooling}`), {
            atol: 1e-5,
            rtol: 1e-5,
            what: `${size} pooled`,
          });
          assertClose(m.forward(get(`input.${size}`)), get(`${kind}.${size}.pooled_${pooling}`), {
            atol: 1e-5,
            rtol: 1e-5,
            what: `${size} forward`,
          });
          if (kind === 'sincos')
            assertClose(m.posEmbedFor([...grid], tokens), get(`sincos.${size}.pos_embed`), {
              atol: 1e-6,
              what: `${size} sin-cos table`,
            });
        }
      });
      m.dispose();
    });
  }
}

test('ViT3d sincos: the table is not in the state dict, so a learnable checkpoint is refused', () => {
  const m = new ViT3d({ ...tiny, posEmbed: 'sincos' });
  assert.throws(() => m.loadStateDict(weights), /unexpected keys \[pos_embed\]/);
  assert.ok(!m.parameters().some((p) => p.shape.join() === '1,65,32'));
  m.dispose();
});

test("ViT3d: gradients through resampled pos_embed, cls_token and patch_embed equal PyTorch's", () => {
  const m = new ViT3d({ ...tiny, pooling: 'cls' });
  m.loadStateDict(weights);
  torch.tidy(() => {
    const { tokens, pooled } = m.encode(get('input.small'));
    tokens.mul(get('grad.probe')).sum().add(pooled.sum()).backward();
  });
  // patch_embed's gradient sums over every voxel and token: entries reach ~50, and both float32 results
  // sit ~1e-5 from a float64 reference, hence the wider atol there.
  for (const [name, atol] of [
    ['pos_embed', 1e-5],
    ['cls_token', 1e-5],
    ['patch_embed.proj.weight', 1e-4],
  ] as const) {
    const grad = m.stateDict().get(name)!.grad;
    assert.ok(grad, `${name} has a gradient`);
    assertClose(grad, get(`grad.${name}`), { atol, rtol: 1e-4, what: `grad ${name}` });
    grad.dispose();
  }
  m.dispose();
});

test('ViT3d: shapes for other channel counts, scalar patch size and anisotropic images', () => {
  torch.tidy(() => {
    const m = new ViT3d({
      inChannels: 2,
      imageSize: [8, 16, 24],
      patchSize: 8,
      hiddenSize: 12,
      depth: 1,
      numHeads: 3,
      posEmbed: 'sincos',
      pooling: 'cls',
    });
    const { tokens, featureMap, pooled } = m.encode(torch.randn([3, 2, 8, 16, 24]));
    assert.deepEqual(
      [tokens.shape, featureMap.shape, pooled.shape],
      [
        [3, 6, 12],
        [3, 12, 1, 2, 3],
        [3, 12],
      ],
    );
    assert.deepEqual(m.encode(torch.randn([1, 2, 16, 8, 8])).featureMap.shape, [1, 12, 2, 1, 1]);
    m.dispose();
  });
});

test('ViT3d init: trunc_normal(.02) Linear and pos_embed, zero Linear bias, xavier patch_embed, LayerNorm 1/0', () => {
  const m = new ViT3d(tiny);
  const sd = m.stateDict();
  const std = (k: string) => torch.tidy(() => sd.get(k)!.std().item());
  const absMax = (k: string) => torch.tidy(() => sd.get(k)!.abs().max().item());
  for (const k of ['blocks.0.attn.qkv.weight', 'blocks.1.mlp.fc1.weight', 'pos_embed'])
    assert.ok(Math.abs(std(k) - 0.02) < 0.002, `${k} std ${std(k)}`);
  for (const k of ['blocks.0.attn.qkv.bias', 'blocks.1.mlp.fc2.bias', 'norm.bias']) assert.equal(absMax(k), 0, k);
  assert.equal(
    torch.tidy(() => sd.get('blocks.0.norm1.weight')!.sub(1).abs().max().item()),
    0,
  );
  const bound = Math.sqrt(6 / (64 + 32)); // fan_in 1·4·4·4, fan_out 32 on the flattened kernel
  assert.ok(absMax('patch_embed.proj.weight') <= bound && absMax('patch_embed.proj.weight') > 0.9 * bound);
  m.dispose();
});

test('ViT3d: bad patch sizes, input sizes and head counts are clear errors', () => {
  assert.throws(
    () => new ViT3d({ ...tiny, patchSize: [4, 5, 4] }),
    /patchSize \[4, 5, 4\] must divide the imageSize \[16, 16, 16\] \(axis H: 16 % 5 ≠ 0\)/,
  );
  assert.throws(() => new ViT3d({ ...tiny, numHeads: 5 }), /hiddenSize 32 is not divisible by numHeads 5/);
  assert.throws(() => new ViT3d({ ...tiny, hiddenSize: 4, numHeads: 1, posEmbed: 'sincos' }), /hiddenSize ≥ 6/);
  const m = new ViT3d(tiny);
  torch.tidy(() => {
    assert.throws(
      () => m.encode(torch.zeros([1, 1, 16, 16, 10])),
      /must divide the input size \[16, 16, 10\] \(axis W/,
    );
    assert.throws(() => m.encode(torch.zeros([1, 2, 16, 16, 16])), /expected input \(B, 1, D, H, W\)/);
  });
  m.dispose();
});

test('ViT3d: no tensor leaks across repeated forwards and backwards', () => {
  for (const posEmbed of ['learnable', 'sincos'] as const) {
    const m = new ViT3d({ ...tiny, posEmbed });
    const before = torch.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      for (const size of ['full', 'small']) {
        torch.tidy(() =>
          m
            .encode(get(`input.${size}`))
            .pooled.sum()
            .backward(),
        );
        m.forward(get(`input.${size}`)).dispose();
      }
    }
    m.zeroGrad();
    assert.equal(torch.memory().numTensors, before, `${posEmbed}: live tensors`);
    m.dispose();
  }
});

test('ViT3d: finite-difference gradcheck (float64) at the configured and a resampled size', () => {
  torch.manualSeed(0);
  const m = new ViT3d({ imageSize: [4, 4, 4], patchSize: 2, hiddenSize: 6, depth: 1, numHeads: 2, mlpRatio: 2 }).to({
    dtype: 'float64',
  });
  const g = new torch.Generator(1);
  for (const shape of [
    [1, 1, 4, 4, 4],
    [1, 1, 2, 4, 6],
  ]) {
    const x = torch.randn(shape, { dtype: 'float64', generator: g });
    const res = torch.gradcheck((v) => m.encode(v).tokens, [x], { atol: 1e-5, rtol: 1e-4 });
    assert.ok(res.ok, `[${shape.join(', ')}]: ${res.worst} (max abs error ${res.maxAbsError})`);
    x.dispose();
  }
  m.dispose();
});

test('ViT3d clsPosEmbed false (MONAI): pos_embed covers the patches only; equal to a timm table whose CLS row is zero', () => {
  const monai = new ViT3d({ ...tiny, clsPosEmbed: false, pooling: 'cls' }).eval();
  const timm = new ViT3d({ ...tiny, pooling: 'cls' }).eval();
  const own = monai.stateDict();
  assert.deepEqual(own.get('pos_embed')!.shape, [1, 64, 32]);
  torch.tidy(() => {
    const state = new Map(
      [...own].map(([k, t]) => [k, k === 'pos_embed' ? torch.cat([torch.zeros([1, 1, 32]), t], 1) : t]),
    );
    timm.loadStateDict(state);
    for (const size of ['full', 'small'] as const) {
      const x = get(`input.${size}`);
      assertClose(monai.encode(x).pooled, timm.encode(x).pooled, { atol: 1e-6, what: `${size} pooled` });
      assertClose(monai.encode(x).tokens, timm.encode(x).tokens, { atol: 1e-6, what: `${size} tokens` });
    }
    // and not equal once the CLS row is not zero (nor constant, which every LayerNorm would remove)
    const shifted = new Map(state);
    shifted.set(
      'pos_embed',
      state
        .get('pos_embed')!
        .add(torch.cat([torch.arange(0, 32).to('float32').div(8).reshape(1, 1, 32), torch.zeros([1, 64, 32])], 1)),
    );
    timm.loadStateDict(shifted);
    const d = monai
      .encode(get('input.full'))
      .pooled.sub(timm.encode(get('input.full')).pooled)
      .abs()
      .max()
      .item();
    assert.ok(d > 1e-3, `a CLS position embedding changes the pooled CLS token (${d})`);
  });
  monai.dispose();
  timm.dispose();
});
