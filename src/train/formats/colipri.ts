// COLIPRI (MIT), as docs/models/colipri.md describes its release: model.safetensors (the whole CLIP model's state
// dict) and the CXR-BERT tokenizer's vocab.txt. Its architecture and key names:
//   image_encoder.backbone  a Primus ViT (nnU-Net): down_projection.proj (Conv3d, kernel = stride = patch),
//                   eva.blocks.N (EVA blocks: norm1, attn.{q,k,v}_proj — k without bias — with a 3D rotary
//                   embedding, attn.proj, norm2, SwiGLU mlp.{fc1_g, fc1_x, norm, fc2}), eva.norm; its segmentation
//                   decoder (up_projection) and mask_token are not used
//   image_encoder.projector  Conv3d 1×1×1 to the shared width on every token; image_encoder.pooler  attention pool
//   text_encoder.backbone  a CXR-BERT (transformers' BertModel names, under `bert.` as CXR-BERT saves them);
//                   text_encoder.pooler  attention pool over its last hidden states; no text projection
//   logit_scale     CLIP's temperature, stored as its log
// Primus' head count and the pools' are not in the weights' shapes: the released model's values are built in, and
// an optional config.json in the folder (image_heads, pooler_heads, input_size) overrides them.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { BertModel, bertConfig, type BertConfig } from '../../models/bert.js';
import { ColipriVisionEncoder, type PrimusConfig } from '../../models/primus.js';
import { ClipModel } from '../../models/t3d.js';
import { WordPieceTokenizer } from '../../text/wordpiece.js';
import { readJsonFile } from '../../util/files.js';
import { type ModelFormat, type ReleasedModel } from './index.js';
import { clipKeyMap, type KeyRule, loadReleased, releasedShapes } from './released-weights.js';

interface ColipriArchitecture {
  vision: PrimusConfig;
  text: BertConfig;
  /** the text backbone's keys sit under `bert.` (CXR-BERT's CXRBertModel) */
  bertPrefix: string;
  /** the released BertModel kept its (unused by COLIPRI's pooling) pooler */
  textPooler: boolean;
}

/** Primus' sizes (dynamic-network-architectures' _PRIMUS_CONFIGS): width → heads. COLIPRI's is Primus-M. */
const PRIMUS_HEADS = new Map([
  [396, 6],
  [792, 12],
  [864, 12],
  [1056, 16],
]);
const INPUT_SIZE: [number, number, number] = [192, 192, 192];
/** every BERT Google and Microsoft (CXR-BERT) released has 64-dimensional heads; the pools: our choice, the same */
const HEAD_DIM = 64;
const MAX_TOKENS = 512;
const B = 'image_encoder.backbone.';

function fullKey(name: string, a: ColipriArchitecture): KeyRule | 'unused' | undefined {
  if (name.startsWith(B)) {
    const k = name.slice(B.length);
    if (k === 'mask_token' || k.startsWith('up_projection.')) return 'unused';
    if (/^(down_projection\.proj|eva\.norm)\.(weight|bias)$/.test(k)) return { to: `visual.backbone.${k}` };
    if (
      /^eva\.blocks\.\d+\.(norm[12]|attn\.(q_proj|v_proj|proj)|mlp\.(fc1_g|fc1_x|norm|fc2))\.(weight|bias)$/.test(k) ||
      /^eva\.blocks\.\d+\.attn\.k_proj\.weight$/.test(k)
    )
      return { to: `visual.backbone.${k}` };
    return undefined;
  }
  const head = /^image_encoder\.(projector\.(weight|bias)|pooler\.attention\..+)$/.exec(name);
  if (head) return { to: `visual.${head[1]}` };
  const textPool = /^text_encoder\.pooler\.(attention\..+)$/.exec(name);
  if (textPool) return { to: `text_pooler.${textPool[1]}` };
  const t = `text_encoder.backbone.${a.bertPrefix}`;
  if (name.startsWith(t)) {
    const k = name.slice(t.length);
    if (k === 'embeddings.position_ids' || k === 'embeddings.token_type_ids') return 'unused';
    return { to: `text.${k}` };
  }
  // CXR-BERT's masked-language-model and projection heads are saved with it; COLIPRI pools the hidden states
  if (/^text_encoder\.backbone\.(cls|cls_projection_head)\./.test(name)) return 'unused';
  if (name === 'logit_scale') return { to: 'logit_scale.logit_scale' };
  return undefined;
}

const keyMap = clipKeyMap(fullKey);

function read(folder: string): ReleasedModel {
  const need = (f: string) => {
    const path = join(folder, f);
    if (!existsSync(path))
      throw new Error(
        `${folder}: no ${f} (a COLIPRI folder holds model.safetensors and the CXR-BERT tokenizer's vocab.txt)`,
      );
    return path;
  };
  const [weights, vocab] = [need('model.safetensors'), need('vocab.txt')];
  const configPath = join(folder, 'config.json');
  const c = existsSync(configPath) ? readJsonFile<Record<string, unknown>>(configPath) : {};
  const shapes = releasedShapes(weights);
  const shape = (k: string): number[] => {
    const s = shapes.get(k);
    if (!s) throw new Error(`${weights}: no '${k}': not COLIPRI's weights`);
    return s;
  };
  const [embedDim, inCh, patch, ph, pw] = shape(`${B}down_projection.proj.weight`) as number[];
  if (inCh !== 1 || patch !== ph || patch !== pw)
    throw new Error(
      `${weights}: the patch embedding must take 1 channel in cubic patches, got ${inCh}, ${patch}×${ph}×${pw}`,
    );
  const [outDim, projIn, ...kernel] = shape('image_encoder.projector.weight') as number[];
  if (projIn !== embedDim || kernel.join() !== '1,1,1')
    throw new Error(`${weights}: image_encoder.projector must be a 1×1×1 Conv3d from ${embedDim} channels`);
  const count = (re: RegExp) => new Set([...shapes.keys()].map((k) => re.exec(k)?.[1]).filter(Boolean)).size;
  const positive = (k: string, fallback: number | undefined): number => {
    const v = c[k] ?? fallback;
    if (!(Number.isInteger(v) && (v as number) > 0))
      throw new Error(
        `${configPath}: ${k} must be a positive integer, got ${JSON.stringify(v)}` +
          (c[k] === undefined ? ` (a ${embedDim}-wide Primus is not a released size: give it in config.json)` : ''),
      );
    return v as number;
  };
  const inputSize = (c.input_size ?? INPUT_SIZE) as [number, number, number];
  if (!(Array.isArray(inputSize) && inputSize.length === 3 && inputSize.every((s) => s > 0 && s % patch === 0)))
    throw new Error(
      `${configPath}: input_size must be 3 multiples of the ${patch} patch, got ${JSON.stringify(inputSize)}`,
    );
  const vision: PrimusConfig = {
    inputSize,
    patch,
    embedDim,
    depth: count(/^image_encoder\.backbone\.eva\.blocks\.(\d+)\./),
    heads: positive('image_heads', PRIMUS_HEADS.get(embedDim)),
    mlpHidden: shape(`${B}eva.blocks.0.mlp.fc1_g.weight`)[0]!,
    outDim,
    poolHeads: positive('pooler_heads', Math.max(1, outDim / HEAD_DIM)),
  };
  const bertPrefix = shapes.has('text_encoder.backbone.bert.embeddings.word_embeddings.weight') ? 'bert.' : '';
  const t = `text_encoder.backbone.${bertPrefix}`;
  const [vocabSize, hidden] = shape(`${t}embeddings.word_embeddings.weight`) as [number, number];
  if (hidden !== outDim)
    throw new Error(`${weights}: the text width ${hidden} differs from the image projector's ${outDim}`);
  const text = bertConfig(
    {
      vocab_size: vocabSize,
      hidden_size: hidden,
      num_hidden_layers: count(/^text_encoder\.backbone\.(?:bert\.)?encoder\.layer\.(\d+)\./),
      num_attention_heads: hidden / HEAD_DIM,
      intermediate_size: shape(`${t}encoder.layer.0.intermediate.dense.weight`)[0],
      max_position_embeddings: shape(`${t}embeddings.position_embeddings.weight`)[0],
      type_vocab_size: shape(`${t}embeddings.token_type_embeddings.weight`)[0],
    },
    `${weights} (text_encoder.backbone)`,
  );
  const architecture: ColipriArchitecture = {
    vision,
    text,
    bertPrefix,
    textPooler: shapes.has(`${t}pooler.dense.weight`),
  };
  const maxTokens = Math.min(MAX_TOKENS, text.max_position_embeddings);
  const tokenizer = WordPieceTokenizer.fromVocabTxt(vocab, { lowercase: true, modelMaxLength: maxTokens });
  if (tokenizer.vocabSize > vocabSize)
    throw new Error(`${vocab}: ${tokenizer.vocabSize} tokens, but the text encoder embeds only ${vocabSize}`);
  return {
    architecture: architecture as unknown as Record<string, unknown>,
    weights,
    text: { tokenizer, maxTokens },
    preset: 'colipri',
    inputShape: inputSize,
    files: [weights, vocab, ...(existsSync(configPath) ? [configPath] : [])],
  };
}

function loaded<M extends { dispose(): void }>(module: M, load: (m: M) => void): M {
  try {
    load(module);
  } catch (e) {
    module.dispose();
    throw e;
  }
  return module;
}

export const colipri: ModelFormat = {
  name: 'colipri',
  description:
    'COLIPRI (MIT): Primus ViT + CXR-BERT with attention pooling, image and text (model.safetensors, vocab.txt)',
  textAligned: true,
  read,
  load(architecture, weights) {
    const a = architecture as unknown as ColipriArchitecture;
    const model = new ClipModel(
      new ColipriVisionEncoder(a.vision),
      new BertModel(a.text, { addPoolingLayer: a.textPooler }),
      {
        embedDim: a.vision.outDim,
        projectionHidden: 0,
        projection: 'none',
        textPooling: 'attention',
        textPoolHeads: a.vision.poolHeads,
      },
    );
    return loaded(model, (m) => loadReleased(m, weights, keyMap(a, false))).eval();
  },
  visionEncoder(architecture, weights) {
    const a = architecture as unknown as ColipriArchitecture;
    const encoder = new ColipriVisionEncoder(a.vision);
    return weights ? loaded(encoder, (e) => loadReleased(e, weights, keyMap(a, true))) : encoder;
  },
};
