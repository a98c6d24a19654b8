// The optional restoration objective: patch masking, the FiLM-conditioned decoder's shapes and names, and
// that a fixed masked batch is learned.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/torch/index.js';
import { optim } from '../src/torch/index.js';
import { maskPatches, restorationLoss } from '../src/objectives/restoration.js';
import { RestorationDecoder } from '../src/models/restoration.js';
import { ResNet3d } from '../src/models/resnet3d.js';
import { ViT3d } from '../src/models/vit3d.js';

test('maskPatches masks exactly round(ratio · n) whole patches per volume, also when patches overhang the edge', () => {
  torch.manualSeed(3);
  torch.tidy(() => {
    const x = torch.randn([3, 1, 5, 6, 7]);
    const { masked, mask } = maskPatches(x, 0.4, 4, -2);
    assert.deepEqual(mask.shape, [3, 1, 5, 6, 7]);
    const m = mask.toArray() as number[];
    const xs = x.toArray() as number[];
    const ms = masked.toArray() as number[];
    for (let b = 0; b < 3; b++) {
      const seen = new Map<string, number>();
      for (let d = 0; d < 5; d++)
        for (let h = 0; h < 6; h++)
          for (let w = 0; w < 7; w++) {
            const i = ((b * 5 + d) * 6 + h) * 7 + w;
            const key = `${d >> 2},${h >> 2},${w >> 2}`;
            if (seen.has(key)) assert.equal(m[i], seen.get(key), `patch ${key} is not uniformly masked`);
            seen.set(key, m[i]!);
            assert.equal(ms[i], m[i] ? -2 : xs[i]);
          }
      // 2 × 2 × 2 patches; round(0.4 · 8) = 3 masked
      assert.equal([...seen.values()].filter((v) => v === 1).length, 3);
    }
  });
  assert.throws(() => maskPatches(torch.zeros([1, 1, 4, 4, 4]), 1, 2), /ratio must be in \(0, 1\)/);
  assert.throws(() => maskPatches(torch.zeros([1, 4, 4, 4]), 0.5, 2), /expected \(B, C, D, H, W\)/);
});

test('restoration loss is the mean absolute error over masked voxels only', () => {
  torch.tidy(() => {
    const pred = torch.tensor([1, 2, 3, 4], [1, 1, 1, 1, 4]);
    const target = torch.tensor([0, 0, 0, 10], [1, 1, 1, 1, 4]);
    const mask = torch.tensor([1, 0, 1, 0], [1, 1, 1, 1, 4]);
    assert.equal(restorationLoss(pred, target, mask).item(), 2);
  });
});

test('the decoder restores the input size from ResNet3D and ViT3D feature maps, with PyTorch-style names', () => {
  torch.manualSeed(0);
  const resnet = new ResNet3d({ depth: 10, widenFactor: 0.125, conv1Kernel: 3, conv1Stride: 2 });
  assert.equal(resnet.outputStride, 32);
  const dec = new RestorationDecoder({
    inChannels: resnet.outChannels,
    outputStride: resnet.outputStride,
    textDim: 16,
  });
  const names = [...dec.namedParameters()].map(([n]) => n);
  for (const n of ['up.0.weight', 'up.4.bias', 'norm.0.weight', 'film.0.weight', 'film.4.bias', 'head.weight'])
    assert.ok(names.includes(n), `${n} in ${names.join(', ')}`);
  torch.tidy(() => {
    const out = dec.forward(
      resnet.encode(torch.randn([2, 1, 64, 96, 96])).featureMap,
      [64, 96, 96],
      torch.randn([2, 16]),
    );
    assert.deepEqual(out.shape, [2, 1, 64, 96, 96]);
    // FiLM starts as the identity: the report vector changes nothing until it is learned
    const fm = resnet.encode(torch.randn([2, 1, 40, 50, 60])).featureMap;
    const a = dec.forward(fm, [40, 50, 60], torch.randn([2, 16]));
    const b = dec.forward(fm, [40, 50, 60], torch.randn([2, 16]));
    assert.deepEqual(a.shape, [2, 1, 40, 50, 60]);
    assert.equal(a.sub(b).abs().max().item(), 0);
  });
  const vit = new ViT3d({ imageSize: [16, 32, 32], patchSize: [4, 8, 8], hiddenSize: 24, depth: 1, numHeads: 2 });
  const vdec = new RestorationDecoder({ inChannels: vit.outChannels, outputStride: vit.outputStride, textDim: 0 });
  assert.equal(vdec.film, undefined);
  torch.tidy(() =>
    assert.deepEqual(
      vdec.forward(vit.encode(torch.randn([1, 1, 16, 32, 32])).featureMap, [16, 32, 32]).shape,
      [1, 1, 16, 32, 32],
    ),
  );
  assert.throws(
    () => vdec.forward(torch.zeros([1, 24, 4, 4, 4]), [16, 32, 32], torch.zeros([1, 4])),
    /built without text conditioning/,
  );
  for (const m of [resnet, dec, vit, vdec]) m.dispose();
});

test('a fixed masked batch is learned: restoration loss falls by more than half in 60 steps', () => {
  torch.manualSeed(1);
  const enc = new ResNet3d({ depth: 10, widenFactor: 0.0625, conv1Kernel: 3, conv1Stride: 1, noMaxPool: true });
  const dec = new RestorationDecoder({ inChannels: enc.outChannels, outputStride: enc.outputStride, textDim: 0 });
  const params = [...enc.parameters(), ...dec.parameters()];
  const opt = new optim.Adam(params, { lr: 3e-3 });
  // smooth targets (a blurred blob per volume) that the unmasked context predicts
  const x = torch
    .tidy(() => {
      const grid = torch.arange(16).sub(7.5).div(4).pow(2);
      const r = grid
        .reshape(16, 1, 1)
        .add(grid.reshape(1, 16, 1))
        .add(grid.reshape(1, 1, 16));
      return torch.stack([r.neg().exp(), r.mul(0.5).neg().exp()]).unsqueeze(1);
    })
    .keep();
  const { masked, mask } = maskPatches(x, 0.4, 4);
  masked.keep();
  mask.keep();
  const losses: number[] = [];
  for (let i = 0; i < 60; i++) {
    losses.push(
      torch.tidy(() => {
        const l = restorationLoss(dec.forward(enc.encode(masked).featureMap, [16, 16, 16]), x, mask);
        l.backward();
        return l.item();
      }),
    );
    opt.step();
    opt.zeroGrad();
  }
  assert.ok(losses[59]! < 0.5 * losses[0]!, `loss ${losses[0]} → ${losses[59]}`);
  torch.dispose([x, masked, mask]);
  opt.dispose();
  enc.dispose();
  dec.dispose();
});
