// Merlin (MIT), image side: the released CLIP checkpoint is one PyTorch .pt (a torch.save'd state dict,
// i3_resnet_clinical_longformer_best_clip_04-02-2024_23-21-36_epoch_99.pt), read by the safe .pt reader; its image
// encoder's tensors are written to safetensors under their released names (`encode_image.i3_resnet.*`; the
// five-year checkpoint's bare names too). The text tower, a Clinical-Longformer, is not imported: the model is
// image-only (no zero-shot, retrieval or text search), its volume embeddings serve probing, similar cases and export.
//   encode_image.i3_resnet.{conv1, bn1, layer1..4}  → visual.i3_resnet.* (models/merlin.ts, MerlinVisionEncoder)
//   encode_image.i3_resnet.contrastive_head  Conv3d(C → 512, 1×1×1) on the pooled features → visual_projection, a
//                                            Linear with bias (the kernel's 1×1×1 dropped)
//   encode_image.i3_resnet.classifier        the 1692 phenotype logits: not used
// The facts and their sources are in docs/models/merlin.md.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../../torch/index.js';
import { type Tensor } from '../../torch/index.js';
import { type MerlinImageConfig, MerlinVisionEncoder } from '../../models/merlin.js';
import { ClipModel } from '../../models/t3d.js';
import { readMerlinImageWeights } from '../merlin-load.js';
import { type ModelFormat, type ReleasedModel } from './index.js';
import { type KeyMap, loadReleased } from './released-weights.js';

interface MerlinArchitecture extends MerlinImageConfig {
  /** the released names' prefix: 'encode_image.i3_resnet.' (CLIP checkpoint) or '' (five-year checkpoint) */
  prefix: string;
}

const RELEASED_FILE = 'i3_resnet_clinical_longformer_best_clip_04-02-2024_23-21-36_epoch_99.pt';

const keyMap =
  (a: MerlinArchitecture, visualOnly: boolean): KeyMap =>
  (name) => {
    if (!name.startsWith(a.prefix)) return undefined;
    const k = name.slice(a.prefix.length);
    if (k.startsWith('classifier.')) return 'unused';
    if (k.startsWith('contrastive_head.')) {
      if (visualOnly) return 'unused';
      return k === 'contrastive_head.weight'
        ? { to: 'visual_projection.weight', convert: (t: Tensor) => t.flatten(1) }
        : { to: `visual_projection.${k.slice('contrastive_head.'.length)}` };
    }
    return { to: `${visualOnly ? '' : 'visual.'}i3_resnet.${k}` };
  };

function read(folder: string, scratch: string): ReleasedModel {
  const pts = readdirSync(folder).filter((f) => f.endsWith('.pt'));
  if (pts.length !== 1)
    throw new Error(
      `${folder}: ${pts.length ? `${pts.length} .pt files (${pts.join(', ')})` : 'no .pt file'}; a Merlin folder ` +
        `holds one (the released ${RELEASED_FILE})`,
    );
  const pt = join(folder, pts[0]!);
  const { released, prefix, config } = readMerlinImageWeights(pt);
  const weights = join(scratch, 'model.safetensors');
  try {
    torch.saveSafetensors(weights, released, { format: 'pt', converted_from: pts[0]! });
  } finally {
    torch.dispose([...released.values()]);
  }
  const architecture: MerlinArchitecture = { ...config, prefix };
  return {
    architecture: architecture as unknown as Record<string, unknown>,
    weights,
    preset: 'merlin',
    files: [pt],
  };
}

function build<T extends torch.nn.Module>(module: T, weights: string, map: KeyMap): T {
  try {
    loadReleased(module, weights, map);
  } catch (e) {
    module.dispose();
    throw e;
  }
  return module;
}

export const merlin: ModelFormat = {
  name: 'merlin',
  description: "Merlin's image encoder (MIT): I3D-inflated ResNet-152, image only (one torch.save .pt)",
  textAligned: false,
  read,
  load(architecture, weights) {
    const a = architecture as unknown as MerlinArchitecture;
    const model = new ClipModel(new MerlinVisionEncoder(a), undefined, {
      embedDim: a.embedDim,
      projectionHidden: 0,
      projectionBias: true,
    });
    return build(model, weights, keyMap(a, false)).eval();
  },
  visionEncoder(architecture, weights) {
    const a = architecture as unknown as MerlinArchitecture;
    const encoder = new MerlinVisionEncoder(a);
    return weights ? build(encoder, weights, keyMap(a, true)) : encoder;
  },
};
