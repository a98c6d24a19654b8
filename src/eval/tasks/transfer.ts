// Classification transfer on the evaluation splits: a linear probe on frozen features, or full fine-tuning
// of encoder + linear head, trained on a label fraction of evaluation-train with BCE, early-stopped on the
// evaluation-validation macro-AUROC. Returns sigmoid scores of the best epoch for val and test; the caller
// computes metrics (and picks thresholds on val).
//
// Conventions. Linear probe: features = the encoder's pooled vector of the un-augmented global view, computed
// once in eval mode without gradients, standardised with the training subset's mean and std (population std;
// channels with std ≤ 1e-6 are only centred); a Linear(C, L) head trained by AdamW on shuffled mini-batches of
// features. Fine-tuning: encoder (train mode, so BatchNorm updates) and head in one AdamW group at `lr`;
// training views get a left–right flip (p 0.5: CT-RATE's findings are not lateralised) and the global view's
// intensity scale/shift, no noise. Both: unweighted BCE with logits, weight decay 0.01 unless given; an epoch
// is one pass over the training subset; an epoch improves when its val macro-AUROC is strictly higher than
// the best so far; training stops after `patience` epochs without improvement or at `epochs`.
//
// Resume (outDir, transfer-run.ts): per-epoch state, the best weights and the probe's features; a rerun with the
// same settings continues after the last finished epoch exactly (data order and augmentation are functions of
// (seed, epoch, volume)). `epochs` and `patience` may change between runs; anything else is refused.
import { createHash } from 'node:crypto';
import { TrainLoop, freshLoopState } from '../../train/loop.js';
import * as torch from '../../torch/index.js';
import { F, nn, optim, type Tensor } from '../../torch/index.js';
import { type VisionEncoder } from '../../models/t3d.js';
import { readCacheIndex } from '../../data/cache.js';
import { Loader } from '../../data/loader.js';
import { lobeCropViews, type Shape3, type ViewConfig } from '../../data/views.js';
import { Rng } from '../../util/rng.js';
import { macroAuroc } from '../metrics/classification.js';
import { cacheFingerprint, labelSubset, namesFingerprint, type EvalSplits } from '../splits.js';
import { batchesOf, mapVolumes, probeFeatures, rowsOf } from './transfer-features.js';
import { Classifier } from './transfer-classifier.js';
import { RunDir, type RunState, STATE_FORMAT } from './transfer-run.js';

/** A training batch: its size and its loss. */
interface TrainBatch {
  n: number;
  loss: () => Tensor;
}

export interface TransferOptions {
  cacheDir: string;
  mode: 'linear' | 'finetune';
  /** label fraction of evaluation-train, (0, 1] */
  fraction: number;
  splits: EvalSplits;
  /** the label subset's JSON file (read when present, else written), shared by every method */
  subsetFile?: string;
  /** maximum epochs */
  epochs: number;
  /** early stopping: epochs without a val macro-AUROC improvement before stopping (≥ 1) */
  patience: number;
  batchSize: number;
  /** AdamW learning rate (head, and encoder when fine-tuning) */
  lr: number;
  /** AdamW decoupled weight decay, default 0.01 */
  weightDecay?: number;
  seed: number;
  device?: string;
  onProgress?: (msg: string) => void;
  /** working folder for resume: best weights, per-epoch state, the probe's features */
  outDir?: string;
  /**
   * linear probe: raw features of all evaluation-split volumes, shared by probes of one encoder at several
   * fractions
   */
  featureFile?: string;
  /**
   * fine-tuning augmentation overrides (defaults: flipProb 0.5 left–right, intensityScale [0.9, 1.1],
   * intensityShift [−0.05, 0.05], noiseStd 0)
   */
  augment?: Partial<Pick<ViewConfig, 'flipProb' | 'intensityScale' | 'intensityShift' | 'noiseStd'>>;
  /** loader worker threads (default: the loader's) */
  workers?: number;
  /** volumes per batch of the no-gradient passes (probe features, validation and test scores), default 8 */
  evalBatchSize?: number;
  /** the whole cached volume at its own resolution instead of the preset's global view (multi-resolution presets) */
  fullResolution?: boolean;
  /**
   * the crop-scale readout: the five lobe crops of this shape at the cache's resolution stand for the volume (the
   * probe's features are their mean; fine-tuning trains on them, augmented, and scores the mean of their logits)
   */
  crop?: Shape3;
}

export interface TransferResult {
  labelNames: string[];
  testNames: string[];
  /** sigmoid probabilities (N × L) of the best epoch, in testNames order */
  testScores: number[][];
  testLabels: number[][];
  /** the same on evaluation-validation, in splits.val order */
  valScores: number[][];
  valLabels: number[][];
  /** index into trainLoss / valAuroc of the best epoch (0-based) */
  bestEpoch: number;
  epochsRun: number;
  /** mean training loss per epoch */
  trainLoss: number[];
  /** val macro-AUROC per epoch */
  valAuroc: number[];
  /** mean wall time of an epoch (training + validation), over every epoch run, resumed ones included */
  secondsPerEpoch: number;
  /** volumes in the training subset */
  trainCount: number;
  /** linear probe: seconds spent computing the frozen features (0 when read from outDir) */
  featureSeconds?: number;
}

const DEFAULT_AUGMENT = {
  flipProb: 0.5,
  intensityScale: [0.9, 1.1] as [number, number],
  intensityShift: [-0.05, 0.05] as [number, number],
  noiseStd: 0,
};

function checkOptions(o: TransferOptions): void {
  const bad: string[] = [];
  if (o.mode !== 'linear' && o.mode !== 'finetune')
    bad.push(`mode must be 'linear' or 'finetune', got '${String(o.mode)}'`);
  if (!(o.fraction > 0 && o.fraction <= 1)) bad.push(`fraction must be in (0, 1], got ${o.fraction}`);
  for (const k of ['epochs', 'patience', 'batchSize', 'evalBatchSize'] as const) {
    const v = o[k];
    if (v !== undefined && !(Number.isInteger(v) && v >= 1)) bad.push(`${k} must be an integer ≥ 1, got ${v}`);
  }
  if (!(o.lr > 0)) bad.push(`lr must be > 0, got ${o.lr}`);
  if (o.weightDecay !== undefined && !(o.weightDecay >= 0)) bad.push(`weightDecay must be ≥ 0, got ${o.weightDecay}`);
  if (!o.splits?.val?.length) bad.push('splits.val is empty: early stopping needs evaluation-validation volumes');
  if (!o.splits?.test?.length) bad.push('splits.test is empty');
  if (bad.length) throw new Error(`runTransfer: ${bad.join('; ')}`);
}

/** Order-free fingerprint of a module's weights (per tensor: shape, sum, sum of |x|, 12 significant digits). */
function weightsFingerprint(m: nn.Module): string {
  const parts = torch.noGrad(() =>
    torch.tidy(() =>
      [...m.stateDict()].map(([k, t]) => {
        const d = t.to({ dtype: 'float64', device: 'cpu' });
        return `${k}:${t.shape.join('x')}:${d.sum().item().toPrecision(12)}:${d.abs().sum().item().toPrecision(12)}`;
      }),
    ),
  );
  return createHash('sha256').update(parts.sort().join('\n')).digest('hex').slice(0, 16);
}

/**
 * Trains a linear probe or fine-tunes `makeEncoder()` (a fresh encoder, owned and disposed here; the global
 * RNG is seeded with `seed` before it is called, so a random init is reproducible) on the label subset, and
 * returns the best epoch's val and test scores. See the file header for the conventions.
 */
export async function runTransfer(makeEncoder: () => VisionEncoder, o: TransferOptions): Promise<TransferResult> {
  checkOptions(o);
  const log = o.onProgress ?? (() => undefined);
  const tag = `${o.mode === 'linear' ? 'linear probe' : 'fine-tune'} ${+(o.fraction * 100).toFixed(2)} %`;
  const index = readCacheIndex(o.cacheDir);
  const labelsOf = new Map(index.entries.map((e) => [e.name, e.labels]));
  for (const [part, names] of [
    ['val', o.splits.val],
    ['test', o.splits.test],
  ] as const) {
    const missing = names.filter((n) => !labelsOf.has(n));
    if (missing.length)
      throw new Error(`runTransfer: ${missing.length} ${part} volumes are not in ${o.cacheDir} (e.g. ${missing[0]})`);
  }
  const trainNames = labelSubset(o.cacheDir, o.splits, o.fraction, { file: o.subsetFile });
  const L = index.labelNames.length;
  const weightDecay = o.weightDecay ?? 0.01;
  const augment = { ...DEFAULT_AUGMENT, ...o.augment };
  log(`${tag}: ${trainNames.length} training, ${o.splits.val.length} validation, ${o.splits.test.length} test volumes`);

  torch.manualSeed(o.seed);
  const encoder = makeEncoder();
  let encoderFreed = false;
  let model: Classifier | undefined;
  let opt: optim.AdamW | undefined;
  let loader: Loader | undefined;
  const owned: Tensor[] = [];
  try {
    const fingerprint: Record<string, unknown> = {
      mode: o.mode,
      fraction: o.fraction,
      cache: cacheFingerprint(o.cacheDir, index),
      train: namesFingerprint(trainNames),
      val: namesFingerprint(o.splits.val),
      test: namesFingerprint(o.splits.test),
      batchSize: o.batchSize,
      lr: o.lr,
      weightDecay,
      seed: o.seed,
      encoder: weightsFingerprint(encoder),
      ...(o.mode === 'finetune' ? { augment } : {}),
      ...(o.crop ? { crop: o.crop } : {}),
    };
    const run = new RunDir(o.outDir, fingerprint);
    run.check();
    const labelsTensor = (names: string[]) =>
      torch.tensor(Float32Array.from(names.flatMap((n) => labelsOf.get(n)!)), [names.length, L], { device: o.device });
    if (o.device && o.device !== 'cpu') encoder.to({ device: o.device });

    // ---- what one epoch is, per mode: its batches, each with its loss (computed in the loop's tidy scope) ----
    let batches: (epoch: number) => Iterator<TrainBatch> | AsyncIterator<TrainBatch>;
    let scores: (part: 'val' | 'test') => Promise<number[][]>;
    let featureSeconds: number | undefined;
    if (o.mode === 'linear') {
      const feats = await probeFeatures(encoder, o, trainNames, run, fingerprint, log, tag);
      featureSeconds = feats.seconds;
      owned.push(feats.train, feats.val, feats.test);
      encoder.dispose(); // the probe never needs it again
      encoderFreed = true;
      torch.manualSeed(o.seed);
      model = new Classifier(undefined, new nn.Linear(feats.train.size(1), L));
      if (o.device && o.device !== 'cpu') model.to({ device: o.device });
      const yTrain = labelsTensor(trainNames).keep();
      owned.push(yTrain);
      const N = trainNames.length;
      const m = model;
      batches = function* (epoch) {
        const order = new Rng(o.seed, 0x11ea, epoch).shuffle(Array.from({ length: N }, (_, i) => i));
        for (let s = 0; s < N; s += o.batchSize) {
          const idx = order.slice(s, s + o.batchSize);
          yield {
            n: idx.length,
            loss: () => {
              const i = torch.tensor(BigInt64Array.from(idx.map(BigInt)), [idx.length], { device: o.device });
              return F.binaryCrossEntropyWithLogits(m.logits(feats.train.indexSelect(0, i)), yTrain.indexSelect(0, i));
            },
          };
        }
      };
      scores = async (part) =>
        torch.noGrad(() => torch.tidy(() => rowsOf(m.logits(part === 'val' ? feats.val : feats.test).sigmoid())));
    } else {
      encoder.freeze(false);
      torch.manualSeed(o.seed);
      model = new Classifier(encoder, new nn.Linear(encoder.outChannels, L));
      if (o.device && o.device !== 'cpu') model.to({ device: o.device });
      const m = model;
      const views: Partial<ViewConfig> = {
        ...(o.crop ? lobeCropViews(o.crop) : { numLocal: 0, globalIntensity: true }),
        intensityScale: augment.intensityScale,
        intensityShift: augment.intensityShift,
        noiseStd: augment.noiseStd,
      };
      const { cacheDir, batchSize, seed, workers, fullResolution } = o;
      const shuffled = { shuffle: true, dropLast: false, workers, views, fullResolution };
      const train = (loader = new Loader({ cacheDir, names: trainNames, batchSize, seed, ...shuffled }));
      const [global, crop] = [train.globalShape, train.localShape];
      batches = async function* (epoch) {
        m.train();
        try {
          for await (const b of batchesOf(train, epoch)) {
            const B = b.indices.length;
            yield {
              n: B,
              loss: () => {
                const flips = b.indices.map((i) => new Rng(o.seed, 0xf119, epoch, i).bool(augment.flipProb));
                const flipped = (data: Float32Array, shape: number[]) => {
                  const x = torch.tensor(data, [B, 1, ...shape], { device: o.device });
                  if (!flips.some(Boolean)) return x;
                  const mask = torch
                    .tensor(Uint8Array.from(flips, Number), [B, 1, 1, 1, 1])
                    .to({ dtype: 'bool', device: o.device });
                  return torch.where(mask, x.flip([4]), x);
                };
                const y = torch.tensor(b.labels, [B, L], { device: o.device });
                const logits = o.crop
                  ? m.cropLogits(b.locals.map((l) => flipped(l, crop)))
                  : m.logits(flipped(b.global, global));
                return F.binaryCrossEntropyWithLogits(logits, y);
              },
            };
          }
        } finally {
          await train.close(); // its workers would otherwise idle through validation
        }
      };
      scores = async (part) => {
        m.eval();
        // logits averaged over the crops at crop scale, then the sigmoid (the same function as cropLogits)
        const t = await mapVolumes(o, part === 'val' ? o.splits.val : o.splits.test, (x) => m.logits(x));
        try {
          return torch.tidy(() => rowsOf(t.sigmoid()));
        } finally {
          t.dispose();
        }
      };
    }
    opt = new optim.AdamW(model.parameters(), { lr: o.lr, weightDecay });
    const best = torch.noGrad(() => new Map([...model!.stateDict()].map(([k, t]) => [k, t.clone().keep()])));
    owned.push(...best.values());
    // ---- the epochs, resumable, early-stopped on the val macro-AUROC ----
    const valLabels = o.splits.val.map((n) => labelsOf.get(n)!);
    const state: RunState = run.resume(model, opt, best) ?? {
      format: STATE_FORMAT,
      fingerprint,
      epochsDone: 0,
      bestEpoch: -1,
      bestAuroc: -Infinity,
      trainLoss: [],
      valAuroc: [],
      epochSeconds: [],
      stopped: false,
    };
    if (state.epochsDone) {
      const bestAt = `best ${state.bestAuroc.toFixed(4)} at epoch ${state.bestEpoch + 1}`;
      log(`${tag}: resuming after epoch ${state.epochsDone} (${bestAt})`);
    }
    const patienceLeft = () => state.epochsDone - 1 - state.bestEpoch < o.patience;
    let sum = 0,
      count = 0,
      improved = false,
      t0 = performance.now();
    const loop = new TrainLoop<TrainBatch, { n: number }>({
      state: { ...freshLoopState(), epoch: state.epochsDone },
      length: { epochs: o.epochs },
      optimizer: opt,
      log,
      batches,
      forward: (b) => ({ loss: b.loss(), n: b.n }),
      afterStep: (s) => {
        sum += s.extra.n * s.loss;
        count += s.extra.n;
      },
      afterEpoch: async ({ epoch }) => {
        const loss = sum / count;
        const auroc = macroAuroc(await scores('val'), valLabels).value;
        const none = `no label has both classes in the ${o.splits.val.length} validation volumes`;
        if (Number.isNaN(auroc)) throw new Error(`runTransfer: ${none}; early stopping needs some`);
        improved = auroc > state.bestAuroc;
        if (improved) {
          state.bestAuroc = auroc;
          state.bestEpoch = epoch;
          torch.noGrad(() => {
            for (const [k, t] of model!.stateDict()) best.get(k)!.copy_(t);
          });
        }
        state.trainLoss.push(loss);
        state.valAuroc.push(auroc);
        state.epochSeconds.push((performance.now() - t0) / 1000);
        state.epochsDone = epoch + 1;
        state.stopped = !patienceLeft();
        const bestAt = `(best ${state.bestAuroc.toFixed(4)} at ${state.bestEpoch + 1})`;
        const bestSoFar = `val macro-AUROC ${auroc.toFixed(4)} ${bestAt}`;
        const end = `${state.epochSeconds.at(-1)!.toFixed(1)} s${state.stopped ? '; early stop' : ''}`;
        log(`${tag}: epoch ${epoch + 1}/${o.epochs} loss ${loss.toFixed(4)} ${bestSoFar} ${end}`);
        sum = count = 0;
        return state.stopped;
      },
      checkpoint: {
        save: () => {
          run.save(model!, opt!, best, state, improved);
          t0 = performance.now();
          return run.dir!;
        },
      },
    });
    if (patienceLeft()) await loop.run();
    // ---- the best epoch's scores ----
    torch.noGrad(() => {
      for (const [k, t] of model!.stateDict()) t.copy_(best.get(k)!);
    });
    const valScores = await scores('val');
    const testScores = await scores('test');
    return {
      labelNames: index.labelNames,
      testNames: [...o.splits.test],
      testScores,
      testLabels: o.splits.test.map((n) => labelsOf.get(n)!),
      valScores,
      valLabels,
      bestEpoch: state.bestEpoch,
      epochsRun: state.epochsDone,
      trainLoss: state.trainLoss,
      valAuroc: state.valAuroc,
      secondsPerEpoch: state.epochSeconds.reduce((a, b) => a + b, 0) / Math.max(1, state.epochSeconds.length),
      trainCount: trainNames.length,
      ...(featureSeconds === undefined ? {} : { featureSeconds }),
    };
  } finally {
    await loader?.close();
    opt?.dispose();
    model?.dispose();
    if (!model?.encoder && !encoderFreed) encoder.dispose();
    torch.dispose(owned);
  }
}
