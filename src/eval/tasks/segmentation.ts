// Segmentation evaluation of a vision encoder (frozen or fine-tuned, pre-trained or random init): a decoder
// (U-Net over ResNet3D stages, UNETR over ViT3D token maps) is trained with Dice + CE on random patches of the
// cached training volumes whose organ masks are used (a seeded `maskFraction` subset); the test volumes are
// then segmented whole by sliding-window inference and scored per foreground class with Dice and HD95 (mm,
// from the cache's spacing).
// Conventions:
// - classes: label value k is classes[k] of the full list (background first); results cover the foreground
//   classes only, in label order, and per-case arrays follow `classes` of the result;
// - metrics come from seg-metrics.ts (MONAI's definitions): Dice is NaN when the truth lacks the class, HD95 is
//   NaN when both masks lack it and Infinity when exactly one does (a missed structure, or one predicted where
//   the truth has none). Averages skip NaN; Infinity is left out of the HD95 means and counted per class in
//   hd95.infinite. The overall means average the per-class means (classes that are all NaN left out);
// - frozen: the encoder runs in eval mode outside autograd and only the decoder trains; finetune: both train,
//   the encoder at lr / 10;
// - training patches are uniform random crops (no flips: the classes name body sides), image = HU / preset
//   scale as in the pre-training views; inference uses the training patch as the window (Gaussian blending);
// - with outDir: the mask subset (mask-subset.json), a checkpoint after every epoch (checkpoints/epoch-NNNN,
//   written atomically; only the newest is kept), overlays and results.json; a rerun resumes from the newest
//   checkpoint and refuses one made with other settings.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { latestEpochDir, readEpochState, saveEpochDir } from '../../train/epoch-checkpoint.js';
import * as torch from '../../torch/index.js';
import { optim, type Tensor } from '../../torch/index.js';
import { readCacheIndex, type CacheEntry } from '../../data/cache.js';
import { type Preset } from '../../data/presets.js';
import { MASK_CLASSES } from '../../data/synth/anatomy.js';
import { encodePng } from '../../io/png.js';
import { type VisionEncoder } from '../../models/t3d.js';
import { SegmentationNet, isSkipEncoder, isTokenEncoder } from '../../models/seg-decoder.js';
import { diceCELoss, type DiceCEOptions } from '../../objectives/segmentation.js';
import { Rng } from '../../util/rng.js';
import { readCachedTensors } from '../../data/cache-read.js';
import { readJsonFile } from '../../util/files.js';
import { type BlendMode, slidingWindowInference } from './sliding-window.js';
import { diceScore, hausdorff95 } from '../metrics/segmentation.js';

type Triple = [number, number, number];

export interface SegmentationOptions {
  cacheDir: string;
  /** default 'train' */
  trainSplit?: string;
  /** default 'valid' */
  testSplit?: string;
  /** share of the training volumes (with masks) whose masks are used, e.g. 0.1 or 1: a seeded subset, saved in outDir */
  maskFraction: number;
  mode: 'frozen' | 'finetune';
  epochs: number;
  batchSize: number;
  lr: number;
  /** training crop (D, H, W); inference uses sliding windows of this size */
  patch: Triple;
  /** sliding-window overlap in [0, 1) */
  overlap: number;
  seed: number;
  /** evaluate only the first N test volumes */
  limitTest?: number;
  device?: string;
  /** checkpoint per epoch (resume), mask subset, overlays, results.json */
  outDir?: string;
  onProgress?: (msg: string) => void;
  /** test cases rendered as PNG overlays (axial / coronal / sagittal mid slices, truth | prediction), in outDir */
  overlays?: number;
  /** class names by label value, background first (default: the synthetic generator's organ classes) */
  classes?: string[];
  /** random patches drawn from each training volume per epoch (default 1) */
  patchesPerVolume?: number;
  /** AdamW weight decay (default 1e-5) */
  weightDecay?: number;
  /** Dice + CE settings (default MONAI's DiceCELoss defaults) */
  loss?: DiceCEOptions;
  /** sliding-window blending (default 'gaussian') and windows per forward pass (default 2) */
  blend?: BlendMode;
  swBatchSize?: number;
}

export interface SegmentationResult {
  /** the foreground classes scored, in label order (label = index + 1) */
  classes: string[];
  dice: { mean: number; perClass: Record<string, number> };
  /** mm; means over finite values; `infinite` counts, per class, the cases where exactly one of prediction and truth was empty */
  hd95: { mean: number; perClass: Record<string, number>; infinite: Record<string, number> };
  perCase: { name: string; dice: number[]; hd95: number[] }[];
  /** mean training loss of each epoch */
  trainLoss: number[];
  /** PNG paths */
  overlays: string[];
  /** sliding-window inference throughput (test volumes per second, host copies included) */
  volumesPerSecond: number;
}

interface CaseData {
  image: Int16Array;
  mask: Uint8Array;
  shape: Triple;
}

/** Reads cached image + mask pairs, keeping decoded volumes in memory up to a byte budget. */
class VolumeReader {
  private readonly kept = new Map<string, CaseData>();
  private bytes = 0;
  constructor(
    private readonly cacheDir: string,
    private readonly budget = 1 << 30,
  ) {}
  read(e: CacheEntry): CaseData {
    const hit = this.kept.get(e.name);
    if (hit) return hit;
    const file = join(this.cacheDir, e.file);
    const t = readCachedTensors(file, e.sha256, ['image', 'mask']);
    const img = t.get('image')!,
      msk = t.get('mask')!;
    if (img.dtype !== 'I16' || msk.dtype !== 'U8' || img.shape.length !== 3 || img.shape.join() !== msk.shape.join()) {
      throw new Error(
        `${file}: expected an int16 image and a uint8 mask of one (D, H, W) shape, found ${img.dtype} [${img.shape.join(', ')}] and ${msk.dtype} [${msk.shape.join(', ')}]`,
      );
    }
    const c: CaseData = {
      image: new Int16Array(img.bytes.buffer, img.bytes.byteOffset, img.bytes.byteLength / 2),
      mask: msk.bytes,
      shape: img.shape as Triple,
    };
    const size = img.bytes.byteLength + msk.bytes.byteLength;
    if (this.bytes + size <= this.budget) {
      this.kept.set(e.name, c);
      this.bytes += size;
    }
    return c;
  }
}

/** Crops (or pads: image with `pad`, mask with background) a patch starting at `start` (may be negative). */
function cropPatch(
  c: CaseData,
  start: Triple,
  patch: Triple,
  scale: number,
  pad: number,
  image: Float32Array,
  mask: Uint8Array,
  offset: number,
): void {
  const [D, H, W] = c.shape;
  const [pd, ph, pw] = patch;
  let o = offset;
  for (let z = 0; z < pd; z++) {
    const sz = start[0] + z;
    for (let y = 0; y < ph; y++) {
      const sy = start[1] + y;
      for (let x = 0; x < pw; x++, o++) {
        const sx = start[2] + x;
        if (sz < 0 || sy < 0 || sx < 0 || sz >= D || sy >= H || sx >= W) {
          image[o] = pad;
          mask[o] = 0;
          continue;
        }
        const i = (sz * H + sy) * W + sx;
        image[o] = c.image[i]! / scale;
        mask[o] = c.mask[i]!;
      }
    }
  }
}

/** A random crop corner; an axis shorter than the patch is centred (padded on both sides). */
function randomStart(shape: Triple, patch: Triple, rng: Rng): Triple {
  return shape.map((n, a) => (n >= patch[a]! ? rng.int(0, n - patch[a]!) : -Math.floor((patch[a]! - n) / 2))) as Triple;
}

/** One optimisation step on a batch: image (B, 1, ...) float, mask (B, ...) int64. Returns the loss. */
export function segmentationStep(
  net: SegmentationNet,
  opt: optim.Optimizer<object>,
  image: Tensor,
  mask: Tensor,
  loss: DiceCEOptions = {},
): number {
  const value = torch.tidy(() => {
    const { total } = diceCELoss(net.forward(image), mask, loss);
    const v = total.item();
    if (Number.isFinite(v)) total.backward();
    return v;
  });
  if (Number.isFinite(value)) opt.step();
  opt.zeroGrad();
  return value;
}

/** Class-index prediction (D, H, W) of one volume (HU / scale) by sliding-window inference. */
export function predictVolume(
  net: SegmentationNet,
  volume: Float32Array,
  shape: Triple,
  o: { roi: Triple; overlap: number; blend?: BlendMode; swBatchSize?: number; padValue?: number; device?: string },
): Uint8Array {
  return torch.tidy(() => {
    let x = torch.tensor(volume, [1, 1, ...shape]);
    if (o.device && o.device !== 'cpu') x = x.to({ device: o.device });
    const logits = slidingWindowInference(x, (w) => net.forward(w), {
      roiSize: o.roi,
      overlap: o.overlap,
      mode: o.blend ?? 'gaussian',
      swBatchSize: o.swBatchSize ?? 2,
      padValue: o.padValue ?? 0,
    });
    return logits.argmax(1).squeeze(0).to({ dtype: 'uint8', device: 'cpu' }).toTypedArray() as Uint8Array;
  });
}

const finiteMean = (xs: number[]): number => {
  const ok = xs.filter(Number.isFinite);
  return ok.length ? ok.reduce((a, b) => a + b, 0) / ok.length : NaN;
};

/** Seeded subset of the training volumes whose masks are used; fixed in outDir/mask-subset.json. */
function maskSubset(train: CacheEntry[], o: SegmentationOptions): CacheEntry[] {
  const n = Math.max(1, Math.round(o.maskFraction * train.length));
  const order = train.map((e) => e.name).sort();
  new Rng(o.seed, 0x5e9).shuffle(order);
  const names = order.slice(0, n).sort();
  if (o.outDir) {
    const path = join(o.outDir, 'mask-subset.json');
    if (existsSync(path)) {
      const saved = readJsonFile<{ names: string[] }>(path);
      if (saved.names.join('\n') !== names.join('\n')) {
        throw new Error(
          `${path}: the saved mask subset differs from the one maskFraction ${o.maskFraction} and seed ${o.seed} give for this cache; use another outDir`,
        );
      }
    } else {
      writeFileSync(
        path,
        JSON.stringify({ maskFraction: o.maskFraction, seed: o.seed, of: train.length, names }, null, 2) + '\n',
      );
    }
  }
  const byName = new Map(train.map((e) => [e.name, e]));
  return names.map((nm) => byName.get(nm)!);
}

interface SegState {
  epoch: number;
  trainLoss: number[];
  fingerprint: string;
}
function saveEpoch(dir: string, net: SegmentationNet, opt: optim.Optimizer<object>, state: SegState): void {
  saveEpochDir(dir, state.epoch, state, (tmp) => {
    torch.saveModule(net, join(tmp, 'model.safetensors'));
    torch.saveOptimizer(opt, join(tmp, 'optimizer.safetensors'));
  });
}

const PALETTE: Triple[] = [
  [0, 0, 0],
  [230, 60, 60],
  [60, 200, 80],
  [70, 120, 255],
  [250, 210, 40],
  [220, 70, 220],
  [40, 220, 230],
  [255, 140, 30],
  [150, 100, 255],
];

/**
 * Truth | prediction mid slices of one case as three PNGs (image in gray, classes in colour), resampled
 * (nearest) to square pixels from the voxel spacing, the longer side about 256 px.
 */
function writeOverlays(dir: string, name: string, c: CaseData, pred: Uint8Array, spacing: Triple): string[] {
  const [D, H, W] = c.shape;
  const [sd, sh, sw] = spacing;
  const lo = -1000,
    hi = 400; // HU window (the cache stores HU) that shows lungs and soft tissue together
  const at = (z: number, y: number, x: number) => (z * H + y) * W + x;
  // rows × cols (with their spacings) → voxel index; D is flipped so that superior is up (LPS: +z is superior)
  const planes: [string, number, number, number, number, (r: number, q: number) => number][] = [
    ['axial', H, W, sh, sw, (r, q) => at(Math.floor(D / 2), r, q)],
    ['coronal', D, W, sd, sw, (r, q) => at(D - 1 - r, Math.floor(H / 2), q)],
    ['sagittal', D, H, sd, sh, (r, q) => at(D - 1 - r, q, Math.floor(W / 2))],
  ];
  const out: string[] = [];
  for (const [plane, rows, cols, sr, sc, idx] of planes) {
    const px = Math.min(sr, sc, Math.max(rows * sr, cols * sc) / 256);
    const outRows = Math.max(1, Math.round((rows * sr) / px)),
      outCols = Math.max(1, Math.round((cols * sc) / px));
    const gap = 4,
      width = 2 * outCols + gap;
    const pixels = new Uint8Array(outRows * width * 3);
    for (let r = 0; r < outRows; r++) {
      const vr = Math.min(rows - 1, Math.floor(((r + 0.5) * px) / sr));
      for (let q = 0; q < outCols; q++) {
        const i = idx(vr, Math.min(cols - 1, Math.floor(((q + 0.5) * px) / sc)));
        const g = Math.max(0, Math.min(255, Math.round(((c.image[i]! - lo) / (hi - lo)) * 255)));
        [c.mask[i]!, pred[i]!].forEach((label, side) => {
          const o = (r * width + side * (outCols + gap) + q) * 3;
          const col = label > 0 ? PALETTE[label % PALETTE.length]! : undefined;
          for (let ch = 0; ch < 3; ch++) pixels[o + ch] = col ? Math.round(0.55 * g + 0.45 * col[ch]!) : g;
        });
      }
    }
    const path = join(dir, `${name}-${plane}.png`);
    writeFileSync(path, encodePng(pixels, width, outRows, 3));
    out.push(path);
  }
  return out;
}

/**
 * Trains a segmentation decoder over `makeEncoder()` (frozen or fine-tuned) on the cached training masks and scores
 * the test split. makeEncoder returns a fresh encoder each call (pre-trained weights loaded, or random init).
 */
export async function runSegmentation(
  makeEncoder: () => VisionEncoder,
  o: SegmentationOptions,
): Promise<SegmentationResult> {
  const log = o.onProgress ?? (() => {});
  if (o.mode !== 'frozen' && o.mode !== 'finetune')
    throw new Error(`segmentation: mode must be 'frozen' or 'finetune', got '${String(o.mode)}'`);
  if (!(o.maskFraction > 0 && o.maskFraction <= 1))
    throw new Error(`segmentation: maskFraction must be in (0, 1], got ${o.maskFraction}`);
  if (!Number.isInteger(o.epochs) || o.epochs < 0)
    throw new Error(`segmentation: epochs must be an integer ≥ 0, got ${o.epochs}`);
  if (!Number.isInteger(o.batchSize) || o.batchSize < 1)
    throw new Error(`segmentation: batchSize must be a positive integer, got ${o.batchSize}`);
  if (!(o.lr > 0)) throw new Error(`segmentation: lr must be > 0, got ${o.lr}`);
  if (!Array.isArray(o.patch) || o.patch.length !== 3 || !o.patch.every((p) => Number.isInteger(p) && p > 0)) {
    throw new Error(`segmentation: patch must be 3 positive integers (D, H, W), got ${JSON.stringify(o.patch)}`);
  }
  if (!(o.overlap >= 0 && o.overlap < 1)) throw new Error(`segmentation: overlap must be in [0, 1), got ${o.overlap}`);
  if ((o.overlays ?? 0) > 0 && !o.outDir) throw new Error('segmentation: overlays are written to outDir; give one');
  const device = o.device ?? 'cpu';
  const classes = o.classes ?? [...MASK_CLASSES];
  const index = readCacheIndex(o.cacheDir);
  const preset: Preset = index.preset;
  const trainSplit = o.trainSplit ?? 'train',
    testSplit = o.testSplit ?? 'valid';
  const train = index.entries.filter((e) => e.split === trainSplit && e.hasMask);
  let test = index.entries.filter((e) => e.split === testSplit && e.hasMask);
  if (o.limitTest !== undefined) test = test.slice(0, o.limitTest);
  if (!train.length) throw new Error(`${o.cacheDir}: no volumes with masks in split '${trainSplit}'`);
  if (!test.length) throw new Error(`${o.cacheDir}: no volumes with masks in split '${testSplit}'`);
  if (o.outDir) mkdirSync(o.outDir, { recursive: true });
  const subset = maskSubset(train, o);

  torch.manualSeed(o.seed);
  const encoder = makeEncoder();
  if (!isSkipEncoder(encoder) && !isTokenEncoder(encoder)) {
    encoder.dispose();
    throw new Error(
      `segmentation supports ResNet3D (U-Net decoder) and ViT3D (UNETR decoder) encoders, got ${encoder.constructor.name}`,
    );
  }
  if (isTokenEncoder(encoder) && o.patch.some((n, a) => n % encoder.patchSize[a]! !== 0)) {
    encoder.dispose();
    throw new Error(
      `segmentation: patch [${o.patch.join(', ')}] must be divisible by the ViT's patch size [${encoder.patchSize.join(', ')}] (the sliding windows take this size too)`,
    );
  }
  const net = new SegmentationNet(encoder, { numClasses: classes.length, frozenEncoder: o.mode === 'frozen' });
  let opt: optim.AdamW | undefined;
  try {
    if (device !== 'cpu') net.to({ device });
    const params = net.trainableParameters();
    const optimizer = (opt = new optim.AdamW(
      [
        { params: params.decoder, lr: o.lr },
        ...(params.encoder.length ? [{ params: params.encoder, lr: o.lr / 10 }] : []),
      ],
      { weightDecay: o.weightDecay ?? 1e-5 },
    ));

    const fingerprint = JSON.stringify({
      mode: o.mode,
      maskFraction: o.maskFraction,
      trainSplit,
      patch: o.patch,
      batchSize: o.batchSize,
      lr: o.lr,
      seed: o.seed,
      classes,
      patchesPerVolume: o.patchesPerVolume ?? 1,
      weightDecay: o.weightDecay ?? 1e-5,
      loss: o.loss ?? {},
      encoder: encoder.constructor.name,
    });
    let trainLoss: number[] = [];
    let startEpoch = 0;
    const ckptDir = o.outDir ? join(o.outDir, 'checkpoints') : undefined;
    const resumeFrom = latestEpochDir(ckptDir);
    if (resumeFrom) {
      const state = readEpochState<SegState>(resumeFrom);
      if (state.fingerprint !== fingerprint)
        throw new Error(
          `${resumeFrom}: checkpoint made with other settings (${state.fingerprint}); use another outDir`,
        );
      torch.loadModule(net, join(resumeFrom, 'model.safetensors'));
      torch.loadOptimizer(optimizer, join(resumeFrom, 'optimizer.safetensors'));
      trainLoss = state.trainLoss;
      startEpoch = state.epoch;
      log(`resumed from ${resumeFrom} (epoch ${startEpoch})`);
    }

    const reader = new VolumeReader(o.cacheDir);
    const patch = o.patch;
    const per = o.patchesPerVolume ?? 1;
    const nPatch = patch[0] * patch[1] * patch[2];
    log(
      `segmentation (${o.mode}): ${subset.length}/${train.length} training masks, ${test.length} test volumes, ${net.decoder.numParameters().toLocaleString()} decoder parameters`,
    );
    for (let epoch = startEpoch; epoch < o.epochs; epoch++) {
      net.train();
      const t0 = Date.now();
      const rng = new Rng(o.seed, 0xe90c, epoch);
      const order = rng.shuffle(Array.from({ length: subset.length * per }, (_, i) => i % subset.length));
      let sum = 0,
        steps = 0,
        skipped = 0;
      for (let b = 0; b < order.length; b += o.batchSize) {
        const items = order.slice(b, b + o.batchSize);
        const image = new Float32Array(items.length * nPatch);
        const mask = new Uint8Array(items.length * nPatch);
        items.forEach((vi, k) => {
          const c = reader.read(subset[vi]!);
          const start = randomStart(c.shape, patch, new Rng(o.seed, epoch, b + k));
          cropPatch(c, start, patch, preset.scale, preset.padValue, image, mask, k * nPatch);
        });
        const value = torch.tidy(() => {
          const x = torch.tensor(image, [items.length, 1, ...patch], { device });
          const y = torch.tensor(mask, [items.length, ...patch]).to({ dtype: 'int64', device });
          return segmentationStep(net, optimizer, x, y, o.loss);
        });
        if (Number.isFinite(value)) {
          sum += value;
          steps += 1;
        } else skipped += 1;
        await new Promise((r) => setImmediate(r)); // let the event loop breathe between steps
      }
      if (steps === 0) throw new Error(`segmentation: every step of epoch ${epoch + 1} had a non-finite loss`);
      trainLoss.push(sum / steps);
      log(
        `epoch ${epoch + 1}/${o.epochs}: loss ${(sum / steps).toFixed(4)} over ${steps} steps${skipped ? ` (${skipped} non-finite skipped)` : ''}, ${((Date.now() - t0) / 1000).toFixed(1)} s`,
      );
      if (ckptDir) saveEpoch(ckptDir, net, optimizer, { epoch: epoch + 1, trainLoss, fingerprint });
    }

    net.eval();
    const fg = classes.slice(1);
    const perCase: SegmentationResult['perCase'] = [];
    const overlays: string[] = [];
    const overlayDir = o.outDir ? join(o.outDir, 'overlays') : '';
    if ((o.overlays ?? 0) > 0) mkdirSync(overlayDir, { recursive: true });
    let inferSeconds = 0;
    for (const [i, e] of test.entries()) {
      const c = reader.read(e);
      const volume = new Float32Array(c.image.length);
      for (let v = 0; v < volume.length; v++) volume[v] = c.image[v]! / preset.scale;
      const t0 = process.hrtime.bigint();
      const pred = predictVolume(net, volume, c.shape, {
        roi: patch,
        overlap: o.overlap,
        blend: o.blend,
        swBatchSize: o.swBatchSize,
        padValue: preset.padValue,
        device,
      });
      inferSeconds += Number(process.hrtime.bigint() - t0) / 1e9;
      const [sx, sy, sz] = e.spacing as Triple;
      const spacing: Triple = [sz, sy, sx]; // cache spacing is (x, y, z); arrays are (D, H, W) = (z, y, x)
      const dice = fg.map((_, k) => diceScore(pred, c.mask, k + 1));
      const hd95 = fg.map((_, k) => hausdorff95(pred, c.mask, c.shape, spacing, k + 1));
      perCase.push({ name: e.name, dice, hd95 });
      if (i < (o.overlays ?? 0)) overlays.push(...writeOverlays(overlayDir, e.name, c, pred, spacing));
      log(`test ${i + 1}/${test.length} ${e.name}: Dice ${finiteMean(dice).toFixed(3)}`);
      await new Promise((r) => setImmediate(r));
    }

    const perClassDice: Record<string, number> = {},
      perClassHd: Record<string, number> = {},
      infinite: Record<string, number> = {};
    fg.forEach((name, k) => {
      perClassDice[name] = finiteMean(perCase.map((p) => p.dice[k]!));
      const hd = perCase.map((p) => p.hd95[k]!);
      perClassHd[name] = finiteMean(hd);
      infinite[name] = hd.filter((v) => v === Infinity).length;
    });
    const result: SegmentationResult = {
      classes: fg,
      dice: { mean: finiteMean(Object.values(perClassDice)), perClass: perClassDice },
      hd95: { mean: finiteMean(Object.values(perClassHd)), perClass: perClassHd, infinite },
      perCase,
      trainLoss,
      overlays,
      volumesPerSecond: test.length / Math.max(inferSeconds, 1e-9),
    };
    if (o.outDir) {
      // JSON has no NaN / Infinity: they are written as null (see hd95.infinite for the Infinity counts)
      writeFileSync(
        join(o.outDir, 'results.json'),
        JSON.stringify({ mode: o.mode, maskFraction: o.maskFraction, epochs: o.epochs, ...result }, null, 2) + '\n',
      );
    }
    return result;
  } finally {
    opt?.dispose();
    net.dispose();
  }
}
