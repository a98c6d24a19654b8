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
// - training patches are uniform random crops (no flips: the classes name body sides), image = the model input
//   the preset defines (HU / scale, then its intensity: window or the volume's min–max, as the views and the
//   analyzer apply it); inference uses the training patch as the window (Gaussian blending);
// - with outDir: the mask subset (mask-subset.json), a checkpoint after every epoch (checkpoints/epoch-NNNN,
//   written atomically; only the newest is kept; epoch-trainer.ts), overlays and results.json; a rerun resumes
//   from the newest checkpoint and refuses one made with other settings.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../../torch/index.js';
import { optim, type Tensor } from '../../torch/index.js';
import { readCacheIndex } from '../../data/cache.js';
import { type Preset } from '../../data/presets.js';
import { intensityOf } from '../../data/views.js';
import { MASK_CLASSES } from '../../domain/ct-rate.js';
import { type VisionEncoder } from '../../models/t3d.js';
import { SegmentationNet, isSkipEncoder, isTokenEncoder } from '../../models/seg-decoder.js';
import { diceCELoss, type DiceCEOptions } from '../../objectives/segmentation.js';
import { type BlendMode } from './sliding-window.js';
import { EpochTrainer } from './epoch-trainer.js';
import { type Triple, VolumeReader, maskSubset, patchBatches } from './segmentation-data.js';
import { scoreTestSplit } from './segmentation-eval.js';

export interface SegmentationOptions {
  cacheDir: string;
  /** default 'train' */
  trainSplit?: string;
  /** default 'valid' */
  testSplit?: string;
  /**
   * share of the training volumes (with masks) whose masks are used, e.g. 0.1 or 1: a seeded subset, saved in
   * outDir
   */
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
  /**
   * mm; means over finite values; `infinite` counts, per class, the cases where exactly one of prediction and
   * truth was empty
   */
  hd95: { mean: number; perClass: Record<string, number>; infinite: Record<string, number> };
  perCase: { name: string; dice: number[]; hd95: number[] }[];
  /** mean training loss of each epoch */
  trainLoss: number[];
  /** PNG paths */
  overlays: string[];
  /** sliding-window inference throughput (test volumes per second, host copies included) */
  volumesPerSecond: number;
}

/** Dice + CE loss of a batch: image (B, 1, ...) float, mask (B, ...) int64. */
function segmentationLoss(net: SegmentationNet, image: Tensor, mask: Tensor, loss: DiceCEOptions = {}): Tensor {
  return diceCELoss(net.forward(image), mask, loss).total;
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
    const total = segmentationLoss(net, image, mask, loss);
    const v = total.item();
    if (Number.isFinite(v)) total.backward();
    return v;
  });
  if (Number.isFinite(value)) opt.step();
  opt.zeroGrad();
  return value;
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
      'segmentation supports ResNet3D (U-Net decoder) and ViT3D (UNETR decoder) encoders, ' +
        `got ${encoder.constructor.name}`,
    );
  }
  if (isTokenEncoder(encoder) && o.patch.some((n, a) => n % encoder.patchSize[a]! !== 0)) {
    encoder.dispose();
    throw new Error(
      `segmentation: patch [${o.patch.join(', ')}] must be divisible by the ViT's patch size ` +
        `[${encoder.patchSize.join(', ')}] (the sliding windows take this size too)`,
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

    const settings = {
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
    };
    const trainer = new EpochTrainer({
      task: 'segmentation',
      outDir: o.outDir,
      settings,
      save: (dir) => {
        torch.saveModule(net, join(dir, 'model.safetensors'));
        torch.saveOptimizer(optimizer, join(dir, 'optimizer.safetensors'));
      },
      load: (dir) => {
        torch.loadModule(net, join(dir, 'model.safetensors'));
        torch.loadOptimizer(optimizer, join(dir, 'optimizer.safetensors'));
      },
      log,
    });

    const reader = new VolumeReader(o.cacheDir);
    const input = { scale: preset.scale, padValue: preset.padValue, intensity: intensityOf(preset) };
    const { patch } = o;
    const decoderParams = net.decoder.numParameters().toLocaleString();
    log(
      `segmentation (${o.mode}): ${subset.length}/${train.length} training masks, ${test.length} test volumes, ` +
        `${decoderParams} decoder parameters`,
    );
    const data = {
      seed: o.seed,
      batchSize: o.batchSize,
      patch,
      perVolume: o.patchesPerVolume ?? 1,
      ...input,
    };
    const trainLoss = await trainer.train({
      epochs: o.epochs,
      optimizer,
      batches: (epoch) => {
        net.train();
        return patchBatches(reader, subset, data, epoch);
      },
      loss: (b) => {
        const x = torch.tensor(b.image, [b.n, 1, ...patch], { device });
        const y = torch.tensor(b.mask, [b.n, ...patch]).to({ dtype: 'int64', device });
        return segmentationLoss(net, x, y, o.loss);
      },
    });

    const scores = await scoreTestSplit(net, reader, test, classes, {
      patch,
      overlap: o.overlap,
      blend: o.blend,
      swBatchSize: o.swBatchSize,
      input,
      device,
      overlays: o.overlays ?? 0,
      outDir: o.outDir,
      log,
    });
    const result: SegmentationResult = {
      classes: scores.classes,
      dice: scores.dice,
      hd95: scores.hd95,
      perCase: scores.perCase,
      trainLoss,
      overlays: scores.overlays,
      volumesPerSecond: scores.volumesPerSecond,
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
