// BERT encoder with Hugging Face's architecture and module tree (transformers' BertModel), so that state-dict keys
// are HF's: embeddings.{word,position,token_type}_embeddings, embeddings.LayerNorm,
// encoder.layer.N.attention.{self.{query,key,value}, output.{dense,LayerNorm}}, encoder.layer.N.intermediate.dense,
// encoder.layer.N.output.{dense,LayerNorm}, pooler.dense. HF's position_ids / token_type_ids buffers are
// non-persistent (absent from its state dict), so they are computed here instead of stored.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../torch/index.js';
import { F, nn, type DType, type Tensor } from '../torch/index.js';
import { type BertConfig, readBertConfig } from './bert-config.js';

export { type BertConfig, bertConfig, readBertConfig } from './bert-config.js';

class BertEmbeddings extends nn.Module {
  readonly word_embeddings: nn.Embedding;
  readonly position_embeddings: nn.Embedding;
  readonly token_type_embeddings: nn.Embedding;
  readonly LayerNorm: nn.LayerNorm;

  constructor(private readonly c: BertConfig) {
    super();
    this.word_embeddings = this.registerModule(
      'word_embeddings',
      new nn.Embedding(c.vocab_size, c.hidden_size, c.pad_token_id ?? undefined),
    );
    this.position_embeddings = this.registerModule(
      'position_embeddings',
      new nn.Embedding(c.max_position_embeddings, c.hidden_size),
    );
    this.token_type_embeddings = this.registerModule(
      'token_type_embeddings',
      new nn.Embedding(c.type_vocab_size, c.hidden_size),
    );
    this.LayerNorm = this.registerModule('LayerNorm', new nn.LayerNorm(c.hidden_size, c.layer_norm_eps));
  }

  forward(inputIds: Tensor, tokenTypeIds?: Tensor): Tensor {
    return torch.tidy(() => {
      const words = this.word_embeddings.forward(inputIds);
      // Absent token types are all 0: broadcasting row 0 equals HF's lookup of a zero buffer, gradient included.
      const types = tokenTypeIds
        ? this.token_type_embeddings.forward(tokenTypeIds)
        : this.token_type_embeddings.weight.select(0, 0);
      // Positions 0..L-1, i.e. the first L rows (HF: position_ids = arange(L)); same sum order as HF.
      const positions = this.position_embeddings.weight.narrow(0, 0, inputIds.size(1));
      const x = this.LayerNorm.forward(words.add(types).add(positions));
      return F.dropout(x, this.c.hidden_dropout_prob, this.training);
    });
  }
}

class BertSelfAttention extends nn.Module {
  readonly query: nn.Linear;
  readonly key: nn.Linear;
  readonly value: nn.Linear;

  constructor(private readonly c: BertConfig) {
    super();
    this.query = this.registerModule('query', new nn.Linear(c.hidden_size, c.hidden_size));
    this.key = this.registerModule('key', new nn.Linear(c.hidden_size, c.hidden_size));
    this.value = this.registerModule('value', new nn.Linear(c.hidden_size, c.hidden_size));
  }

  /** x (B, L, H), additive mask (B, 1, 1, L) → attention context (B, L, H). */
  forward(x: Tensor, mask: Tensor): Tensor {
    return torch.tidy(() => {
      const [B, L, H] = x.shape as [number, number, number];
      const heads = this.c.num_attention_heads;
      const split = (t: Tensor) => t.view(B, L, heads, H / heads).transpose(1, 2);
      const ctx = F.scaledDotProductAttention(
        split(this.query.forward(x)),
        split(this.key.forward(x)),
        split(this.value.forward(x)),
        { mask, dropoutP: this.c.attention_probs_dropout_prob, training: this.training },
      );
      return ctx.transpose(1, 2).reshape(B, L, H);
    });
  }
}

/** dense → dropout → LayerNorm(· + residual): HF's BertSelfOutput and BertOutput, which differ only in sizes. */
class BertResidualOutput extends nn.Module {
  readonly dense: nn.Linear;
  readonly LayerNorm: nn.LayerNorm;

  constructor(
    inFeatures: number,
    private readonly c: BertConfig,
  ) {
    super();
    this.dense = this.registerModule('dense', new nn.Linear(inFeatures, c.hidden_size));
    this.LayerNorm = this.registerModule('LayerNorm', new nn.LayerNorm(c.hidden_size, c.layer_norm_eps));
  }

  forward(x: Tensor, residual: Tensor): Tensor {
    return torch.tidy(() =>
      this.LayerNorm.forward(F.dropout(this.dense.forward(x), this.c.hidden_dropout_prob, this.training).add(residual)),
    );
  }
}

class BertAttention extends nn.Module {
  readonly self: BertSelfAttention;
  readonly output: BertResidualOutput;

  constructor(c: BertConfig) {
    super();
    this.self = this.registerModule('self', new BertSelfAttention(c));
    this.output = this.registerModule('output', new BertResidualOutput(c.hidden_size, c));
  }

  forward(x: Tensor, mask: Tensor): Tensor {
    return torch.tidy(() => this.output.forward(this.self.forward(x, mask), x));
  }
}

class BertIntermediate extends nn.Module {
  readonly dense: nn.Linear;

  constructor(private readonly c: BertConfig) {
    super();
    this.dense = this.registerModule('dense', new nn.Linear(c.hidden_size, c.intermediate_size));
  }

  forward(x: Tensor): Tensor {
    return torch.tidy(() => this.dense.forward(x).gelu(this.c.hidden_act === 'gelu' ? 'none' : 'tanh'));
  }
}

class BertLayer extends nn.Module {
  readonly attention: BertAttention;
  readonly intermediate: BertIntermediate;
  readonly output: BertResidualOutput;

  constructor(c: BertConfig) {
    super();
    this.attention = this.registerModule('attention', new BertAttention(c));
    this.intermediate = this.registerModule('intermediate', new BertIntermediate(c));
    this.output = this.registerModule('output', new BertResidualOutput(c.intermediate_size, c));
  }

  forward(x: Tensor, mask: Tensor): Tensor {
    return torch.tidy(() => {
      const attended = this.attention.forward(x, mask);
      return this.output.forward(this.intermediate.forward(attended), attended);
    });
  }
}

class BertEncoder extends nn.Module {
  readonly layer: nn.ModuleList<BertLayer>;

  constructor(c: BertConfig) {
    super();
    this.layer = this.registerModule(
      'layer',
      new nn.ModuleList(Array.from({ length: c.num_hidden_layers }, () => new BertLayer(c))),
    );
  }

  forward(x: Tensor, mask: Tensor): Tensor {
    // One scope per layer: in inference only the current layer's activations are alive at a time.
    let h = x;
    for (const layer of this.layer) {
      const next = layer.forward(h, mask);
      if (h !== x) h.dispose();
      h = next;
    }
    return h;
  }
}

class BertPooler extends nn.Module {
  readonly dense: nn.Linear;

  constructor(c: BertConfig) {
    super();
    this.dense = this.registerModule('dense', new nn.Linear(c.hidden_size, c.hidden_size));
  }

  /** tanh(dense(hidden state of the first token, [CLS])). */
  forward(hidden: Tensor): Tensor {
    return torch.tidy(() => this.dense.forward(hidden.select(1, 0)).tanh());
  }
}

export interface BertModelOutput {
  /** (B, L, H) token states; padded positions hold values too (as in HF) and should be masked by the caller. */
  lastHiddenState: Tensor;
  /**
   * (B, H) tanh(dense([CLS] state)), HF's pooler_output; absent without a pooling layer (BertForMaskedLM's
   * encoder).
   */
  pooled?: Tensor;
}

// torch.finfo(dtype).min: the additive value HF puts on padded keys.
const FINFO_MIN: Partial<Record<DType, number>> = {
  float32: -3.4028234663852886e38,
  float64: -Number.MAX_VALUE,
  float16: -65504,
  bfloat16: -3.3895313892515355e38,
};

/** HF's extended attention mask: 0 where attended, finfo(dtype).min on padded keys, shaped (B, 1, 1, L). */
export function extendedAttentionMask(attentionMask: Tensor, dtype: DType): Tensor {
  const min = FINFO_MIN[dtype];
  if (min === undefined) throw new Error(`extendedAttentionMask: ${dtype} is not a floating dtype`);
  return torch.tidy(() => {
    const [B, L] = attentionMask.shape as [number, number];
    return attentionMask.to({ dtype }).rsub(1).mul(min).view(B, 1, 1, L);
  });
}

export class BertModel extends nn.Module {
  readonly embeddings: BertEmbeddings;
  readonly encoder: BertEncoder;
  readonly pooler?: BertPooler;

  /** addPoolingLayer false: no pooler, as HF's BertModel(config, add_pooling_layer=False) inside BertForMaskedLM. */
  constructor(
    readonly config: BertConfig,
    o: { addPoolingLayer?: boolean } = {},
  ) {
    super();
    this.embeddings = this.registerModule('embeddings', new BertEmbeddings(config));
    this.encoder = this.registerModule('encoder', new BertEncoder(config));
    if (o.addPoolingLayer ?? true) this.pooler = this.registerModule('pooler', new BertPooler(config));
    initBertWeights(this, config);
  }

  /**
   * inputIds (B, L) int64 (or int32); attentionMask (B, L), 1 = token, 0 = padding (any dtype); tokenTypeIds
   * (B, L), all 0 when absent. Dropout is active only in train mode.
   */
  forward(inputIds: Tensor, attentionMask: Tensor, tokenTypeIds?: Tensor): BertModelOutput {
    this.checkInputs(inputIds, attentionMask, tokenTypeIds);
    return torch.tidy(() => {
      const embedded = this.embeddings.forward(inputIds, tokenTypeIds);
      const mask = extendedAttentionMask(attentionMask, embedded.dtype);
      const lastHiddenState = this.encoder.forward(embedded, mask);
      return { lastHiddenState, pooled: this.pooler?.forward(lastHiddenState) };
    });
  }

  private checkInputs(inputIds: Tensor, attentionMask: Tensor, tokenTypeIds?: Tensor): void {
    const shape = inputIds.shape;
    if (shape.length !== 2 || !['int64', 'int32'].includes(inputIds.dtype)) {
      throw new Error(
        `BertModel: inputIds must be a (batch, length) int64 tensor, got ${inputIds.dtype} [${shape.join(', ')}]`,
      );
    }
    if (shape[1]! > this.config.max_position_embeddings) {
      throw new Error(
        `BertModel: sequence length ${shape[1]} exceeds ` +
          `max_position_embeddings ${this.config.max_position_embeddings}; truncate the text`,
      );
    }
    for (const [name, t] of [
      ['attentionMask', attentionMask],
      ['tokenTypeIds', tokenTypeIds],
    ] as const) {
      if (t && t.shape.join() !== shape.join()) {
        throw new Error(
          `BertModel: ${name} must have the shape of inputIds [${shape.join(', ')}], got [${t.shape.join(', ')}]`,
        );
      }
    }
  }
}

/**
 * HF's BertPreTrainedModel._init_weights: N(0, initializer_range) weights, zero biases and padding row, unit
 * LayerNorms.
 */
export function initBertWeights(module: nn.Module, config: BertConfig): void {
  const std = config.initializer_range;
  torch.noGrad(() => {
    for (const [, m] of module.namedModules()) {
      if (m instanceof nn.Linear) {
        m.weight.normal_(0, std);
        m.bias?.zero_();
      } else if (m instanceof nn.Embedding) {
        m.weight.normal_(0, std);
        if (m.paddingIdx !== undefined)
          torch.tidy(() => {
            m.weight.select(0, m.paddingIdx!).zero_();
          });
      }
    }
  });
}

export interface LoadBertOptions {
  /** A BertForMaskedLM checkpoint has no pooler: keep a freshly initialised one (HF does so with a warning)
   *  instead of failing on the missing pooler.dense keys. */
  allowMissingPooler?: boolean;
}

/**
 * Loads a Hugging Face BERT folder: config.json + model.safetensors (or the shards of model.safetensors.index.json).
 * Keys may carry the `bert.` prefix of BertFor* models; their `cls.*` heads and the position_ids / token_type_ids
 * buffers that older transformers saved are skipped unread. Every other key must match BertModel's, with its shape.
 * Returns the model in eval mode, as from_pretrained does.
 */
export function loadBertFromPretrained(dir: string, o: LoadBertOptions = {}): BertModel {
  const model = new BertModel(readBertConfig(join(dir, 'config.json')));
  try {
    loadHfWeights(model, dir, o);
  } catch (err) {
    model.dispose();
    throw err;
  }
  return model.eval();
}

function weightFiles(dir: string): string[] {
  const single = join(dir, 'model.safetensors');
  if (existsSync(single)) return [single];
  const index = join(dir, 'model.safetensors.index.json');
  if (existsSync(index)) {
    let map: unknown;
    try {
      map = (JSON.parse(readFileSync(index, 'utf8')) as { weight_map?: unknown }).weight_map;
    } catch (e) {
      throw new Error(`${index}: not valid JSON (${(e as Error).message})`);
    }
    if (typeof map !== 'object' || map === null) throw new Error(`${index}: no "weight_map" object`);
    return [...new Set(Object.values(map).map(String))].map((f) => join(dir, f));
  }
  const bin = existsSync(join(dir, 'pytorch_model.bin'))
    ? '; it has pytorch_model.bin, which is read only as safetensors: ' +
      're-save with save_pretrained(dir, safe_serialization=True)'
    : '';
  throw new Error(`${dir}: no model.safetensors${bin}`);
}

const listed = (keys: string[]) =>
  `[${keys.slice(0, 8).join(', ')}${keys.length > 8 ? `, … (${keys.length - 8} more)` : ''}]`;

function loadHfWeights(model: BertModel, dir: string, o: LoadBertOptions): void {
  const own = model.stateDict();
  const found = new Map<string, { file: string; name: string }>();
  const unexpected: string[] = [];
  for (const file of weightFiles(dir)) {
    for (const e of torch.readSafetensorsHeader(file).entries) {
      const key = e.name.startsWith('bert.') ? e.name.slice('bert.'.length) : e.name;
      if (e.name.startsWith('cls.') || key === 'embeddings.position_ids' || key === 'embeddings.token_type_ids')
        continue;
      const dst = own.get(key);
      if (!dst) {
        unexpected.push(e.name);
        continue;
      }
      if (found.has(key))
        throw new Error(`${file}: '${key}' is stored twice ('${found.get(key)!.name}' and '${e.name}')`);
      if (e.shape.join() !== dst.shape.join()) {
        throw new Error(
          `${file}: '${e.name}' has shape [${e.shape.join(', ')}] ` +
            `but BertModel from config.json expects [${dst.shape.join(', ')}]`,
        );
      }
      found.set(key, { file, name: e.name });
    }
  }
  const hasPooler = [...found.keys()].some((k) => k.startsWith('pooler.'));
  const missing = [...own.keys()].filter(
    (k) => !found.has(k) && !(o.allowMissingPooler && !hasPooler && k.startsWith('pooler.')),
  );
  if (missing.length || unexpected.length) {
    const poolerHint =
      missing.every((k) => k.startsWith('pooler.')) && !unexpected.length
        ? ' (a BertForMaskedLM checkpoint has no pooler: ' +
          'pass { allowMissingPooler: true } to keep a freshly initialised one)'
        : '';
    throw new Error(
      `${dir}: weights do not match BertModel: missing keys ${listed(missing)}, ` +
        `unexpected keys ${listed(unexpected)}${poolerHint}`,
    );
  }
  for (const file of new Set([...found.values()].map((f) => f.file))) {
    const entries = [...found].filter(([, f]) => f.file === file);
    const { tensors } = torch.loadSafetensors(file, { names: entries.map(([, f]) => f.name) });
    try {
      model.loadStateDict(new Map(entries.map(([key, f]) => [key, tensors.get(f.name)!])), false);
    } finally {
      torch.dispose([...tensors.values()]);
    }
  }
}
