// The no-gradient passes of the transfer task over un-augmented global views (the probe's features, validation
// and test scores) and the batch grouping its training shares with them.
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as torch from '../../torch/index.js';
import { type Tensor } from '../../torch/index.js';
import { type VisionEncoder } from '../../models/t3d.js';
import { Loader, type RawBatch } from '../../data/loader.js';
import { lobeCropViews, type ViewConfig } from '../../data/views.js';
import { recalibrateOnCrops } from '../../inference/recalibrate.js';
import { namesFingerprint } from '../splits.js';
import { type RunDir } from './transfer-run.js';
import { type TransferOptions } from './transfer.js';

const EVAL_VIEWS: Partial<ViewConfig> = { numLocal: 0, globalIntensity: false, noiseStd: 0 };

/** The rows of an (N, C) tensor, as float64 numbers on the host. */
export function rowsOf(t: Tensor): number[][] {
  const flat = torch.tidy(() => t.to({ dtype: 'float64', device: 'cpu' }).toArray());
  const C = t.size(1);
  return Array.from({ length: t.size(0) }, (_, i) => flat.slice(i * C, (i + 1) * C));
}

/** A trailing single-volume batch joins the one before (BatchNorm statistics of one volume are degenerate). */
export async function* batchesOf(loader: Loader, epoch: number): AsyncGenerator<RawBatch> {
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
 * (kept: the caller disposes it). With `o.crop`, fn runs on each of the volume's five lobe crops (the crop-scale
 * readout, data/views.ts lobeCropViews) and the volume's row is the mean of the five.
 */
export async function mapVolumes(o: TransferOptions, names: string[], fn: (x: Tensor) => Tensor): Promise<Tensor> {
  const loader = new Loader({
    cacheDir: o.cacheDir,
    names,
    batchSize: o.evalBatchSize ?? 8,
    seed: o.seed,
    shuffle: false,
    dropLast: false,
    workers: o.workers,
    views: o.crop ? lobeCropViews(o.crop) : EVAL_VIEWS,
    fullResolution: o.fullResolution,
  });
  const [D, H, W] = loader.globalShape;
  const crop = loader.localShape;
  const parts: Tensor[] = [];
  const order: string[] = [];
  try {
    for await (const b of batchesOf(loader, 0)) {
      const B = b.indices.length;
      const input = (x: Float32Array, shape: number[]) => torch.tensor(x, [B, 1, ...shape], { device: o.device });
      parts.push(
        torch.noGrad(() =>
          torch.tidy(() =>
            (o.crop
              ? torch
                  .stack(
                    b.locals.map((l) => fn(input(l, crop))),
                    0,
                  )
                  .mean(0)
              : fn(input(b.global, [D, H, W]))
            ).keep(),
          ),
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

/**
 * The probe's standardised features (train / val / test, kept). Raw pooled features of every evaluation-split
 * volume are computed once with the encoder in eval mode and saved (`featureFile`, else outDir), so probes at
 * several label fractions of one encoder share them; each subset is standardised with its own statistics.
 */
export async function probeFeatures(
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
    if (o.crop) {
      // every arm's BatchNorm sees the same training crops before the crop-scale readout
      const r = await recalibrateOnCrops(encoder, (x) => encoder.encode(x), {
        cacheDir: o.cacheDir,
        names: o.splits.train,
        crop: o.crop,
        device: o.device,
        workers: o.workers,
      });
      log(`${tag}: BatchNorm recalibrated on the lobe crops of ${o.splits.train.length} volumes (${r.layers} layers)`);
    }
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
