// Merlin's image encoder from its released .pt state dict, read by the safe .pt reader (no Python, no pickle code
// run). The full CLIP checkpoint holds `encode_image.i3_resnet.*` beside the Longformer text tower
// (`encode_text.*`) and `logit_scale`, which are left out; the five-year checkpoint holds the I3ResNet's keys bare.
// The architecture's sizes (stages, width, heads) are read from the weights' shapes, so a reduced copy with the
// same key pattern loads too.
import { basename } from 'node:path';
import { type Tensor } from '../torch/index.js';
import { loadTorchPt, stateDictOf } from '../io/torch-pt/load.js';
import { type MerlinImageConfig, MerlinImageEncoder } from '../models/merlin.js';

/** The CLIP checkpoint's prefix of the image encoder's keys. */
export const MERLIN_CLIP_PREFIX = 'encode_image.i3_resnet.';

export interface MerlinImageWeights {
  /** the image encoder's tensors under their released names (float32; the caller disposes them) */
  released: Map<string, Tensor>;
  /** what the released names start with: MERLIN_CLIP_PREFIX, or '' for the bare (five-year) layout */
  prefix: string;
  config: MerlinImageConfig;
  /** keys of the file that are not the image encoder's (the text tower, logit_scale), left unused */
  skipped: string[];
}

/** The image encoder's weights of a Merlin .pt, with its sizes; errors name the file. */
export function readMerlinImageWeights(ptPath: string): MerlinImageWeights {
  const file = loadTorchPt(ptPath);
  const released = new Map<string, Tensor>();
  try {
    const all = stateDictOf(file, ptPath);
    const prefix = all.has(`${MERLIN_CLIP_PREFIX}conv1.weight`) ? MERLIN_CLIP_PREFIX : '';
    if (!prefix && !all.has('conv1.weight'))
      throw new Error(`${ptPath}: no ${MERLIN_CLIP_PREFIX}conv1.weight (nor conv1.weight): not a Merlin checkpoint`);
    const skipped: string[] = [];
    for (const [k, t] of all) {
      const image = prefix ? k.startsWith(prefix) : !k.startsWith('encode_text.') && k !== 'logit_scale';
      if (!image) skipped.push(k);
      // BatchNorm's num_batches_tracked stays an integer
      else released.set(k, t.dtype.startsWith('float') || t.dtype === 'bfloat16' ? t.float() : t.clone());
    }
    const config = configOf(released, prefix, ptPath);
    return { released, prefix, config, skipped };
  } catch (e) {
    for (const t of released.values()) t.dispose();
    throw e;
  } finally {
    for (const t of file.tensors) t.dispose();
  }
}

export interface MerlinImageImport {
  encoder: MerlinImageEncoder;
  config: MerlinImageConfig;
  skipped: string[];
}

/** Builds the encoder (eval mode, CPU, float32) and loads its weights strictly; errors name the file. */
export function loadMerlinImageEncoder(ptPath: string): MerlinImageImport {
  const { released, prefix, config, skipped } = readMerlinImageWeights(ptPath);
  const encoder = new MerlinImageEncoder(config);
  try {
    encoder.loadStateDict(new Map([...released].map(([k, t]) => [`i3_resnet.${k.slice(prefix.length)}`, t])));
  } catch (err) {
    encoder.dispose();
    throw new Error(`${ptPath}: ${(err as Error).message}`);
  } finally {
    for (const t of released.values()) t.dispose();
  }
  return { encoder: encoder.eval(), config, skipped };
}

function configOf(sd: Map<string, Tensor>, prefix: string, path: string): MerlinImageConfig {
  const dim0 = (k: string): number => {
    const t = sd.get(`${prefix}${k}`);
    if (!t) throw new Error(`${path}: ${basename(path)} lacks ${k}, which Merlin's image encoder has`);
    return t.shape[0]!;
  };
  const layers = [1, 2, 3, 4].map((l) => {
    let n = 0;
    while (sd.has(`${prefix}layer${l}.${n}.conv1.weight`)) n++;
    if (!n) throw new Error(`${path}: stage layer${l} has no blocks`);
    return n;
  }) as MerlinImageConfig['layers'];
  return {
    layers,
    width: dim0('conv1.weight'),
    embedDim: dim0('contrastive_head.weight'),
    classes: dim0('classifier.weight'),
  };
}
