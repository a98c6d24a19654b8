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
// Resume (outDir): after every epoch the weights, the optimizer state and the run state go to
// outDir/epoch-NNNN/ (written under a temporary name, then renamed), the best weights to best-NNNN.safetensors,
// and the probe's features to features.safetensors; a rerun with the same settings continues after the last
// finished epoch and gives the result an uninterrupted run gives (the data order and augmentation are
// functions of (seed, epoch, volume), the optimizer state and RNG are restored). `epochs` and `patience` may
// change between runs; anything else that changes is refused.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { hashFile } from '../../util/files.js';
import { dirname, join } from 'node:path';
import { latestEpochDir, readEpochState, saveEpochDir } from '../../train/epoch-checkpoint.js';
import * as torch from '../../torch/index.js';
import { F, nn, optim, type Tensor } from '../../torch/index.js';
import { type VisionEncoder } from '../../models/t3d.js';
import { readCacheIndex } from '../../data/cache.js';
import { Loader, type RawBatch } from '../../data/loader.js';
import { type ViewConfig } from '../../data/views.js';
import { Rng } from '../../util/rng.js';
import { macroAuroc } from '../metrics/classification.js';
import { cacheFingerprint, labelSubset, namesFingerprint, type EvalSplits } from '../splits.js';

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
  /** linear probe: raw features of all evaluation-split volumes, shared by probes of one encoder at several fractions */
  featureFile?: string;
  /** fine-tuning augmentation overrides (defaults: flipProb 0.5 left–right, intensityScale [0.9, 1.1], intensityShift [−0.05, 0.05], noiseStd 0) */
  augment?: Partial<Pick<ViewConfig, 'flipProb' | 'intensityScale' | 'intensityShift' | 'noiseStd'>>;
  /** loader worker threads (default: the loader's) */
  workers?: number;
  /** volumes per batch of the no-gradient passes (probe features, validation and test scores), default 8 */
  evalBatchSize?: number;
  /** the whole cached volume at its own resolution instead of the preset's global view (multi-resolution presets) */
  fullResolution?: boolean;
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

const EVAL_VIEWS: Partial<ViewConfig> = { numLocal: 0, globalIntensity: false, noiseStd: 0 };
const DEFAULT_AUGMENT = {
  flipProb: 0.5,
  intensityScale: [0.9, 1.1] as [number, number],
  intensityShift: [-0.05, 0.05] as [number, number],
  noiseStd: 0,
};
const STATE_FORMAT = 't3d-transfer-state/1';

/** The head (and, when fine-tuning, the encoder) under one module, so state-dict keys are encoder.* / head.*. */
class Classifier extends nn.Module {
  constructor(
    readonly encoder: VisionEncoder | undefined,
    readonly head: nn.Linear,
  ) {
    super();
    if (encoder) this.registerModule('encoder', encoder);
    this.registerModule('head', head);
  }
  logits(x: Tensor): Tensor {
    if (!this.encoder) return this.head.forward(x);
    return torch.tidy(() => this.head.forward(this.encoder!.encode(x).pooled));
  }
}

interface RunState {
  format: typeof STATE_FORMAT;
  fingerprint: Record<string, unknown>;
  epochsDone: number;
  bestEpoch: number;
  bestAuroc: number;
  /** sha256 of the best weights' file, which lives beside the sealed epoch folders */
  bestSha256?: string;
  trainLoss: number[];
  valAuroc: number[];
  epochSeconds: number[];
  stopped: boolean;
}

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

function rowsOf(t: Tensor): number[][] {
  const flat = torch.tidy(() => t.to({ dtype: 'float64', device: 'cpu' }).toArray());
  const C = t.size(1);
  return Array.from({ length: t.size(0) }, (_, i) => flat.slice(i * C, (i + 1) * C));
}

/** A trailing single-volume batch joins the one before (BatchNorm statistics of one volume are degenerate). */
async function* batchesOf(loader: Loader, epoch: number): AsyncGenerator<RawBatch> {
  let held: RawBatch | undefined;
  for await (const b of loader.epoch(epoch)) {
    if (held && b.indices.length === 1) {
      held = mergeBatches(held, b);
      continue;
    }
    if (held) yield held;
    held = b;
  }
  if (held) yield held;
}
function mergeBatches(a: RawBatch, b: RawBatch): RawBatch {
  const cat = (x: Float32Array, y: Float32Array) => {
    const o = new Float32Array(x.length + y.length);
    o.set(x);
    o.set(y, x.length);
    return o;
  };
  return {
    indices: [...a.indices, ...b.indices],
    names: [...a.names, ...b.names],
    reports: [...a.reports, ...b.reports],
    labels: cat(a.labels, b.labels),
    global: cat(a.global, b.global),
    locals: [],
  };
}

/**
 * fn over every volume of `names` (un-augmented global views, no gradients) → (N, K) tensor in `names` order
 * (kept: the caller disposes it).
 */
async function mapVolumes(o: TransferOptions, names: string[], fn: (x: Tensor) => Tensor): Promise<Tensor> {
  const loader = new Loader({
    cacheDir: o.cacheDir,
    names,
    batchSize: o.evalBatchSize ?? 8,
    seed: o.seed,
    shuffle: false,
    dropLast: false,
    workers: o.workers,
    views: EVAL_VIEWS,
    fullResolution: o.fullResolution,
  });
  const [D, H, W] = loader.globalShape;
  const parts: Tensor[] = [];
  const order: string[] = [];
  try {
    for await (const b of batchesOf(loader, 0)) {
      parts.push(
        torch.noGrad(() =>
          torch.tidy(() => fn(torch.tensor(b.global, [b.indices.length, 1, D, H, W], { device: o.device })).keep()),
        ),
      );
      order.push(...b.names);
    }
  } finally {
    await loader.close();
  }
  return torch.tidy(() => {
    const all = torch.cat(parts, 0);
    torch.dispose(parts);
    const at = new Map(order.map((n, i) => [n, i]));
    if (names.every((n, i) => at.get(n) === i)) return all.keep();
    const idx = torch.tensor(BigInt64Array.from(names.map((n) => BigInt(at.get(n)!))), [names.length], {
      device: o.device,
    });
    return all.indexSelect(0, idx).keep();
  });
}

/** The run folder: per-epoch state (weights, optimizer, RNG, JSON) and the best weights, each written atomically. */
class RunDir {
  constructor(
    readonly dir: string | undefined,
    readonly fingerprint: Record<string, unknown>,
  ) {
    if (dir) mkdirSync(dir, { recursive: true });
  }

  /** the last finished epoch, verified once: nothing is saved between check() and resume() */
  private found?: { at: string; state: RunState } | null;

  /** The last finished epoch's state; throws when the folder holds a run with other settings. */
  check(): RunState | undefined {
    if (this.found !== undefined) return this.found?.state;
    const at = latestEpochDir(this.dir);
    this.found = null;
    if (!at) return undefined;
    const state = readEpochState<RunState>(at);
    const want = this.fingerprint,
      got = state.fingerprint ?? {};
    const diff = [...new Set([...Object.keys(want), ...Object.keys(got)])].filter(
      (k) => JSON.stringify(want[k]) !== JSON.stringify(got[k]),
    );
    if (state.format !== STATE_FORMAT || diff.length) {
      throw new Error(
        `${this.dir}: holds a transfer run with other settings (${diff.map((k) => `${k}: ${JSON.stringify(got[k])} there, ${JSON.stringify(want[k])} now`).join('; ') || 'format'}); use another outDir or delete it`,
      );
    }
    this.found = { at, state };
    return state;
  }

  /** Loads the last finished epoch into model, optimizer, RNG and best weights; its state, or undefined for a fresh run. */
  resume(model: nn.Module, opt: optim.Optimizer<object>, best: Map<string, Tensor>): RunState | undefined {
    const state = this.check();
    if (!state) return undefined;
    const at = this.found!.at;
    torch.loadModule(model, join(at, 'weights.safetensors'));
    const { tensors, metadata } = torch.loadSafetensors(join(at, 'optimizer.safetensors'));
    try {
      opt.loadStateDict({
        tensors: new Map([...tensors].filter(([k]) => k.startsWith('state.'))),
        meta: JSON.parse(metadata.optimizer!),
      });
      const rng = tensors.get('rng.default');
      if (rng) torch.setDefaultGeneratorState(rng);
    } finally {
      torch.dispose([...tensors.values()]);
    }
    const bestFile = join(this.dir!, bestName(state.bestEpoch));
    if (state.bestSha256 && hashFile(bestFile).sha256 !== state.bestSha256)
      throw new Error(
        `${bestFile}: does not match the sha256 recorded in ${at}/state.json (corrupted); delete ${this.dir} to recompute`,
      );
    const saved = torch.loadSafetensors(bestFile).tensors;
    try {
      torch.noGrad(() => {
        for (const [k, t] of best) t.copy_(saved.get(k)!);
      });
    } finally {
      torch.dispose([...saved.values()]);
    }
    return state;
  }

  save(
    model: nn.Module,
    opt: optim.Optimizer<object>,
    best: Map<string, Tensor>,
    state: RunState,
    improved: boolean,
  ): void {
    if (!this.dir) return;
    if (improved) state.bestSha256 = torch.saveSafetensors(join(this.dir, bestName(state.bestEpoch)), best).sha256;
    saveEpochDir(this.dir, state.epochsDone, state, (tmp) => {
      torch.saveModule(model, join(tmp, 'weights.safetensors'));
      const s = opt.stateDict();
      const rng = torch.getDefaultGeneratorState();
      try {
        torch.saveSafetensors(join(tmp, 'optimizer.safetensors'), new Map([...s.tensors, ['rng.default', rng]]), {
          optimizer: JSON.stringify(s.meta),
        });
      } finally {
        rng.dispose();
      }
    });
    const keepBest = bestName(state.bestEpoch);
    for (const n of readdirSync(this.dir)) {
      if (/^best-\d{4,}\.safetensors$/.test(n) && n !== keepBest) rmSync(join(this.dir, n), { force: true });
    }
  }
}
const bestName = (epoch: number) => `best-${String(epoch).padStart(4, '0')}.safetensors`;

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
    };
    const run = new RunDir(o.outDir, fingerprint);
    run.check();
    const labelsTensor = (names: string[]) =>
      torch.tensor(Float32Array.from(names.flatMap((n) => labelsOf.get(n)!)), [names.length, L], { device: o.device });
    if (o.device && o.device !== 'cpu') encoder.to({ device: o.device });

    // ---- what one epoch is, per mode ----
    let trainEpoch: (epoch: number) => Promise<number>;
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
      trainEpoch = async (epoch) => {
        const order = new Rng(o.seed, 0x11ea, epoch).shuffle(Array.from({ length: N }, (_, i) => i));
        let sum = 0;
        for (let s = 0; s < N; s += o.batchSize) {
          const idx = order.slice(s, s + o.batchSize);
          sum +=
            idx.length *
            torch.tidy(() => {
              const i = torch.tensor(BigInt64Array.from(idx.map(BigInt)), [idx.length], { device: o.device });
              const loss = F.binaryCrossEntropyWithLogits(
                m.logits(feats.train.indexSelect(0, i)),
                yTrain.indexSelect(0, i),
              );
              loss.backward();
              return loss.item();
            });
          opt!.step();
          opt!.zeroGrad();
        }
        return sum / N;
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
        numLocal: 0,
        globalIntensity: true,
        intensityScale: augment.intensityScale,
        intensityShift: augment.intensityShift,
        noiseStd: augment.noiseStd,
      };
      const loader = new Loader({
        cacheDir: o.cacheDir,
        names: trainNames,
        batchSize: o.batchSize,
        seed: o.seed,
        shuffle: true,
        dropLast: false,
        workers: o.workers,
        views,
        fullResolution: o.fullResolution,
      });
      const [D, H, W] = loader.globalShape;
      trainEpoch = async (epoch) => {
        m.train();
        let sum = 0,
          count = 0;
        try {
          for await (const b of batchesOf(loader, epoch)) {
            const B = b.indices.length;
            sum +=
              B *
              torch.tidy(() => {
                let x = torch.tensor(b.global, [B, 1, D, H, W], { device: o.device });
                const flips = b.indices.map((i) => new Rng(o.seed, 0xf119, epoch, i).bool(augment.flipProb));
                if (flips.some(Boolean)) {
                  const mask = torch
                    .tensor(Uint8Array.from(flips, Number), [B, 1, 1, 1, 1])
                    .to({ dtype: 'bool', device: o.device });
                  x = torch.where(mask, x.flip([4]), x);
                }
                const loss = F.binaryCrossEntropyWithLogits(
                  m.logits(x),
                  torch.tensor(b.labels, [B, L], { device: o.device }),
                );
                loss.backward();
                return loss.item();
              });
            count += B;
            opt!.step();
            opt!.zeroGrad();
          }
        } finally {
          await loader.close(); // its workers would otherwise idle through validation
        }
        return sum / count;
      };
      scores = async (part) => {
        m.eval();
        const t = await mapVolumes(o, part === 'val' ? o.splits.val : o.splits.test, (x) => m.logits(x).sigmoid());
        try {
          return rowsOf(t);
        } finally {
          t.dispose();
        }
      };
    }
    opt = new optim.AdamW(model.parameters(), { lr: o.lr, weightDecay });
    const best = torch.noGrad(() => new Map([...model!.stateDict()].map(([k, t]) => [k, t.clone().keep()])));
    owned.push(...best.values());

    // ---- the epoch loop, resumable ----
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
    if (state.epochsDone)
      log(
        `${tag}: resuming after epoch ${state.epochsDone} (best ${state.bestAuroc.toFixed(4)} at epoch ${state.bestEpoch + 1})`,
      );
    while (state.epochsDone < o.epochs && state.epochsDone - 1 - state.bestEpoch < o.patience) {
      const t0 = performance.now();
      const epoch = state.epochsDone;
      const loss = await trainEpoch(epoch);
      const auroc = macroAuroc(await scores('val'), valLabels).value;
      if (Number.isNaN(auroc))
        throw new Error(
          `runTransfer: no label has both classes in the ${o.splits.val.length} validation volumes; early stopping needs some`,
        );
      const improved = auroc > state.bestAuroc;
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
      state.stopped = state.epochsDone - 1 - state.bestEpoch >= o.patience;
      run.save(model, opt, best, state, improved);
      log(
        `${tag}: epoch ${epoch + 1}/${o.epochs} loss ${loss.toFixed(4)} val macro-AUROC ${auroc.toFixed(4)} (best ${state.bestAuroc.toFixed(4)} at ${state.bestEpoch + 1}) ${state.epochSeconds.at(-1)!.toFixed(1)} s${state.stopped ? '; early stop' : ''}`,
      );
    }

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
    opt?.dispose();
    model?.dispose();
    if (!model?.encoder && !encoderFreed) encoder.dispose();
    torch.dispose(owned);
  }
}

/**
 * The probe's standardised features (train / val / test, kept). Raw pooled features of every evaluation-split
 * volume are computed once with the encoder in eval mode and saved (`featureFile`, else outDir), so probes at
 * several label fractions of one encoder share them; each subset is standardised with its own statistics.
 */
async function probeFeatures(
  encoder: VisionEncoder,
  o: TransferOptions,
  trainNames: string[],
  run: RunDir,
  fingerprint: Record<string, unknown>,
  log: (m: string) => void,
  tag: string,
): Promise<{ train: Tensor; val: Tensor; test: Tensor; seconds: number }> {
  const file = o.featureFile ?? (run.dir ? join(run.dir, 'features.safetensors') : undefined);
  const names = [...o.splits.train, ...o.splits.val, ...o.splits.test];
  const key = JSON.stringify([fingerprint.cache, namesFingerprint(names), fingerprint.encoder]);
  let all: Tensor | undefined;
  let seconds = 0;
  if (file && existsSync(file)) {
    const { tensors, metadata } = torch.loadSafetensors(file, { device: o.device });
    if (metadata.fingerprint === key) {
      log(`${tag}: features read from ${file}`);
      all = tensors.get('features')!.keep();
    } else torch.dispose([...tensors.values()]);
  }
  if (!all) {
    const t0 = performance.now();
    encoder.eval();
    all = await mapVolumes(o, names, (x) => encoder.encode(x).pooled);
    seconds = (performance.now() - t0) / 1000;
    log(`${tag}: features of ${names.length} volumes in ${seconds.toFixed(1)} s`);
    if (file) {
      mkdirSync(dirname(file), { recursive: true });
      torch.saveSafetensors(file, { features: all }, { fingerprint: key });
    }
  }
  const row = new Map(names.map((n, i) => [n, i]));
  const out = torch.tidy(() => {
    const pick = (ns: string[]) =>
      all!.indexSelect(
        0,
        torch.tensor(BigInt64Array.from(ns.map((n) => BigInt(row.get(n)!))), [ns.length], { device: o.device }),
      );
    const train = pick(trainNames);
    const mean = train.mean(0, true);
    const sd = train.std(0, { correction: 0, keepdim: true });
    const std = torch.where(sd.gt(1e-6), sd, torch.onesLike(sd));
    const norm = (t: Tensor) => t.sub(mean).div(std).keep();
    return { train: norm(train), val: norm(pick(o.splits.val)), test: norm(pick(o.splits.test)) };
  });
  all.dispose();
  return { ...out, seconds };
}
