// BERT hyper-parameters under the snake_case names Hugging Face writes in config.json, so a config moves between
// this code and transformers unchanged. Defaults are HF's BertConfig defaults (BERT-base, uncased).
import { readFileSync } from 'node:fs';

/** 'gelu' is the exact erf GELU; 'gelu_new' and 'gelu_pytorch_tanh' are both the tanh approximation. */
export const BERT_ACTIVATIONS = ['gelu', 'gelu_new', 'gelu_pytorch_tanh'] as const;
export type BertActivation = (typeof BERT_ACTIVATIONS)[number];

export interface BertConfig {
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  intermediate_size: number;
  hidden_act: BertActivation;
  hidden_dropout_prob: number;
  attention_probs_dropout_prob: number;
  max_position_embeddings: number;
  type_vocab_size: number;
  layer_norm_eps: number;
  /** Row of word_embeddings kept at zero and out of gradients; null for none. */
  pad_token_id: number | null;
  /** Standard deviation of the normal initialisation of Linear and Embedding weights. */
  initializer_range: number;
}

export const BERT_DEFAULTS: Readonly<BertConfig> = {
  vocab_size: 30522,
  hidden_size: 768,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  intermediate_size: 3072,
  hidden_act: 'gelu',
  hidden_dropout_prob: 0.1,
  attention_probs_dropout_prob: 0.1,
  max_position_embeddings: 512,
  type_vocab_size: 2,
  layer_norm_eps: 1e-12,
  pad_token_id: 0,
  initializer_range: 0.02,
};

const SIZES = [
  'vocab_size',
  'hidden_size',
  'num_hidden_layers',
  'num_attention_heads',
  'intermediate_size',
  'max_position_embeddings',
  'type_vocab_size',
] as const;

/**
 * A complete, validated config: HF's defaults for absent keys, keys this model does not use ignored (HF's
 * config.json holds many). `source` names the file in error messages.
 */
export function bertConfig(values: Record<string, unknown> = {}, source = 'BERT config'): BertConfig {
  const c = { ...BERT_DEFAULTS } as Record<string, unknown>;
  for (const key of Object.keys(BERT_DEFAULTS)) if (values[key] !== undefined) c[key] = values[key];
  const fail = (key: string, want: string): never => {
    throw new Error(`${source}: "${key}" must be ${want}, got ${JSON.stringify(c[key])}`);
  };
  for (const key of SIZES) if (!Number.isInteger(c[key]) || (c[key] as number) < 1) fail(key, 'an integer ≥ 1');
  for (const key of ['hidden_dropout_prob', 'attention_probs_dropout_prob']) {
    if (typeof c[key] !== 'number' || !((c[key] as number) >= 0 && (c[key] as number) < 1))
      fail(key, 'a number in [0, 1)');
  }
  if (typeof c.layer_norm_eps !== 'number' || !((c.layer_norm_eps as number) > 0))
    fail('layer_norm_eps', 'a number > 0');
  // HF falls back to 0.02 when initializer_range is null or 0.
  if (c.initializer_range === null || c.initializer_range === 0) c.initializer_range = 0.02;
  if (typeof c.initializer_range !== 'number' || !((c.initializer_range as number) > 0))
    fail('initializer_range', 'a number > 0');
  if (!BERT_ACTIVATIONS.includes(c.hidden_act as BertActivation))
    fail('hidden_act', `one of ${BERT_ACTIVATIONS.join(', ')}`);
  if (
    c.pad_token_id !== null &&
    !(
      Number.isInteger(c.pad_token_id) &&
      (c.pad_token_id as number) >= 0 &&
      (c.pad_token_id as number) < (c.vocab_size as number)
    )
  ) {
    fail('pad_token_id', `null or an integer in [0, vocab_size ${String(c.vocab_size)})`);
  }
  if ((c.hidden_size as number) % (c.num_attention_heads as number) !== 0) {
    throw new Error(
      `${source}: hidden_size ${String(c.hidden_size)} is not a multiple of ` +
        `num_attention_heads ${String(c.num_attention_heads)}`,
    );
  }
  // Variants with other math that this encoder does not implement: refuse rather than compute something else.
  if (values.position_embedding_type !== undefined && values.position_embedding_type !== 'absolute') {
    throw new Error(
      `${source}: position_embedding_type ${JSON.stringify(values.position_embedding_type)} ` +
        'is not supported (only "absolute")',
    );
  }
  if (values.is_decoder === true || values.add_cross_attention === true) {
    throw new Error(
      `${source}: decoder BERTs (is_decoder / add_cross_attention) are not supported; this is an encoder`,
    );
  }
  return c as unknown as BertConfig;
}

/** Reads and validates a Hugging Face config.json; every error names the file. */
export function readBertConfig(path: string): BertConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`${path}: cannot read BERT config (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new Error(`${path}: expected a JSON object`);
  return bertConfig(json as Record<string, unknown>, path);
}
