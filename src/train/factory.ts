// Builds the T3D model from a pre-training config's `model` section, and loads trained checkpoints.
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import * as torch from '../torch/index.js';
import { ResNet3d } from '../models/resnet3d.js';
import { ViT3d } from '../models/vit3d.js';
import { BertModel, bertConfig, loadBertFromPretrained } from '../models/bert.js';
import { type ClipModel, T3dModel, type VisionEncoder } from '../models/t3d.js';
import { WordPieceTokenizer } from '../text/wordpiece.js';
import { inputTransform, type InputTransform } from '../data/input-transform.js';
import { resolvePreset, type Preset } from '../data/presets.js';
import { type CheckpointConfig, type PretrainConfig, isImported } from './config.js';
import { modelFormat } from './formats/index.js';
import { MODEL_FILES, resolveCheckpoint } from './checkpoint.js';
import { MANIFEST } from '../util/manifest.js';
import { readJsonFile } from '../util/files.js';

/**
 * The 3D CNN encoders' weight layout unless the config says otherwise. Channels-last weights make every convolution
 * return channels-last maps, which oneDNN's 3D kernels run faster on CPU (BENCHMARKS.md).
 */
export const DEFAULT_MEMORY_FORMAT: torch.MemoryFormat = 'channels-last';

export function buildVisionEncoder(m: PretrainConfig['model'], imageShape: [number, number, number]): VisionEncoder {
  const v = m.vision;
  if (v.kind === 'resnet3d') {
    const encoder = new ResNet3d({
      depth: v.depth,
      widenFactor: v.widenFactor,
      conv1Kernel: v.conv1Kernel,
      conv1Stride: v.conv1Stride,
      noMaxPool: v.noMaxPool,
      norm: v.norm,
    });
    // configs from before the option have none and get the default
    const memoryFormat = v.memoryFormat ?? DEFAULT_MEMORY_FORMAT;
    return memoryFormat === 'channels-last' ? encoder.to({ memoryFormat }) : encoder;
  }
  return new ViT3d({
    imageSize: imageShape,
    patchSize: v.patchSize,
    hiddenSize: v.hiddenSize,
    depth: v.depth,
    numHeads: v.numHeads,
  });
}

/** The model; `vocabSize` sizes a from-scratch BERT's embedding table to the tokenizer. */
export function buildT3dModel(
  m: PretrainConfig['model'],
  imageShape: [number, number, number],
  vocabSize: number,
): T3dModel {
  const text =
    'pretrained' in m.text
      ? // the pooler is unused: T3D takes [CLS] states
        loadBertFromPretrained(String(m.text.pretrained), { allowMissingPooler: true })
      : new BertModel(bertConfig({ ...m.text, vocab_size: vocabSize }, 'model.text'));
  if (m.freezeText) text.freeze();
  return new T3dModel(buildVisionEncoder(m, imageShape), text, m);
}

export interface LoadedCheckpoint {
  /** a pre-training run's config, or an imported model's (`t3d import`, train/formats/) */
  config: CheckpointConfig;
  model: ClipModel;
  /** absent for an image-only model (a published model imported without its text tower) */
  tokenizer?: WordPieceTokenizer;
  /** the preprocessing the model was trained with, and the input transform it defines */
  preset: Preset;
  transform: InputTransform;
  /** the checkpoint folder loaded */
  dir: string;
}

/**
 * A checkpoint folder (verified) or a run folder (its newest intact checkpoint) → model in eval mode, tokenizer, and
 * the input transform of its preset (stored in the config; checkpoints from before that name it). An imported
 * model's run is rebuilt by its format from the architecture its config stores.
 * Skipped damaged checkpoints and unverifiable old ones are reported through `log` (default: stderr).
 */
export function loadT3dCheckpoint(
  given: string,
  log = (line: string) => console.error(`t3d: ${line}`),
): LoadedCheckpoint {
  if (!existsSync(given)) throw new Error(`${given}: no such checkpoint or run folder`);
  // an image-only import has no tokenizer.json; every other checkpoint needs one (checked below)
  const dir = resolveCheckpoint(given, { requires: MODEL_FILES.filter((f) => f !== 'tokenizer.json'), log });
  if (!dir) throw new Error(`${given}: neither a checkpoint folder nor a run folder with checkpoints`);
  const config = readJsonFile<CheckpointConfig>(join(dir, 'config.json'));
  const tokenizerPath = join(dir, 'tokenizer.json');
  const imageOnly = isImported(config) && !modelFormat(config.imported.format).textAligned;
  if (!imageOnly && !existsSync(tokenizerPath)) throw new Error(`${dir}: no tokenizer.json`);
  const tokenizer = imageOnly ? undefined : WordPieceTokenizer.fromTokenizerJson(tokenizerPath);
  if (isImported(config)) {
    const preset = resolvePreset(config.data.preset);
    const { format, architecture } = config.imported;
    const model = modelFormat(format).load(architecture, join(dir, 'model.safetensors'));
    return { config, model, tokenizer, preset, transform: inputTransform(preset), dir };
  }
  if (!tokenizer) throw new Error(`${dir}: no tokenizer.json`); // (narrows the type: checked above)
  // The text encoder's weights come from the checkpoint, never from the original pretrained folder.
  const text =
    'pretrained' in config.model.text
      ? { ...readPretrainedConfig(String(config.model.text.pretrained)) }
      : config.model.text;
  const preset = resolvePreset(config.data.preset);
  const transform = inputTransform(preset);
  const model = buildT3dModel({ ...config.model, text, freezeText: false }, transform.inputShape, tokenizer.vocabSize);
  torch.loadModule(model, join(dir, 'model.safetensors'));
  model.eval();
  return { config, model, tokenizer, preset, transform, dir };
}

/** A pre-training run's checkpoint, with the model's TMA parts (not an imported model). */
export interface LoadedRun extends LoadedCheckpoint {
  config: PretrainConfig;
  tokenizer: WordPieceTokenizer;
  model: T3dModel;
}

/** loadT3dCheckpoint for what only our own pre-training runs have (the TMA heads, the objective's settings). */
export function loadRunCheckpoint(given: string, log?: (line: string) => void): LoadedRun {
  const loaded = loadT3dCheckpoint(given, log);
  if (isImported(loaded.config) || !(loaded.model instanceof T3dModel)) {
    loaded.model.dispose();
    throw new Error(`${given}: an imported model, not a pre-training run (it has no TMA heads)`);
  }
  return loaded as LoadedRun;
}

/** A Hugging Face model folder as given, or a `t3d pretrain-text` run folder's newest intact checkpoint. */
export function pretrainedTextDir(given: string): string {
  // a Hugging Face folder (perhaps sharded) has no manifest; sealed checkpoint folders are verified
  if (existsSync(join(given, 'config.json')) && !existsSync(join(given, MANIFEST))) return given;
  const dir = resolveCheckpoint(given, {
    requires: ['config.json', 'model.safetensors'],
    log: (l) => console.error(`t3d: ${l}`),
  });
  if (!dir)
    throw new Error(
      `model.text.pretrained ${given}: neither a model folder (config.json + model.safetensors) nor a pretrain-text ` +
        `run with checkpoints`,
    );
  return dir;
}

function readPretrainedConfig(dir: string): Record<string, number | string> {
  return readJsonFile<Record<string, number | string>>(join(dir, 'config.json'));
}
