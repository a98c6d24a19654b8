// Published models our commands can run (docs/ARCHITECTURE.md §2, "Imported models"): one file per released
// format, listed in MODEL_FORMATS. `t3d import <format> <folder>` asks the format to read the released folder, and
// loading an imported run asks it to rebuild the model from the architecture it stored; nothing else branches on a
// format's name.
import { type ClipModel, type VisionEncoder } from '../../models/t3d.js';
import { type WordPieceTokenizer } from '../../text/wordpiece.js';
import { m3dClip } from './m3d-clip.js';
import { merlin } from './merlin.js';
import { colipri } from './colipri.js';

/** What a format found in a released folder. */
export interface ReleasedModel {
  /** everything `load` and `visionEncoder` need, stored in the run's config.json */
  architecture: Record<string, unknown>;
  /**
   * a safetensors file with the released key names, copied into the run: the released file itself, or one the
   * format wrote into `scratch` from another container (a PyTorch .pt)
   */
  weights: string;
  /** the text tower's tokenizer and the longest report it was trained on, in tokens; absent: an image-only model */
  text?: { tokenizer: WordPieceTokenizer; maxTokens: number };
  /** the built-in preset (presets/<name>.json) with the model's own preprocessing */
  preset: string;
  /**
   * the (D, H, W) input the model was trained at, when it takes no other (a ViT's position table): the preset's
   * global shape must equal it; absent for a convolutional encoder, which takes any shape
   */
  inputShape?: [number, number, number];
  /** the released files read (hashed into the run's config) */
  files: string[];
}

export interface ModelFormat {
  /** the name `t3d import` takes */
  name: string;
  /** one line: the model, its licence, what it holds */
  description: string;
  /** the text tower is aligned with the volumes (zero-shot and retrieval apply) */
  textAligned: boolean;
  /** reads and checks a released folder (`scratch`: an empty folder, removed after the import); errors name the file */
  read(folder: string, scratch: string): ReleasedModel;
  /** the whole model for a stored architecture, with the weights of `weights` (released names), in eval mode */
  load(architecture: Record<string, unknown>, weights: string): ClipModel;
  /** a fresh vision encoder (train mode), with the released weights when `weights` is given */
  visionEncoder(architecture: Record<string, unknown>, weights?: string): VisionEncoder;
}

export const MODEL_FORMATS: readonly ModelFormat[] = [m3dClip, merlin, colipri];

export function modelFormat(name: string): ModelFormat {
  const f = MODEL_FORMATS.find((m) => m.name === name);
  if (!f) throw new Error(`unknown model format '${name}' (known: ${MODEL_FORMATS.map((m) => m.name).join(', ')})`);
  return f;
}
