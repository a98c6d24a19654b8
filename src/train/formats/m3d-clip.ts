// M3D-CLIP (Apache-2.0), as released: config.json (model_type 'm3d_clip'), model.safetensors, vocab.txt. Its
// architecture and key names (docs/published-models.md has the facts and their sources):
//   vision_encoder  MONAI's ViT (classification=True): PatchEmbeddingBlock 'perceptron' — patches (p1 p2 p3 c)
//                   flattened, `patch_embedding.patch_embeddings.1` Linear(patch voxels → C), learned
//                   `patch_embedding.position_embeddings` (1, N, C) added to the patch tokens only — then a
//                   zero-initialised `cls_token` prepended without a position embedding; `blocks.N` pre-norm
//                   TransformerBlocks (norm1, attn.qkv without bias, attn.out_proj, norm2, mlp.linear1 → GELU →
//                   mlp.linear2), final `norm`; LayerNorm eps 1e-5. The image feature is the normed CLS token.
//   language_encoder  a Hugging Face BertModel (bert-base-uncased's config), the [CLS] state is the text feature.
//   mm_vision_proj, mm_language_proj  Linear(C → C) with bias; `logit_scale` multiplies the cosines as it is
//                   (no exp), so ours, stored as its log, is log(logit_scale).
// Our ViT3d with clsPosEmbed false, qkvBias false, CLS pooling and eps 1e-5 computes the same; the perceptron's
// Linear is a Conv3d with kernel = stride = patch whose weight is the Linear's reshaped.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type Tensor } from '../../torch/index.js';
import { ViT3d } from '../../models/vit3d.js';
import { BertModel, bertConfig, type BertConfig } from '../../models/bert.js';
import { ClipModel } from '../../models/t3d.js';
import { WordPieceTokenizer } from '../../text/wordpiece.js';
import { readJsonFile } from '../../util/files.js';
import { type ModelFormat, type ReleasedModel } from './index.js';
import { clipKeyMap, type KeyRule, loadReleased, releasedShapes } from './released-weights.js';

type Triple = [number, number, number];

interface M3dArchitecture {
  vision: { inChannels: number; imageSize: Triple; patchSize: Triple; hiddenSize: number; mlpDim: number };
  visionDepth: number;
  visionHeads: number;
  text: BertConfig;
  /** the released BertModel kept its (unused) pooler */
  textPooler: boolean;
  embedDim: number;
}

/** Every BERT Google released (tiny to large) has 64-dimensional attention heads; the config does not say. */
const BERT_HEAD_DIM = 64;
/** M3D-CLIP's training tokenised reports to at most 512 tokens (train_CLIP.py's max_length). */
const TRAINED_MAX_TOKENS = 512;

function visionKey(k: string, a: M3dArchitecture): KeyRule | 'unused' | undefined {
  const { patchSize: p, inChannels, hiddenSize } = a.vision;
  if (k === 'patch_embedding.patch_embeddings.1.weight')
    // Linear weight (C, p1·p2·p3·c) → Conv3d weight (C, c, p1, p2, p3)
    return {
      to: 'patch_embed.proj.weight',
      convert: (t: Tensor) => t.reshape(hiddenSize, ...p, inChannels).permute(0, 4, 1, 2, 3),
    };
  if (k === 'patch_embedding.patch_embeddings.1.bias') return { to: 'patch_embed.proj.bias' };
  if (k === 'patch_embedding.position_embeddings') return { to: 'pos_embed' };
  if (
    k === 'cls_token' ||
    /^norm\.(weight|bias)$/.test(k) ||
    /^blocks\.\d+\.(norm[12]\.(weight|bias)|attn\.qkv\.weight)$/.test(k)
  )
    return { to: k };
  const renamed = k
    .replace(/^(blocks\.\d+\.)attn\.out_proj\./, '$1attn.proj.')
    .replace(/^(blocks\.\d+\.)mlp\.linear1\./, '$1mlp.fc1.')
    .replace(/^(blocks\.\d+\.)mlp\.linear2\./, '$1mlp.fc2.');
  if (renamed !== k && /\.(weight|bias)$/.test(k)) return { to: renamed };
  // newer MONAI builds the (disabled) cross-attention of every block; the classification head is not used
  if (/^blocks\.\d+\.(norm_cross_attn|cross_attn)\./.test(k) || k.startsWith('classification_head.')) return 'unused';
  return undefined;
}

function fullKey(name: string, a: M3dArchitecture): KeyRule | 'unused' | undefined {
  if (name.startsWith('vision_encoder.')) {
    const r = visionKey(name.slice('vision_encoder.'.length), a);
    return r === undefined || r === 'unused' ? r : { ...r, to: `visual.${r.to}` };
  }
  if (name.startsWith('language_encoder.')) {
    const k = name.slice('language_encoder.'.length);
    // buffers older transformers saved
    return k === 'embeddings.position_ids' || k === 'embeddings.token_type_ids' ? 'unused' : { to: `text.${k}` };
  }
  const proj = /^mm_(vision|language)_proj\.(weight|bias)$/.exec(name);
  if (proj) return { to: `${proj[1] === 'vision' ? 'visual' : 'text'}_projection.${proj[2]}` };
  if (name === 'logit_scale')
    return {
      to: 'logit_scale.logit_scale',
      convert: (t: Tensor) => {
        const v = t.item();
        if (!(v > 0)) throw new Error(`logit_scale is ${v}: M3D-CLIP multiplies by it, it must be > 0`);
        return t.log();
      },
    };
  return undefined;
}

const keyMap = clipKeyMap(fullKey);

function buildVision(a: M3dArchitecture): ViT3d {
  const v = a.vision;
  return new ViT3d({
    inChannels: v.inChannels,
    imageSize: v.imageSize,
    patchSize: v.patchSize,
    hiddenSize: v.hiddenSize,
    depth: a.visionDepth,
    numHeads: a.visionHeads,
    mlpRatio: v.mlpDim / v.hiddenSize,
    qkvBias: false,
    posEmbed: 'learnable',
    clsPosEmbed: false,
    pooling: 'cls',
    layerNormEps: 1e-5,
  });
}

const triple = (v: unknown, what: string, file: string): Triple => {
  if (!(Array.isArray(v) && v.length === 3 && v.every((n) => Number.isInteger(n) && n > 0)))
    throw new Error(`${file}: ${what} must be 3 positive integers, got ${JSON.stringify(v)}`);
  return v as Triple;
};

function read(folder: string): ReleasedModel {
  const need = (f: string) => {
    const path = join(folder, f);
    if (!existsSync(path))
      throw new Error(`${folder}: no ${f} (an M3D-CLIP folder holds config.json, model.safetensors and vocab.txt)`);
    return path;
  };
  const [configPath, weights, vocab] = ['config.json', 'model.safetensors', 'vocab.txt'].map(need) as [
    string,
    string,
    string,
  ];
  const c = readJsonFile<Record<string, unknown>>(configPath);
  if (c.model_type !== 'm3d_clip')
    throw new Error(`${configPath}: model_type ${JSON.stringify(c.model_type)} is not M3D-CLIP's 'm3d_clip'`);
  if (c.pos_embed !== 'perceptron' || c.spatial_dims !== 3)
    throw new Error(
      `${configPath}: only the released 3D 'perceptron' patch embedding is supported ` +
        `(pos_embed ${JSON.stringify(c.pos_embed)}, spatial_dims ${JSON.stringify(c.spatial_dims)})`,
    );
  const int = (k: string): number => {
    if (!(Number.isInteger(c[k]) && (c[k] as number) > 0))
      throw new Error(`${configPath}: ${k} must be a positive integer, got ${JSON.stringify(c[k])}`);
    return c[k] as number;
  };
  const shapes = releasedShapes(weights);
  const shape = (k: string): number[] => {
    const s = shapes.get(k);
    if (!s) throw new Error(`${weights}: no '${k}': not M3D-CLIP's weights`);
    return s;
  };
  const [vocabSize, hidden] = shape('language_encoder.embeddings.word_embeddings.weight') as [number, number];
  const layers = new Set(
    [...shapes.keys()].map((k) => /^language_encoder\.encoder\.layer\.(\d+)\./.exec(k)?.[1]).filter(Boolean),
  ).size;
  const text = bertConfig(
    {
      vocab_size: vocabSize,
      hidden_size: hidden,
      num_hidden_layers: layers,
      num_attention_heads: hidden / BERT_HEAD_DIM,
      intermediate_size: shape('language_encoder.encoder.layer.0.intermediate.dense.weight')[0],
      max_position_embeddings: shape('language_encoder.embeddings.position_embeddings.weight')[0],
      type_vocab_size: shape('language_encoder.embeddings.token_type_embeddings.weight')[0],
    },
    `${weights} (language_encoder)`,
  );
  const architecture: M3dArchitecture = {
    vision: {
      inChannels: int('in_channels'),
      imageSize: triple(c.img_size, 'img_size', configPath),
      patchSize: triple(c.patch_size, 'patch_size', configPath),
      hiddenSize: int('hidden_size'),
      mlpDim: int('mlp_dim'),
    },
    visionDepth: int('num_layers'),
    visionHeads: int('num_heads'),
    text,
    textPooler: shapes.has('language_encoder.pooler.dense.weight'),
    embedDim: shape('mm_vision_proj.weight')[0]!,
  };
  const maxTokens = Math.min(TRAINED_MAX_TOKENS, text.max_position_embeddings);
  const tokConfigPath = join(folder, 'tokenizer_config.json');
  const tokConfig = existsSync(tokConfigPath) ? readJsonFile<{ do_lower_case?: boolean }>(tokConfigPath) : {};
  const tokenizer = WordPieceTokenizer.fromVocabTxt(vocab, {
    lowercase: tokConfig.do_lower_case ?? true,
    modelMaxLength: maxTokens,
  });
  if (tokenizer.vocabSize > vocabSize)
    throw new Error(`${vocab}: ${tokenizer.vocabSize} tokens, but the text encoder embeds only ${vocabSize}`);
  return {
    architecture: architecture as unknown as Record<string, unknown>,
    weights,
    text: { tokenizer, maxTokens },
    preset: 'm3d-clip',
    inputShape: architecture.vision.imageSize,
    files: [configPath, weights, vocab, ...(existsSync(tokConfigPath) ? [tokConfigPath] : [])],
  };
}

export const m3dClip: ModelFormat = {
  name: 'm3d-clip',
  description: 'M3D-CLIP (Apache-2.0): MONAI 3D ViT + BERT, image and text (config.json, model.safetensors, vocab.txt)',
  textAligned: true,
  read,
  load(architecture, weights) {
    const a = architecture as unknown as M3dArchitecture;
    const model = new ClipModel(buildVision(a), new BertModel(a.text, { addPoolingLayer: a.textPooler }), {
      embedDim: a.embedDim,
      projectionHidden: 0,
      projectionBias: true,
      textPooling: 'cls',
    });
    try {
      loadReleased(model, weights, keyMap(a, false));
    } catch (e) {
      model.dispose();
      throw e;
    }
    return model.eval();
  },
  visionEncoder(architecture, weights) {
    const a = architecture as unknown as M3dArchitecture;
    const vit = buildVision(a);
    if (weights) {
      try {
        loadReleased(vit, weights, keyMap(a, true));
      } catch (e) {
        vit.dispose();
        throw e;
      }
    }
    return vit;
  },
};
