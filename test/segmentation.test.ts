// Segmentation: U-Net decoder over ResNet3D skips, UNETR decoder over ViT3D token maps, Dice + CE against an independent reference and finite
// differences, MONAI-style sliding-window inference, overfitting one case, frozen encoders, flat memory,
// and the evaluation harness end to end on a tiny synthetic cache (with resume).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../src/torch/index.js';
import { optim, type Tensor } from '../src/torch/index.js';
import { ResNet3d, type ResNet3dConfig } from '../src/models/resnet3d.js';
import { ViT3d } from '../src/models/vit3d.js';
import { SegmentationNet, UNetDecoder, UnetrDecoder } from '../src/models/seg-decoder.js';
import { diceCELoss, type DiceCEOptions } from '../src/objectives/segmentation.js';
import {
  importanceMap,
  scanInterval,
  slidingWindowInference,
  windowStarts,
  type Triple,
} from '../src/eval/tasks/sliding-window.js';
import { runSegmentation, segmentationStep } from '../src/eval/tasks/segmentation.js';
import { caseInput, patchBatches, type CaseData, type VolumeReader } from '../src/eval/tasks/segmentation-data.js';
import { inputTransform } from '../src/data/input-transform.js';
import { intensityOf, rangeOf } from '../src/data/views.js';
import { type CacheEntry } from '../src/data/cache.js';
import { loadPreset } from '../src/data/presets.js';
import { writeSynthDataset } from '../src/data/synth/dataset.js';
import { readSource } from '../src/data/sources.js';
import { buildCache } from '../src/data/cache.js';
import { assertClose, fixture } from './helpers.js';

// Models here are tiny: one intra-op thread is faster than two that synchronise on every small op.
torch.setNumThreads(1);
const tmp = mkdtempSync(join(tmpdir(), 't3d-seg-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const TINY: ResNet3dConfig = { depth: 10, widenFactor: 0.125 };
// Full-resolution convolutions dominate a CPU step; a strided 3³ stem makes the tests that need no accuracy cheaper.
const FAST: Partial<ResNet3dConfig> = { conv1Stride: 2, conv1Kernel: 3 };
const tinyNet = (o: { frozen?: boolean; numClasses?: number; encoder?: Partial<ResNet3dConfig> } = {}) =>
  new SegmentationNet(new ResNet3d({ ...TINY, ...o.encoder }), {
    numClasses: o.numClasses ?? 7,
    frozenEncoder: o.frozen,
  });

test('U-Net decoder: logits at the input size for cubic, non-cubic, odd, strided-stem and no-max-pool inputs; readable names', () => {
  torch.manualSeed(0);
  const cases: [Partial<ResNet3dConfig>, Triple][] = [
    [{}, [32, 32, 32]],
    [{}, [24, 40, 20]],
    [{}, [17, 23, 29]],
    [{ conv1Stride: 2 }, [32, 24, 16]],
    [{ noMaxPool: true }, [16, 16, 24]],
  ];
  for (const [enc, size] of cases) {
    const net = tinyNet({ encoder: enc });
    net.eval();
    const shape = torch.tidy(() => net.forward(torch.randn([2, 1, ...size])).shape);
    assert.deepEqual(shape, [2, 7, ...size], `${JSON.stringify(enc)} ${size.join('×')}`);
    net.dispose();
  }
  const net = tinyNet();
  const names = [...net.stateDict().keys()];
  for (const k of [
    'encoder.conv1.weight',
    'encoder.layer4.0.downsample.0.weight',
    'decoder.blocks.0.up.weight',
    'decoder.blocks.0.conv1.weight',
    'decoder.blocks.0.norm1.weight',
    'decoder.blocks.3.conv2.weight',
    'decoder.blocks.3.norm2.bias',
    'decoder.head.weight',
    'decoder.head.bias',
  ]) {
    assert.ok(names.includes(k), `${k} in ${names.filter((n) => n.startsWith('decoder.')).join(', ')}`);
  }
  assert.deepEqual((net.decoder as UNetDecoder).channels, [32, 16, 8, 8]);
  // the deepest stage is encode()'s feature map
  net.eval();
  torch.tidy(() => {
    const x = torch.randn([2, 1, 24, 24, 24]);
    const stages = (net.encoder as ResNet3d).encodeStages(x);
    assert.deepEqual(
      stages.map((s) => s.shape),
      [
        [2, 8, 24, 24, 24],
        [2, 8, 12, 12, 12],
        [2, 16, 6, 6, 6],
        [2, 32, 3, 3, 3],
        [2, 64, 2, 2, 2],
      ],
    );
    assertClose(stages[4]!, (net.encoder as ResNet3d).encode(x).featureMap, { atol: 0, rtol: 0 });
  });
  net.dispose();
});

test('UNETR decoder over ViT3D token maps: logits at the input size (isotropic and anisotropic patches), UNETR depths, names', () => {
  torch.manualSeed(1);
  const vit = (patchSize: Triple, depth = 3) =>
    new ViT3d({ imageSize: [16, 32, 32], patchSize, hiddenSize: 24, depth, numHeads: 2 });
  for (const [patch, size] of [
    [
      [8, 8, 8],
      [16, 32, 32],
    ],
    [
      [4, 8, 8],
      [8, 16, 24],
    ],
    [
      [2, 4, 4],
      [6, 8, 12],
    ],
  ] as [Triple, Triple][]) {
    const net = new SegmentationNet(vit(patch), { numClasses: 4, unetr: { featureSize: 4 } });
    net.eval();
    const shape = torch.tidy(() => net.forward(torch.randn([2, 1, ...size])).shape);
    assert.deepEqual(shape, [2, 4, ...size], `patch ${patch.join('×')}`);
    net.dispose();
  }
  const big = new UnetrDecoder({
    inChannels: 1,
    hiddenSize: 8,
    depth: 12,
    patchSize: [16, 16, 16],
    numClasses: 2,
    featureSize: 2,
  });
  assert.deepEqual(big.depths, [3, 6, 9, 12]);
  big.dispose();
  const net = new SegmentationNet(vit([8, 8, 8]), { numClasses: 4 });
  const names = [...net.stateDict().keys()];
  for (const k of [
    'encoder.blocks.0.attn.qkv.weight',
    'decoder.stem.conv1.weight',
    'decoder.skips.0.steps.1.up.weight',
    'decoder.skips.1.steps.0.norm.bias',
    'decoder.blocks.0.up.weight',
    'decoder.blocks.2.conv2.weight',
    'decoder.head.weight',
  ]) {
    assert.ok(names.includes(k), `${k} in ${names.filter((n) => n.startsWith('decoder.')).join(', ')}`);
  }
  // the last token map is the encoder's normed feature map
  net.eval();
  torch.tidy(() => {
    const x = torch.randn([2, 1, 16, 32, 32]);
    const maps = (net.encoder as ViT3d).hiddenMaps(x, [1, 3]);
    assert.deepEqual(maps[0]!.shape, [2, 24, 2, 4, 4]);
    assertClose(maps[1]!, (net.encoder as ViT3d).encode(x).featureMap, { atol: 1e-6, rtol: 1e-6 });
  });
  net.dispose();
  assert.throws(
    () => new UnetrDecoder({ inChannels: 1, hiddenSize: 8, depth: 2, patchSize: [6, 8, 8], numClasses: 2 }),
    /power of two/,
  );
});

interface LossCase {
  name: string;
  shape: number[];
  options: Record<string, number | boolean>;
  logits: number[];
  target: number[];
  total: number;
  dice: number;
  ce: number;
  grad: number[];
}

test('Dice + CE equals the plain-torch MONAI DiceCELoss reference (values and gradients)', () => {
  const { cases } = JSON.parse(readFileSync(fixture('segmentation', 'dice_ce.json'), 'utf8')) as { cases: LossCase[] };
  assert.ok(cases.length >= 5);
  for (const c of cases) {
    const opts: DiceCEOptions = {
      includeBackground: c.options.include_background as boolean | undefined,
      batch: c.options.batch as boolean | undefined,
      smoothNr: c.options.smooth_nr as number | undefined,
      smoothDr: c.options.smooth_dr as number | undefined,
      lambdaDice: c.options.lambda_dice as number | undefined,
      lambdaCe: c.options.lambda_ce as number | undefined,
    };
    torch.tidy(() => {
      const logits = torch.tensor(Float64Array.from(c.logits), c.shape).requiresGrad_(true);
      const target = torch.tensor(BigInt64Array.from(c.target, BigInt), [c.shape[0]!, ...c.shape.slice(2)]);
      const r = diceCELoss(logits, target, opts);
      assert.ok(Math.abs(r.total.item() - c.total) < 1e-10, `${c.name}: total ${r.total.item()} vs ${c.total}`);
      assert.ok(Math.abs(r.dice.item() - c.dice) < 1e-10, `${c.name}: dice ${r.dice.item()} vs ${c.dice}`);
      assert.ok(Math.abs(r.ce.item() - c.ce) < 1e-10, `${c.name}: ce ${r.ce.item()} vs ${c.ce}`);
      r.total.backward();
      assertClose(logits.grad!, c.grad, { atol: 1e-12, rtol: 1e-9, what: `${c.name}: gradient` });
    });
  }
});

test('Dice + CE gradients match finite differences (float64), with and without background and batch pooling', () => {
  const g = new torch.Generator(3);
  const logits = torch.randn([2, 3, 2, 2, 2], { dtype: 'float64', generator: g }).keep();
  const target = torch.randint(0, 3, [2, 2, 2, 2], { generator: g }).keep();
  for (const o of [{}, { includeBackground: false }, { batch: true, lambdaDice: 0.5 }] as DiceCEOptions[]) {
    const res = torch.gradcheck((l) => diceCELoss(l, target, o).total, [logits], { atol: 1e-7, rtol: 1e-5 });
    assert.ok(res.ok, `${JSON.stringify(o)}: ${res.worst}`);
  }
  torch.dispose([logits, target]);
  assert.throws(
    () => torch.tidy(() => diceCELoss(torch.randn([1, 3, 4, 4, 4]), torch.zeros([1, 4, 4, 3], { dtype: 'int64' }))),
    /target must be \(B, \.\.\.spatial\)/,
  );
});

test('sliding-window: MONAI window starts cover every voxel and stay inside; importance maps', () => {
  assert.deepEqual(scanInterval([10, 11, 8], [4, 4, 8], 0.25), [3, 3, 8]);
  assert.deepEqual(
    windowStarts([10, 11, 8], [4, 4, 8], [3, 3, 8]).map((s) => s.join()),
    [0, 3, 6].flatMap((a) => [0, 3, 6, 7].map((b) => `${a},${b},0`)),
  );
  for (const [size, roi, overlap] of [
    [[13, 17, 9], [8, 5, 9], 0.25],
    [[40, 33, 21], [16, 16, 16], 0.5],
    [[7, 7, 7], [3, 2, 5], 0],
    [[9, 12, 30], [4, 4, 4], 0.9],
  ] as [Triple, Triple, number][]) {
    const cover = new Uint16Array(size[0] * size[1] * size[2]);
    for (const s of windowStarts(size, roi, scanInterval(size, roi, overlap))) {
      s.forEach((v, a) => assert.ok(v >= 0 && v + roi[a]! <= size[a]!, `window ${s} of ${roi} inside ${size}`));
      for (let z = s[0]; z < s[0] + roi[0]; z++)
        for (let y = s[1]; y < s[1] + roi[1]; y++)
          for (let x = s[2]; x < s[2] + roi[2]; x++) cover[(z * size[1] + y) * size[2] + x]! += 1;
    }
    assert.ok(
      cover.every((c) => c > 0),
      `every voxel of ${size} covered by ${roi} windows at overlap ${overlap}`,
    );
  }
  torch.tidy(() => {
    const gmap = importanceMap([9, 8, 5], 'gaussian', 0.125).toArray();
    assert.equal(Math.max(...gmap.slice(0)), gmap[(4 * 8 + 3) * 5 + 2]); // the centre (odd axes) carries the peak
    assert.ok(Math.min(...gmap) >= 1e-3);
    // separable exp(-x²/2σ²), x from the window centre, σ = 0.125 · size
    const e = (x: number, n: number) => Math.exp(-(x * x) / (2 * (0.125 * n) ** 2));
    assert.ok(Math.abs(gmap[(4 * 8 + 3) * 5 + 2]! - e(0, 9) * e(-0.5, 8) * e(0, 5)) < 1e-6);
    assert.ok(Math.abs(gmap[(0 * 8 + 0) * 5 + 0]! - Math.max(e(-4, 9) * e(-3.5, 8) * e(-2, 5), 1e-3)) < 1e-6);
    assert.ok(
      importanceMap([3, 4, 5])
        .toArray()
        .every((v) => v === 1),
    );
  });
});

test('sliding-window output equals the full-volume output of a pointwise model (both blends, batched windows, volumes smaller than the roi)', () => {
  const pointwise = (w: Tensor) => torch.cat([w.mul(2).add(1), w.sin(), w.pow(2)], 1);
  const cases: { size: number[]; roi: Triple; overlap: number; sw: number; mode: 'constant' | 'gaussian' }[] = [
    { size: [2, 1, 13, 17, 11], roi: [8, 8, 8], overlap: 0.25, sw: 3, mode: 'constant' },
    { size: [2, 1, 13, 17, 11], roi: [8, 6, 5], overlap: 0.5, sw: 4, mode: 'gaussian' },
    { size: [1, 2, 20, 9, 16], roi: [16, 9, 16], overlap: 0.25, sw: 1, mode: 'gaussian' },
    { size: [2, 1, 5, 6, 7], roi: [8, 8, 8], overlap: 0.25, sw: 2, mode: 'gaussian' },
    { size: [1, 1, 5, 12, 3], roi: [4, 8, 6], overlap: 0.25, sw: 2, mode: 'constant' },
  ];
  for (const c of cases) {
    torch.tidy(() => {
      const x = torch.randn(c.size);
      const seen: number[][] = [];
      const out = slidingWindowInference(
        x,
        (w) => {
          seen.push(w.shape);
          return pointwise(w);
        },
        { roiSize: c.roi, overlap: c.overlap, mode: c.mode, swBatchSize: c.sw, padValue: -1 },
      );
      assertClose(out, pointwise(x), { atol: 1e-5, rtol: 1e-5, what: JSON.stringify(c) });
      for (const s of seen) assert.deepEqual(s.slice(1), [c.size[1], ...c.roi]);
      assert.ok(seen.every((s) => s[0]! <= c.sw));
    });
  }
  // the padding reaches the predictor when the volume is smaller than the roi
  torch.tidy(() => {
    let minSeen = Infinity;
    slidingWindowInference(
      torch.zeros([1, 1, 3, 3, 3]),
      (w) => {
        minSeen = w.min().item();
        return w;
      },
      { roiSize: [4, 4, 4], padValue: -7 },
    );
    assert.equal(minSeen, -7);
  });
  assert.throws(
    () =>
      torch.tidy(() =>
        slidingWindowInference(torch.zeros([1, 1, 8, 8, 8]), (w) => w.narrow(2, 0, 2), { roiSize: [4, 4, 4] }),
      ),
    /must return \(n, K, 4, 4, 4\)/,
  );
});

/** A 32³ toy case: dark noisy background and a bright cube (class 1), as a batch of two copies. */
function toyCase(): { image: Tensor; mask: Tensor } {
  return torch.tidy(() => {
    const n = 32,
      img = new Float32Array(n ** 3),
      msk = new BigInt64Array(n ** 3);
    const noise = torch
      .randn([n ** 3], { generator: new torch.Generator(7) })
      .mul(0.05)
      .toTypedArray() as Float32Array;
    for (let z = 0; z < n; z++)
      for (let y = 0; y < n; y++)
        for (let x = 0; x < n; x++) {
          const i = (z * n + y) * n + x;
          const cube = z >= 8 && z < 20 && y >= 10 && y < 22 && x >= 12 && x < 24;
          img[i] = (cube ? 1 : -0.8) + noise[i]!;
          msk[i] = cube ? 1n : 0n;
        }
    const image = torch.tensor(img, [1, 1, n, n, n]).expand(2, 1, n, n, n).contiguous();
    const mask = torch.tensor(msk, [1, n, n, n]).expand(2, n, n, n).contiguous();
    return { image, mask };
  });
}

function softDice(net: SegmentationNet, image: Tensor, mask: Tensor, cls: number): number {
  return torch.tidy(() =>
    torch.noGrad(() => {
      const pred = net.forward(image).argmax(1).eq(cls).to('float32');
      const truth = mask.eq(cls).to('float32');
      return pred.mul(truth).sum().mul(2).div(pred.sum().add(truth.sum())).item();
    }),
  );
}

test('a tiny model overfits one toy case (Dice > 0.9 within a few dozen steps)', () => {
  torch.manualSeed(11);
  const net = tinyNet({ numClasses: 2, encoder: { norm: 'instance' } });
  const opt = new optim.AdamW(net.parameters(), { lr: 1e-2, weightDecay: 0 });
  const { image, mask } = toyCase();
  image.keep();
  mask.keep();
  const losses: number[] = [];
  let dice = 0;
  for (let step = 0; step < 40 && dice <= 0.9; step++) {
    losses.push(segmentationStep(net, opt, image, mask));
    if (step >= 14 && step % 5 === 4) dice = softDice(net, image, mask, 1);
  }
  assert.ok(
    dice > 0.9,
    `Dice ${dice.toFixed(3)} after ${losses.length} steps (loss ${losses[0]!.toFixed(3)} → ${losses.at(-1)!.toFixed(3)})`,
  );
  assert.ok(losses.at(-1)! < losses[0]!);
  torch.dispose([image, mask]);
  opt.dispose();
  net.dispose();
});

test('frozen mode: encoder weights and BatchNorm statistics unchanged, decoder trains; live tensors flat over steps', () => {
  torch.manualSeed(12);
  const { image, mask } = toyCase();
  // two different 16³ crops, so that batch statistics differ between the cases
  const crop = (t: Tensor, first: number, at: number) =>
    t
      .narrow(first, at, 16)
      .narrow(first + 1, at, 16)
      .narrow(first + 2, at, 16);
  const x = torch
    .tidy(() => torch.cat([crop(image.narrow(0, 0, 1), 2, 4), crop(image.narrow(0, 1, 1), 2, 12)], 0))
    .keep();
  const y = torch
    .tidy(() => torch.cat([crop(mask.narrow(0, 0, 1), 1, 4), crop(mask.narrow(0, 1, 1), 1, 12)], 0))
    .keep();
  torch.dispose([image, mask]);
  for (const frozen of [true, false]) {
    const net = tinyNet({ frozen, numClasses: 2, encoder: FAST });
    net.train();
    assert.equal(net.encoder.training, !frozen);
    const params = net.trainableParameters();
    assert.equal(params.encoder.length === 0, frozen);
    const opt = new optim.AdamW([
      { params: params.decoder, lr: 1e-2 },
      ...(params.encoder.length ? [{ params: params.encoder, lr: 1e-3 }] : []),
    ]);
    const before = new Map([...net.stateDict()].map(([k, t]) => [k, t.clone().keep()]));
    const counts: number[] = [];
    for (let step = 0; step < 5; step++) {
      segmentationStep(net, opt, x, y);
      counts.push(torch.memory().numTensors);
    }
    assert.deepEqual(
      counts.slice(1),
      Array(4).fill(counts[1]),
      `live tensors per step (${frozen ? 'frozen' : 'finetune'}): ${counts.join(', ')}`,
    );
    const changed = new Set(
      [...net.stateDict()]
        .filter(([k, t]) => torch.tidy(() => t.to('float64').sub(before.get(k)!.to('float64')).abs().max().item()) > 0)
        .map(([k]) => k),
    );
    const encoderKeys = [...net.encoder.stateDict().keys()].map((k) => `encoder.${k}`);
    const decoderConvs = [...net.decoder.stateDict().keys()]
      .filter((k) => /conv\d\.weight|up\.weight|head\.weight/.test(k))
      .map((k) => `decoder.${k}`);
    for (const k of decoderConvs) assert.ok(changed.has(k), `${k} must train`);
    if (frozen) {
      assert.deepEqual(
        encoderKeys.filter((k) => changed.has(k)),
        [],
        'frozen encoder state (weights and BatchNorm statistics) must not change',
      );
      for (const p of net.encoder.parameters()) assert.equal(p.grad, undefined);
    } else {
      const moved = encoderKeys.filter((k) => changed.has(k)).length;
      assert.ok(
        moved > encoderKeys.length / 2,
        `fine-tuned encoder: only ${moved}/${encoderKeys.length} tensors changed`,
      );
    }
    torch.dispose([...before.values()]);
    opt.dispose();
    net.dispose();
  }
  torch.dispose([x, y]);
});

test('runSegmentation end to end on a tiny synthetic cache: metrics, overlays, resume; ViT3D through UNETR', async () => {
  const preset = loadPreset(fixture('pretrain', 'tiny-preset.json'));
  const synth = join(tmp, 'synth'),
    cache = join(tmp, 'cache');
  await writeSynthDataset({ out: synth, count: 5, seed: 4, validFraction: 0.4, preset, workers: 1 });
  const built = await buildCache(readSource(synth), preset, cache);
  assert.equal(built.quarantined.length, 0);
  const out = join(tmp, 'seg');
  const messages: string[] = [];
  const base = {
    cacheDir: cache,
    maskFraction: 1,
    mode: 'finetune' as const,
    batchSize: 2,
    lr: 3e-3,
    patch: [16, 16, 16] as Triple,
    overlap: 0.25,
    seed: 1,
    outDir: out,
    overlays: 1,
    onProgress: (m: string) => messages.push(m),
  };
  const make = () => new ResNet3d({ ...TINY, ...FAST, norm: 'instance' });
  const live = torch.memory().numTensors;
  const first = await runSegmentation(make, { ...base, epochs: 1 });
  assert.equal(torch.memory().numTensors, live, 'runSegmentation frees every tensor it made');
  const r = await runSegmentation(make, { ...base, epochs: 2 });
  assert.ok(
    messages.some((m) => m.startsWith('resumed from')),
    messages.join('\n'),
  );
  assert.equal(r.trainLoss.length, 2);
  assert.equal(r.trainLoss[0], first.trainLoss[0]);
  assert.deepEqual(r.classes, ['lung_right', 'lung_left', 'heart', 'aorta', 'spine', 'airway']);
  assert.equal(r.perCase.length, 2);
  for (const p of r.perCase) assert.equal(p.dice.length, 6);
  assert.ok(r.dice.mean >= 0 && r.dice.mean <= 1);
  assert.ok(Object.values(r.hd95.infinite).every((n) => Number.isInteger(n) && n >= 0));
  assert.ok(r.volumesPerSecond > 0);
  assert.equal(r.overlays.length, 3);
  for (const p of r.overlays) assert.ok(existsSync(p) && readFileSync(p).subarray(1, 4).toString() === 'PNG', p);
  assert.ok(existsSync(join(out, 'results.json')) && existsSync(join(out, 'mask-subset.json')));
  await assert.rejects(runSegmentation(make, { ...base, epochs: 2, lr: 1e-3 }), /checkpoint made with other settings/);
  // ViT3D through UNETR, frozen: the sliding windows (16³) are padded up from the 16-slice volumes
  const makeVit = () => new ViT3d({ imageSize: [16, 32, 32], patchSize: 8, hiddenSize: 12, depth: 2, numHeads: 2 });
  const v = await runSegmentation(makeVit, {
    ...base,
    mode: 'frozen',
    epochs: 1,
    outDir: join(tmp, 'vit'),
    overlays: 0,
    limitTest: 1,
  });
  assert.equal(v.perCase.length, 1);
  assert.ok(Number.isFinite(v.trainLoss[0]));
  await assert.rejects(
    runSegmentation(makeVit, { ...base, epochs: 1, patch: [12, 16, 16], outDir: join(tmp, 'vit2') }),
    /must be divisible by the ViT's patch size/,
  );
});

test("segmentation's patches and sliding-window volumes are the model input the preset defines (scale, window, min–max)", () => {
  const base = loadPreset(fixture('pretrain', 'tiny-preset.json'));
  const shape = base.shape;
  const n = shape[0] * shape[1] * shape[2];
  // a cache grid of clipped HU in [−900, 599], inside the window: min–max, window and scale all differ
  const image = Int16Array.from({ length: n }, (_, i) => -900 + ((i * 7919) % 1500));
  const c: CaseData = { image, mask: new Uint8Array(n), shape, range: rangeOf(image) };
  const reader = { read: () => c } as unknown as VolumeReader;
  const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
  for (const [intensity, lo, span] of [
    ['window', -1000, 2000],
    ['minmax', -900, 1499],
    ['scale', 0, base.scale],
  ] as const) {
    const preset = { ...base, intensity };
    const expected = inputTransform(preset).toInput(image);
    const input = { scale: preset.scale, padValue: preset.padValue, intensity: intensityOf(preset) };
    const { volume, padValue } = caseInput(c, input);
    assert.ok(maxDiff(volume, expected) < 1e-6, `${intensity}: the sliding-window volume`);
    const o = { seed: 1, batchSize: 1, patch: shape, perVolume: 1, ...input };
    const [batch] = [...patchBatches(reader, [{} as CacheEntry], o, 0)];
    assert.ok(maxDiff(batch!.image, expected) < 1e-6, `${intensity}: a training patch of the whole volume`);
    assert.ok(Math.abs(padValue - (base.padValue * base.scale - lo) / span) < 1e-6, `${intensity}: pad ${padValue}`);
    if (intensity !== 'scale') assert.ok(Math.min(...volume) >= 0 && Math.max(...volume) <= 1, intensity);
  }
});
