// Pre-training configuration: JSON presets in configs/pretrain/, command-line overrides `--set a.b=value`,
// and validation with errors that name the key.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../util/paths.js';
import { type ObjectiveConfig } from '../objectives/t3d.js';
import { tmaProblems } from '../objectives/tma/index.js';
import { DEFAULT_VIEWS, type ViewConfig } from '../data/views.js';
import { type T3dHeadsConfig } from '../models/t3d.js';
import { type MemoryFormat } from '../torch/tensor.js';
import { type Preset } from '../data/presets.js';
import { REPORT_STYLES } from '../data/synth/reports-realistic.js';
import { type CacheSpec } from '../data/synth-cache.js';
import { SYNTH_VERSIONS } from '../data/synth/local-findings.js';

export interface PretrainConfig {
  name: string;
  data: {
    /** preprocessed cache folder; built from `synth` when missing and synth is given */
    cache: string;
    /**
     * generate a synthetic dataset into `<cache>-source` and preprocess it when the cache does not exist;
     * keepSource false deletes the source volumes once the cache is built (half the disk of a large study); version 2
     * adds the findings only local views can see (default 1)
     */
    synth?: CacheSpec['synth'];
    /** a preset's name or path; a run resolves it and stores the preset itself in its config and checkpoints */
    preset: string | Preset;
    trainSplit: string;
    valSplit: string;
    /**
     * a separate cache whose `valSplit` the run validates on (e.g. volumes generated with another seed), so that
     * steps are chosen without the test volumes; the training cache's own `valSplit` when absent
     */
    valCache?: string;
    batchSize: number;
    workers: number;
    prefetch: number;
    views: Partial<ViewConfig>;
    /** report sentence shuffle / drop augmentation */
    textAugment: { shuffleProb: number; dropProb: number };
    maxTokens: number;
  };
  model: {
    vision:
      | {
          kind: 'resnet3d';
          depth: 10 | 18 | 34 | 50;
          widenFactor: number;
          conv1Kernel: number;
          conv1Stride: number;
          noMaxPool: boolean;
          norm: 'batch' | 'group' | 'instance';
          memoryFormat?: MemoryFormat;
        }
      | { kind: 'vit3d'; patchSize: [number, number, number]; hiddenSize: number; depth: number; numHeads: number };
    /** BERT config (HF keys) for a from-scratch text encoder, or a folder with config.json + model.safetensors */
    text: Record<string, number | string> | { pretrained: string };
    freezeText: boolean;
    /** tokenizer.json / vocab.txt; trained on the training reports when absent */
    tokenizer?: string;
    vocabSize: number;
  } & T3dHeadsConfig;
  objective: ObjectiveConfig;
  optim: {
    lr: number;
    weightDecay: number;
    betas: [number, number];
    eps: number;
    warmupSteps: number;
    steps: number;
    gradAccum: number;
    clipNorm: number;
    textLrScale: number;
    /** mixed precision: autocast to bfloat16 (CPU and CUDA) or float16 with dynamic loss scaling (CUDA); default off */
    amp?: 'off' | 'bf16' | 'fp16';
  };
  train: {
    seed: number;
    logEvery: number;
    checkpointEvery: number;
    validateEvery: number;
    keepCheckpoints: number;
    maxConsecutiveNonFinite: number;
  };
}

/**
 * The config.json of a run made by `t3d import` from a published model's files (train/formats/, docs/ARCHITECTURE.md
 * §2): the format, the architecture it read, the released files' hashes, and what inference and evaluation read.
 */
export interface ImportedConfig {
  name: string;
  imported: {
    format: string;
    architecture: Record<string, unknown>;
    /** the released files read, with their sha256 (model.safetensors is copied unchanged) */
    source: { file: string; sha256: string }[];
  };
  /** no training cache: evaluation and indexing take theirs from the command line */
  data: Pick<PretrainConfig['data'], 'trainSplit' | 'valSplit' | 'maxTokens'> & { preset: Preset; cache?: undefined };
}

/** A checkpoint's config.json: a pre-training run's, or an imported model's. */
export type CheckpointConfig = PretrainConfig | ImportedConfig;
export const isImported = (c: CheckpointConfig): c is ImportedConfig => 'imported' in c;

const configDir = () => join(packageRoot(), 'configs', 'pretrain');
export const configNames = (): string[] =>
  readdirSync(configDir())
    .filter((f) => f.endsWith('.json'))
    .map((f) => f.slice(0, -5))
    .sort();

/** A preset by name or a JSON file path. */
export function loadConfig(nameOrPath: string): PretrainConfig {
  const path = nameOrPath.endsWith('.json') ? nameOrPath : join(configDir(), `${nameOrPath}.json`);
  if (!existsSync(path)) throw new Error(`config '${nameOrPath}' not found (built-in: ${configNames().join(', ')})`);
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as PretrainConfig;
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`);
  }
}

/** Applies `a.b.c=value` overrides (value parsed as JSON when it parses, else a string); unknown keys are errors. */
export function applyOverrides(cfg: PretrainConfig, overrides: string[]): PretrainConfig {
  const out = JSON.parse(JSON.stringify(cfg)) as Record<string, unknown>;
  for (const o of overrides) {
    const eq = o.indexOf('=');
    if (eq < 1) throw new Error(`--set ${o}: expected key.path=value`);
    const keys = o.slice(0, eq).split('.');
    const raw = o.slice(eq + 1);
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch {
      value = raw;
    }
    let node = out;
    for (let i = 0; i < keys.length - 1; i++) {
      const next = node[keys[i]!];
      if (typeof next !== 'object' || next === null)
        throw new Error(`--set ${o}: '${keys.slice(0, i + 1).join('.')}' is not a section of the config`);
      node = next as Record<string, unknown>;
    }
    const last = keys[keys.length - 1]!;
    if (!(last in node) && !isOptionalKey(keys.join('.')))
      throw new Error(`--set ${o}: unknown key '${keys.join('.')}'`);
    node[last] = value;
  }
  return out as unknown as PretrainConfig;
}
const isOptionalKey = (k: string) =>
  [
    'data.synth',
    'data.valCache',
    'data.synth.reportStyle',
    'objective.clip.localWeight',
    'model.tokenizer',
    'model.textPooling',
    'model.restoration',
    'objective.restoration',
    'objective.labels',
    'objective.sentenceClip',
    'model.labels',
    'objective.tma.formulation',
    'objective.tma.teacherCodes',
    'objective.tma.sentenceTarget',
    'objective.tma.pool',
    'objective.tma.relativeEpsilon',
    'objective.tma.startStep',
    'objective.tma.clusterHeads',
    'objective.tma.kmeansIterations',
    'objective.tma.kmeansRestarts',
    'objective.tma.freezePrototypesSteps',
    'objective.tma.queueStartStep',
    'objective.tma.queueWhenFull',
    'objective.tma.teacherMomentumSchedule',
    'objective.tma.teacherBatchNorm',
    'objective.tma.averageByCodeView',
    'objective.tma.localToGlobal',
    'objective.tma.shufflePairs',
    'optim.amp',
    'model.vision.memoryFormat',
  ].includes(k) ||
  k.startsWith('data.views.') ||
  k.startsWith('model.text.');

export function validateConfig(c: PretrainConfig): void {
  const problems: string[] = [];
  const pos = (v: unknown, k: string) => {
    if (!(typeof v === 'number' && v > 0)) problems.push(`${k} must be > 0 (got ${JSON.stringify(v)})`);
  };
  const nonneg = (v: unknown, k: string) => {
    if (!(typeof v === 'number' && v >= 0)) problems.push(`${k} must be ≥ 0 (got ${JSON.stringify(v)})`);
  };
  pos(c.data?.batchSize, 'data.batchSize');
  pos(c.optim?.lr, 'optim.lr');
  pos(c.optim?.steps, 'optim.steps');
  pos(c.optim?.gradAccum, 'optim.gradAccum');
  nonneg(c.objective?.clip?.weight, 'objective.clip.weight');
  const clipLocal = c.objective?.clip?.localWeight;
  if (clipLocal !== undefined) nonneg(clipLocal, 'objective.clip.localWeight');
  if ((clipLocal ?? 0) > 0 && !((c.data?.views?.numLocal ?? DEFAULT_VIEWS.numLocal) > 0))
    problems.push('objective.clip.localWeight > 0 needs local views (data.views.numLocal ≥ 1)');
  nonneg(c.objective?.tma?.weight, 'objective.tma.weight');
  const start = c.objective?.tma?.startStep;
  if (start !== undefined && !(Number.isInteger(start) && start >= 0))
    problems.push(`objective.tma.startStep must be an integer ≥ 0 (got ${JSON.stringify(start)})`);
  nonneg(c.objective?.ssl?.weight, 'objective.ssl.weight');
  if (c.objective?.labels) nonneg(c.objective.labels.weight, 'objective.labels.weight');
  if (c.objective?.sentenceClip) nonneg(c.objective.sentenceClip.weight, 'objective.sentenceClip.weight');
  const rec = c.objective?.restoration;
  if (rec) {
    nonneg(rec.weight, 'objective.restoration.weight');
    if (!(rec.maskRatio > 0 && rec.maskRatio < 1))
      problems.push(`objective.restoration.maskRatio must be in (0, 1) (got ${JSON.stringify(rec.maskRatio)})`);
    if (!(Number.isInteger(rec.patchSize) && rec.patchSize >= 1))
      problems.push(
        `objective.restoration.patchSize must be a positive integer (got ${JSON.stringify(rec.patchSize)})`,
      );
  }
  pos(c.model?.embedDim, 'model.embedDim');
  pos(c.model?.prototypes, 'model.prototypes');
  pos(c.train?.checkpointEvery, 'train.checkpointEvery');
  if (c.data?.batchSize < 2 && (c.objective?.clip?.weight ?? 0) > 0)
    problems.push('data.batchSize must be ≥ 2 for a contrastive loss');
  if (c.optim?.amp !== undefined && !['off', 'bf16', 'fp16'].includes(c.optim.amp))
    problems.push(`optim.amp must be 'off', 'bf16' or 'fp16' (got ${JSON.stringify(c.optim.amp)})`);
  if (!['resnet3d', 'vit3d'].includes(c.model?.vision?.kind))
    problems.push(`model.vision.kind must be 'resnet3d' or 'vit3d'`);
  const mf = (c.model?.vision as { memoryFormat?: unknown } | undefined)?.memoryFormat;
  if (mf !== undefined && (c.model.vision.kind !== 'resnet3d' || (mf !== 'channels-last' && mf !== 'contiguous'))) {
    problems.push(
      `model.vision.memoryFormat must be 'channels-last' or 'contiguous', for a resnet3d encoder (got ` +
        `${JSON.stringify(mf)})`,
    );
  }
  if (c.objective?.tma) problems.push(...tmaProblems(c.objective.tma as unknown as Record<string, unknown>));
  const re = c.objective?.tma?.relativeEpsilon;
  if (re !== undefined && typeof re !== 'boolean')
    problems.push(`objective.tma.relativeEpsilon must be true or false (got ${JSON.stringify(re)})`);
  const keep = c.data?.synth?.keepSource;
  if (keep !== undefined && typeof keep !== 'boolean')
    problems.push(`data.synth.keepSource must be true or false (got ${JSON.stringify(keep)})`);
  const style = c.data?.synth?.reportStyle;
  if (style !== undefined && !REPORT_STYLES.includes(style))
    problems.push(`data.synth.reportStyle must be one of ${REPORT_STYLES.join(', ')} (got ${JSON.stringify(style)})`);
  const version = c.data?.synth?.version;
  if (version !== undefined && !SYNTH_VERSIONS.includes(version))
    problems.push(`data.synth.version must be one of ${SYNTH_VERSIONS.join(', ')} (got ${JSON.stringify(version)})`);
  const src = c.data?.views?.localSource;
  if (src !== undefined && src !== 'global' && src !== 'cache')
    problems.push(`data.views.localSource must be 'global' or 'cache' (got ${JSON.stringify(src)})`);
  const anchor = c.data?.views?.localAnchor;
  if (anchor !== undefined && !['uniform', 'foreground', 'report', 'lobes'].includes(anchor))
    problems.push(
      `data.views.localAnchor must be 'uniform', 'foreground', 'report' or 'lobes' (got ${JSON.stringify(anchor)})`,
    );
  if (problems.length) throw new Error(`invalid pre-training config '${c.name}': ${problems.join('; ')}`);
}
