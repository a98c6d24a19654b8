// Hugging Face tokenizer.json for the WordPiece tokenizer, both ways: the constructor arguments a tokenizer.json
// describes (rejecting what this tokenizer cannot reproduce), and the tokenizer.json a tokenizer is saved as.
import type { WordPieceOptions, WordPieceTokenizer } from './wordpiece.js';

/** A tokenizer.json that HF's `tokenizers` (and transformers' BertTokenizer) load as `tok` (`ids`: token → id). */
export function tokenizerJsonOf(tok: WordPieceTokenizer, ids: ReadonlyMap<string, number>): Record<string, unknown> {
  const n = tok.normalizer;
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: tok.addedTokens.map((t) => ({
      id: ids.get(t.content),
      content: t.content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: t.special,
    })),
    normalizer: {
      type: 'BertNormalizer',
      clean_text: n.cleanText,
      handle_chinese_chars: n.handleChineseChars,
      strip_accents: n.stripAccents,
      lowercase: n.lowercase,
    },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: { type: 'BertProcessing', sep: [tok.sepToken, tok.sepId], cls: [tok.clsToken, tok.clsId] },
    decoder: { type: 'WordPiece', prefix: tok.continuingSubwordPrefix, cleanup: true },
    model: {
      type: 'WordPiece',
      unk_token: tok.unkToken,
      continuing_subword_prefix: tok.continuingSubwordPrefix,
      max_input_chars_per_word: tok.maxInputCharsPerWord,
      vocab: Object.fromEntries(ids),
    },
  };
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Constructor arguments from a parsed tokenizer.json; rejects what this tokenizer cannot reproduce. */
export function parseTokenizerJson(json: unknown, source: string, o: WordPieceOptions): [string[], WordPieceOptions] {
  if (!isObject(json) || !isObject(json.model)) throw new Error(`${source}: no "model" object`);
  const model = json.model;
  if (model.type !== 'WordPiece')
    throw new Error(`${source}: model.type is ${JSON.stringify(model.type)}; only "WordPiece" is supported`);
  if (!isObject(model.vocab)) throw new Error(`${source}: model.vocab must be an object of token → id`);
  // N distinct ids in 0..N-1 leave no gap.
  const entries = Object.entries(model.vocab);
  const vocab = new Array<string>(entries.length);
  for (const [token, id] of entries) {
    if (!Number.isInteger(id) || (id as number) < 0 || (id as number) >= entries.length) {
      throw new Error(
        `${source}: model.vocab["${token}"] = ${JSON.stringify(id)}; ids must be the integers 0..${entries.length - 1}`,
      );
    }
    if (vocab[id as number] !== undefined)
      throw new Error(`${source}: model.vocab gives id ${id} to both "${vocab[id as number]}" and "${token}"`);
    vocab[id as number] = token;
  }

  const out: WordPieceOptions = { source };
  if (typeof model.unk_token === 'string') out.unkToken = model.unk_token;
  if (typeof model.continuing_subword_prefix === 'string')
    out.continuingSubwordPrefix = model.continuing_subword_prefix;
  if (typeof model.max_input_chars_per_word === 'number') out.maxInputCharsPerWord = model.max_input_chars_per_word;

  const norm = json.normalizer;
  if (norm === null || norm === undefined) {
    Object.assign(out, { cleanText: false, handleChineseChars: false, stripAccents: false, lowercase: false });
  } else if (isObject(norm) && norm.type === 'BertNormalizer') {
    Object.assign(out, {
      cleanText: norm.clean_text !== false,
      handleChineseChars: norm.handle_chinese_chars !== false,
      stripAccents: typeof norm.strip_accents === 'boolean' ? norm.strip_accents : null,
      lowercase: norm.lowercase !== false,
    });
  } else {
    throw new Error(
      `${source}: normalizer ${JSON.stringify(isObject(norm) ? norm.type : norm)} is not supported; ` +
        'expected "BertNormalizer"',
    );
  }
  const pre = json.pre_tokenizer;
  if (!isObject(pre) || pre.type !== 'BertPreTokenizer') {
    throw new Error(
      `${source}: pre_tokenizer ${JSON.stringify(isObject(pre) ? pre.type : pre)} is not supported; ` +
        'expected "BertPreTokenizer"',
    );
  }
  Object.assign(out, specialTokenNames(json.post_processor));
  if (isObject(json.padding) && typeof json.padding.pad_token === 'string') out.padToken = json.padding.pad_token;
  if (isObject(json.truncation) && typeof json.truncation.max_length === 'number')
    out.modelMaxLength = json.truncation.max_length;
  if (Array.isArray(json.added_tokens)) {
    out.addedTokens = json.added_tokens.map((t, i) => {
      if (!isObject(t) || typeof t.content !== 'string')
        throw new Error(`${source}: added_tokens[${i}] has no "content" string`);
      return { content: t.content, special: t.special === true };
    });
  }
  return [vocab, { ...out, ...o }];
}

/** [CLS]/[SEP] names from a BertProcessing or TemplateProcessing post-processor. */
function specialTokenNames(post: unknown): Pick<WordPieceOptions, 'clsToken' | 'sepToken'> {
  if (!isObject(post)) return {};
  if (post.type === 'BertProcessing' && Array.isArray(post.cls) && Array.isArray(post.sep)) {
    return { clsToken: String(post.cls[0]), sepToken: String(post.sep[0]) };
  }
  if (post.type === 'TemplateProcessing' && Array.isArray(post.single)) {
    const names = post.single
      .filter(isObject)
      .map((p) => p.SpecialToken)
      .filter(isObject)
      .map((s) => String(s.id));
    if (names.length >= 2) return { clsToken: names[0]!, sepToken: names[names.length - 1]! };
  }
  return {};
}
