// What is evaluated: a trained checkpoint, or the same architecture with fresh (random) weights. Gives the
// tasks fresh copies of the vision encoder (fine-tuning changes weights) and the provenance every result
// carries: checkpoint id (hash of its weights), config hash, pre-training seed.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as torch from '../torch/index.js';
import { type VisionEncoder } from '../models/t3d.js';
import { buildVisionEncoder, loadT3dCheckpoint, type LoadedCheckpoint } from '../train/factory.js';
import { checkpointId } from '../train/checkpoint.js';
import { isImported, type PretrainConfig } from '../train/config.js';
import { modelFormat } from '../train/formats/index.js';
import { hashJson } from './config.js';

export interface EvalTarget {
  init: 'pretrained' | 'random';
  /** the checkpoint folder (for random init: the one whose architecture is used) */
  checkpointDir: string;
  /** hash of model.safetensors (pretrained) or of the architecture and seed (random) */
  checkpointId: string;
  configHash: string;
  pretrainSeed: number;
  /** the run folder's metrics.jsonl (pre-training loss curves), when there is one */
  metricsPath?: string;
  /** a text tower aligned with the volumes exists (CLIP weight > 0): zero-shot and retrieval apply */
  textAligned: boolean;
  loaded: LoadedCheckpoint;
  /** a fresh vision encoder (pre-trained or seeded random weights), in train mode; the caller disposes it */
  makeEncoder(): VisionEncoder;
}

/** Loads the `prefix`-named weights of a whole-model file into a sub-module. */
function loadPrefixed(module: VisionEncoder, path: string, prefix: string): void {
  const { tensors } = torch.loadSafetensors(path);
  try {
    module.loadStateDict(
      new Map([...tensors].filter(([k]) => k.startsWith(prefix)).map(([k, t]) => [k.slice(prefix.length), t])),
    );
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  } finally {
    torch.dispose([...tensors.values()]);
  }
}

export function evalTarget(checkpoint: string, o: { init?: 'pretrained' | 'random'; seed?: number } = {}): EvalTarget {
  const init = o.init ?? 'pretrained';
  const loaded = loadT3dCheckpoint(checkpoint);
  const { config, dir } = loaded;
  const shape = loaded.preset.shape;
  const randomSeed = o.seed ?? 0;
  const runMetrics = join(dirname(dirname(dir)), 'metrics.jsonl');
  const weights = join(dir, 'model.safetensors');
  // an imported model: its format builds the encoder and reads the released weights; it has no training seed
  const imported = isImported(config) ? { ...config.imported, format: modelFormat(config.imported.format) } : undefined;
  const vision = isImported(config) ? config.imported.architecture : config.model.vision;
  return {
    init,
    checkpointDir: dir,
    checkpointId: init === 'pretrained' ? checkpointId(dir) : `random-${hashJson({ vision, seed: randomSeed })}`,
    configHash: hashJson(config),
    pretrainSeed: init === 'random' ? randomSeed : isImported(config) ? 0 : config.train.seed,
    metricsPath: init === 'pretrained' && existsSync(runMetrics) ? runMetrics : undefined,
    textAligned:
      init === 'pretrained' &&
      (imported ? imported.format.textAligned : !isImported(config) && config.objective.clip.weight > 0),
    loaded,
    makeEncoder: () => {
      if (init === 'random') torch.manualSeed(randomSeed);
      if (imported)
        return imported.format.visionEncoder(imported.architecture, init === 'pretrained' ? weights : undefined);
      const encoder = buildVisionEncoder((config as PretrainConfig).model, shape);
      if (init === 'pretrained') loadPrefixed(encoder, weights, 'visual.');
      return encoder;
    },
  };
}
