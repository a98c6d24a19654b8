// Evaluation budgets as data: configs/eval/*.json (epochs, learning rates, label fractions, bootstrap size).
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../util/paths.js';

export interface EvalConfig {
  name: string;
  /** seeds the splits, label subsets, heads and bootstrap (the pre-training seed is the checkpoint's) */
  seed: number;
  /** share of the cache's training split held out for early stopping and thresholds */
  valFraction: number;
  bootstrap: { resamples: number };
  /**
   * 'global' (default): volumes enter the encoder as the preset's global view; 'full': the whole cached volume at
   * its own resolution (multi-resolution presets; the encoder is fully convolutional). Records of a 'full'
   * evaluation carry the variant suffix 'full', so both scales sit side by side. Segmentation is always full.
   * 'crop': the crop-scale readout, identical for every arm: zero-shot, retrieval and the linear probe read the five
   * lobe crops of `crop.shape` voxels at the cache's resolution (data/views.ts lobeCropViews; the cache needs organ
   * masks), pooled by their mean, after the encoder's BatchNorm statistics are recalibrated on the evaluation-train
   * volumes' crops; fine-tuning trains on the crops; records carry the suffix 'crop'; segmentation and report
   * generation do not run.
   */
  scale?: 'global' | 'full' | 'crop';
  crop?: { shape: [number, number, number] };
  /** prompt templates ensembled (1 = CT-CLIP's single pair); labels: a subset of the cache's labels (default all) */
  zeroshot: { templates: number; labels?: string[] };
  transfer: {
    fractions: number[];
    linear: TrainBudget;
    finetune: TrainBudget;
  };
  /** classes: mask class names by label value, background first (default: the synthetic generator's organs) */
  segmentation: {
    classes?: string[];
    fractions: number[];
    modes: ('frozen' | 'finetune')[];
    epochs: number;
    batchSize: number;
    lr: number;
    patch: [number, number, number];
    overlap: number;
    overlays: number;
    limitTest?: number;
  };
  reportgen: {
    epochs: number;
    batchSize: number;
    lr: number;
    freezeEncoder: boolean;
    maxLength: number;
    beams: number;
    limitTest?: number;
    decoder: { dModel: number; layers: number; heads: number; ffn: number; dropout: number };
  };
}
export interface TrainBudget {
  epochs: number;
  patience: number;
  batchSize: number;
  lr: number;
  weightDecay: number;
}

const dir = () => join(packageRoot(), 'configs', 'eval');
export const evalConfigNames = (): string[] =>
  readdirSync(dir())
    .filter((f) => f.endsWith('.json'))
    .map((f) => f.slice(0, -5))
    .sort();

export function loadEvalConfig(nameOrPath: string): EvalConfig {
  const path = nameOrPath.endsWith('.json') ? nameOrPath : join(dir(), `${nameOrPath}.json`);
  if (!existsSync(path))
    throw new Error(`evaluation config '${nameOrPath}' not found (built-in: ${evalConfigNames().join(', ')})`);
  let c: EvalConfig;
  try {
    c = JSON.parse(readFileSync(path, 'utf8')) as EvalConfig;
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`);
  }
  const bad: string[] = [];
  if (!(c.valFraction > 0 && c.valFraction < 1)) bad.push(`valFraction must be in (0, 1) (got ${c.valFraction})`);
  if (!(Number.isInteger(c.bootstrap?.resamples) && c.bootstrap.resamples >= 100))
    bad.push(`bootstrap.resamples must be an integer ≥ 100 (got ${c.bootstrap?.resamples})`);
  for (const f of [...(c.transfer?.fractions ?? []), ...(c.segmentation?.fractions ?? [])])
    if (!(f > 0 && f <= 1)) bad.push(`label fraction ${f} is not in (0, 1]`);
  if (c.scale !== undefined && c.scale !== 'global' && c.scale !== 'full' && c.scale !== 'crop')
    bad.push(`scale must be 'global', 'full' or 'crop' (got ${JSON.stringify(c.scale)})`);
  const shape = c.crop?.shape;
  if (
    c.scale === 'crop' &&
    !(Array.isArray(shape) && shape.length === 3 && shape.every((n) => Number.isInteger(n) && n >= 8))
  )
    bad.push(`scale 'crop' needs crop.shape, three integers ≥ 8 (got ${JSON.stringify(shape)})`);
  if (bad.length) throw new Error(`${path}: ${bad.join('; ')}`);
  return c;
}

/** Short, stable fingerprint of a JSON-able value (key order normalised). */
export function hashJson(v: unknown): string {
  const canon = (x: unknown): unknown =>
    Array.isArray(x)
      ? x.map(canon)
      : x && typeof x === 'object'
        ? Object.fromEntries(
            Object.keys(x)
              .sort()
              .map((k) => [k, canon((x as Record<string, unknown>)[k])]),
          )
        : x;
  return createHash('sha256')
    .update(JSON.stringify(canon(v)))
    .digest('hex')
    .slice(0, 16);
}
