// Merlin's image encoder from its released .pt state dict, read by the safe .pt reader (no Python, no pickle code
// run). The full CLIP checkpoint holds `encode_image.i3_resnet.*` beside the Longformer text tower
// (`encode_text.*`) and `logit_scale`, which are left out; the five-year checkpoint holds the I3ResNet's keys bare.
// The architecture's sizes (stages, width, heads) are read from the weights' shapes, so a reduced copy with the
// same key pattern loads too.
import { basename } from 'node:path';
import { type Tensor } from '../torch/index.js';
import { loadTorchPt, stateDictOf } from '../io/torch-pt/load.js';
import { type MerlinImageConfig, MerlinImageEncoder } from '../models/merlin.js';

const FULL = 'encode_image.i3_resnet.';

export interface MerlinImageImport {
  encoder: MerlinImageEncoder;
  config: MerlinImageConfig;
  /** keys of the file that are not the image encoder's (the text tower, logit_scale), left unused */
  skipped: string[];
}

/** Builds the encoder (eval mode, CPU, float32) and loads its weights strictly; errors name the file. */
export function loadMerlinImageEncoder(ptPath: string): MerlinImageImport {
  const file = loadTorchPt(ptPath);
  try {
    const all = stateDictOf(file, ptPath);
    const bare = !all.has(`${FULL}conv1.weight`);
    if (bare && !all.has('conv1.weight'))
      throw new Error(`${ptPath}: no ${FULL}conv1.weight (nor conv1.weight): not a Merlin checkpoint`);
    const image = new Map<string, Tensor>();
    const skipped: string[] = [];
    for (const [k, t] of all) {
      if (!bare && k.startsWith(FULL)) image.set(`i3_resnet.${k.slice(FULL.length)}`, t.float());
      else if (bare && !k.startsWith('encode_text.') && k !== 'logit_scale') image.set(`i3_resnet.${k}`, t.float());
      else skipped.push(k);
    }
    const config = configOf(image, ptPath);
    const encoder = new MerlinImageEncoder(config);
    try {
      encoder.loadStateDict(image);
    } catch (err) {
      encoder.dispose();
      throw new Error(`${ptPath}: ${(err as Error).message}`);
    } finally {
      for (const t of image.values()) t.dispose();
    }
    return { encoder: encoder.eval(), config, skipped };
  } finally {
    for (const t of file.tensors) t.dispose();
  }
}

function configOf(sd: Map<string, Tensor>, path: string): MerlinImageConfig {
  const dim0 = (k: string): number => {
    const t = sd.get(`i3_resnet.${k}`);
    if (!t) throw new Error(`${path}: ${basename(path)} lacks ${k}, which Merlin's image encoder has`);
    return t.shape[0]!;
  };
  const layers = [1, 2, 3, 4].map((l) => {
    let n = 0;
    while (sd.has(`i3_resnet.layer${l}.${n}.conv1.weight`)) n++;
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
