// BERT's WordPiece tokenizer, id-for-id compatible with Hugging Face (`tokenizers`' BertWordPiece / transformers'
// BertTokenizer): same normalisation, pre-tokenization, greedy longest-match-first sub-words, special tokens,
// truncation, padding and decoding. Reads and writes vocab.txt and tokenizer.json so that vocabularies move freely
// between this code and Python.
import { readFileSync, writeFileSync } from 'node:fs';
import { splitSentences } from './report.js';
import {
  normalizeBert,
  preTokenizeBert,
  resolveNormalizer,
  type BertNormalizerOptions,
  type ResolvedNormalizer,
} from './basic-tokenizer.js';
import { parseTokenizerJson, tokenizerJsonOf } from './wordpiece-json.js';

export interface WordPieceOptions extends BertNormalizerOptions {
  unkToken?: string; // '[UNK]'
  clsToken?: string; // '[CLS]'
  sepToken?: string; // '[SEP]'
  padToken?: string; // '[PAD]'
  maskToken?: string; // '[MASK]' (optional in the vocabulary)
  continuingSubwordPrefix?: string; // '##'
  maxInputCharsPerWord?: number; // 100: longer words become [UNK]
  /** Length used when `encode` truncates or pads to 'max_length' without a `maxLength`. Default 512. */
  modelMaxLength?: number;
  /** Tokens matched verbatim in the raw text before normalisation; `special` ones are dropped by `decode`.
   *  Default: the five BERT special tokens that the vocabulary holds. */
  addedTokens?: readonly AddedToken[];
  /** Names the vocabulary in error messages (a file path, say). */
  source?: string;
}

export interface AddedToken {
  content: string;
  special: boolean;
}

export interface EncodeOptions {
  /** Default: the tokenizer's modelMaxLength (512). Counts [CLS] and [SEP]. */
  maxLength?: number;
  /** 'max_length': pad to maxLength; 'longest': pad a batch to its longest row (a no-op for one text); false: none. */
  padding?: 'max_length' | 'longest' | false;
  /** Cut the tokens to fit maxLength. Default true — unlike HF, whose default is false — because a BERT cannot
   *  take more than its position table anyway. */
  truncation?: boolean;
  /** Wrap in [CLS] … [SEP]. Default true. */
  addSpecialTokens?: boolean;
}

export interface Encoding {
  inputIds: number[];
  attentionMask: number[];
  tokenTypeIds: number[];
  tokens: string[];
}

/** A padded batch as flat row-major arrays of shape [batch, sequence]; see `toBigInt64` for int64 tensors. */
export interface BatchEncoding {
  inputIds: Int32Array;
  attentionMask: Int32Array;
  tokenTypeIds: Int32Array;
  shape: [number, number];
  tokens: string[][];
}

/** Where a vocabulary or tokenizer.json comes from: a file path, or text already in memory. */
export type TextSource = string | { text: string; source?: string };

const CACHE_LIMIT = 50_000;

export class WordPieceTokenizer {
  readonly vocab: readonly string[];
  readonly normalizer: ResolvedNormalizer;
  readonly unkToken: string;
  readonly clsToken: string;
  readonly sepToken: string;
  readonly padToken: string;
  readonly maskToken: string;
  readonly continuingSubwordPrefix: string;
  readonly maxInputCharsPerWord: number;
  readonly modelMaxLength: number;
  readonly addedTokens: readonly AddedToken[];
  readonly unkId: number;
  readonly clsId: number;
  readonly sepId: number;
  readonly padId: number;
  private readonly ids = new Map<string, number>();
  private readonly specialIds: Set<number>;
  private readonly addedPattern: RegExp | null;
  /** Longest vocabulary piece in UTF-16 units (prefix excluded): no longer substring needs looking up. */
  private readonly maxPieceLength: number;
  private readonly cache = new Map<string, number[]>();

  constructor(vocab: readonly string[], o: WordPieceOptions = {}) {
    const source = o.source ?? 'vocabulary';
    if (vocab.length === 0) throw new Error(`${source}: vocabulary is empty`);
    this.vocab = vocab;
    // A repeated token keeps its last id, as HF's load_vocab does.
    vocab.forEach((t, i) => this.ids.set(t, i));
    this.normalizer = resolveNormalizer(o);
    this.continuingSubwordPrefix = o.continuingSubwordPrefix ?? '##';
    this.maxInputCharsPerWord = o.maxInputCharsPerWord ?? 100;
    this.modelMaxLength = o.modelMaxLength ?? 512;
    const need = (token: string, role: string): number => {
      const id = this.ids.get(token);
      if (id === undefined) throw new Error(`${source}: vocabulary has no ${role} token "${token}"`);
      return id;
    };
    this.unkToken = o.unkToken ?? '[UNK]';
    this.unkId = need(this.unkToken, 'unknown');
    this.clsToken = o.clsToken ?? '[CLS]';
    this.clsId = need(this.clsToken, 'classifier');
    this.sepToken = o.sepToken ?? '[SEP]';
    this.sepId = need(this.sepToken, 'separator');
    this.padToken = o.padToken ?? '[PAD]';
    this.padId = need(this.padToken, 'padding');
    this.maskToken = o.maskToken ?? '[MASK]';
    this.addedTokens =
      o.addedTokens ??
      [this.padToken, this.unkToken, this.clsToken, this.sepToken, this.maskToken]
        .filter((t) => this.ids.has(t))
        .map((content) => ({ content, special: true }));
    for (const t of this.addedTokens) need(t.content, 'added');
    this.specialIds = new Set(this.addedTokens.filter((t) => t.special).map((t) => this.ids.get(t.content)!));
    // Longest first at each position: the leftmost-longest match HF's added-token matcher makes.
    const alternatives = this.addedTokens
      .map((t) => t.content)
      .filter((t) => t.length > 0)
      .sort((a, b) => b.length - a.length)
      .map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    this.addedPattern = alternatives.length > 0 ? new RegExp(alternatives.join('|'), 'g') : null;
    const prefix = this.continuingSubwordPrefix;
    this.maxPieceLength = vocab.reduce(
      (m, t) => Math.max(m, t.startsWith(prefix) ? t.length - prefix.length : t.length),
      1,
    );
  }

  /** Reads a BERT vocab.txt (one token per line, id = line number). */
  static fromVocabTxt(from: TextSource, o: WordPieceOptions = {}): WordPieceTokenizer {
    const { text, source } = readSource(from, 'vocabulary');
    const lines = text.split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    // `tokenizers` trims trailing whitespace, which also makes CRLF files work.
    return new WordPieceTokenizer(
      lines.map((l) => l.trimEnd()),
      { source, ...o },
    );
  }

  /** Reads a Hugging Face tokenizer.json whose model is WordPiece (BertNormalizer + BertPreTokenizer). */
  static fromTokenizerJson(from: TextSource, o: WordPieceOptions = {}): WordPieceTokenizer {
    const { text, source } = readSource(from, 'tokenizer.json');
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new Error(`${source}: not valid JSON (${(e as Error).message})`);
    }
    return new WordPieceTokenizer(...parseTokenizerJson(json, source, o));
  }

  get vocabSize(): number {
    return this.vocab.length;
  }
  tokenToId(token: string): number | undefined {
    return this.ids.get(token);
  }

  /** Word pieces of a text, without [CLS]/[SEP]. */
  tokenize(text: string): string[] {
    return this.pieceIds(text).map((id) => this.vocab[id]!);
  }

  encode(text: string, o: EncodeOptions = {}): Encoding {
    const maxLength = o.maxLength ?? this.modelMaxLength;
    const special = o.addSpecialTokens ?? true;
    let ids = this.pieceIds(text);
    if (o.truncation ?? true) {
      const budget = maxLength - (special ? 2 : 0);
      if (budget < 0) throw new Error(`encode: maxLength ${maxLength} leaves no room for [CLS] and [SEP]`);
      if (ids.length > budget) ids = ids.slice(0, budget);
    }
    if (special) ids = [this.clsId, ...ids, this.sepId];
    const attentionMask = ids.map(() => 1);
    if (o.padding === 'max_length') {
      while (ids.length < maxLength) {
        ids.push(this.padId);
        attentionMask.push(0);
      }
    }
    return { inputIds: ids, attentionMask, tokenTypeIds: ids.map(() => 0), tokens: ids.map((id) => this.vocab[id]!) };
  }

  /** Encodes a batch padded to a common length ('longest' by default, or 'max_length'). */
  encodeBatch(
    texts: readonly string[],
    o: Omit<EncodeOptions, 'padding'> & { padding?: 'max_length' | 'longest' } = {},
  ): BatchEncoding {
    const rows = texts.map((t) => this.encode(t, { ...o, padding: false }));
    const width =
      o.padding === 'max_length'
        ? (o.maxLength ?? this.modelMaxLength)
        : rows.reduce((m, r) => Math.max(m, r.inputIds.length), 0);
    const inputIds = new Int32Array(rows.length * width).fill(this.padId);
    const attentionMask = new Int32Array(rows.length * width);
    rows.forEach((r, i) => {
      if (r.inputIds.length > width) {
        throw new Error(
          `encodeBatch: text ${i} has ${r.inputIds.length} tokens, more than maxLength ${width}; enable truncation`,
        );
      }
      inputIds.set(r.inputIds, i * width);
      attentionMask.fill(1, i * width, i * width + r.inputIds.length);
    });
    const tokens = rows.map((r) => [...r.tokens, ...Array<string>(width - r.tokens.length).fill(this.padToken)]);
    return {
      inputIds,
      attentionMask,
      tokenTypeIds: new Int32Array(rows.length * width),
      shape: [rows.length, width],
      tokens,
    };
  }

  /** Text from ids, as HF's WordPiece decoder gives it: '##' pieces glued, space before ',', '.', '?', '!' removed. */
  decode(ids: Iterable<number>, o: { skipSpecialTokens?: boolean } = {}): string {
    const skip = o.skipSpecialTokens ?? true;
    const tokens: string[] = [];
    for (const id of ids) {
      const token = this.vocab[id];
      if (!Number.isInteger(id) || token === undefined)
        throw new Error(`decode: id ${id} is outside the vocabulary (size ${this.vocab.length})`);
      if (!(skip && this.specialIds.has(id))) tokens.push(token);
    }
    const prefix = this.continuingSubwordPrefix;
    return tokens
      .map((t, i) => cleanup(i === 0 ? t : t.startsWith(prefix) ? t.slice(prefix.length) : ` ${t}`))
      .join('');
  }

  /**
   * The sentence number (from 0; sentences as `splitSentences` finds them) of every token of `enc`, the padded batch
   * encoding of `texts` with special tokens, row-major like its inputIds; -1 for [CLS], [SEP] and padding. Sentences
   * break at whitespace, which the pre-tokenizer splits at too, so a text's pieces are its sentences' pieces in order.
   */
  sentenceIndex(texts: string[], enc: BatchEncoding): Int32Array {
    const [B, L] = enc.shape;
    if (texts.length !== B) throw new Error(`sentenceIndex: ${texts.length} texts for a batch of ${B}`);
    const out = new Int32Array(B * L).fill(-1);
    texts.forEach((text, b) => {
      // [SEP] or the last kept token
      const end = b * L + enc.attentionMask.subarray(b * L, (b + 1) * L).reduce((n, m) => n + m, 0) - 1;
      let at = b * L + 1; // after [CLS]
      splitSentences(text).forEach((sentence, s) => {
        for (let n = this.pieceIds(sentence).length; n > 0 && at < end; n--) out[at++] = s;
      });
      if (at < end)
        throw new Error(
          `sentenceIndex: text ${b} has ${end - b * L - 1} pieces but its sentences only ${at - b * L - 1}`,
        );
    });
    return out;
  }

  saveVocabTxt(path: string): void {
    const bad = this.vocab.findIndex((t) => /[\r\n]/.test(t));
    if (bad >= 0) throw new Error(`${path}: token ${bad} contains a line break and cannot be written to vocab.txt`);
    writeFileSync(path, this.vocab.join('\n') + '\n');
  }

  /** A tokenizer.json that HF's `tokenizers` (and transformers' BertTokenizer) load as this same tokenizer. */
  toTokenizerJson(): Record<string, unknown> {
    return tokenizerJsonOf(this, this.ids);
  }

  saveTokenizerJson(path: string): void {
    writeFileSync(path, JSON.stringify(this.toTokenizerJson(), null, 2) + '\n');
  }

  private pieceIds(text: string): number[] {
    const ids: number[] = [];
    let from = 0;
    if (this.addedPattern) {
      for (const m of text.matchAll(this.addedPattern)) {
        this.wordIds(text.slice(from, m.index), ids);
        ids.push(this.ids.get(m[0])!);
        from = m.index + m[0].length;
      }
    }
    this.wordIds(text.slice(from), ids);
    return ids;
  }

  private wordIds(text: string, out: number[]): void {
    for (const word of preTokenizeBert(normalizeBert(text, this.normalizer))) {
      let ids = this.cache.get(word);
      if (!ids) {
        ids = this.greedyPieces(word);
        if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
        this.cache.set(word, ids);
      }
      for (const id of ids) out.push(id);
    }
  }

  /** Greedy longest-match-first; a word with any unmatched part becomes a single [UNK], as in BERT. */
  private greedyPieces(word: string): number[] {
    const hasAstral = /[\uD800-\uDFFF]/.test(word);
    if ((hasAstral ? [...word].length : word.length) > this.maxInputCharsPerWord) return [this.unkId];
    const pieces: number[] = [];
    for (let start = 0; start < word.length;) {
      let end = Math.min(word.length, start + this.maxPieceLength);
      if (hasAstral && end < word.length && isLowSurrogate(word.charCodeAt(end))) end--;
      let id: number | undefined;
      while (end > start) {
        const sub = word.slice(start, end);
        id = this.ids.get(start > 0 ? this.continuingSubwordPrefix + sub : sub);
        if (id !== undefined) break;
        end -= hasAstral && end - start >= 2 && isLowSurrogate(word.charCodeAt(end - 1)) ? 2 : 1;
      }
      if (id === undefined) return [this.unkId];
      pieces.push(id);
      start = end;
    }
    return pieces;
  }
}

/** int64 copy of a batch array, for embedding-index tensors. */
export function toBigInt64(a: Int32Array): BigInt64Array {
  return BigInt64Array.from(a, (v) => BigInt(v));
}

const isLowSurrogate = (c: number): boolean => c >= 0xdc00 && c <= 0xdfff;

// HF's WordPiece decoder cleanup, applied to each (space-prefixed) token as `tokenizers` does.
const CLEANUP: [string, string][] = [
  [' .', '.'],
  [' ?', '?'],
  [' !', '!'],
  [' ,', ','],
  [" ' ", "'"],
  [" n't", "n't"],
  [" 'm", "'m"],
  [' do not', " don't"],
  [" 's", "'s"],
  [" 've", "'ve"],
  [" 're", "'re"],
];
function cleanup(token: string): string {
  for (const [from, to] of CLEANUP) token = token.replaceAll(from, to);
  return token;
}

function readSource(from: TextSource, what: string): { text: string; source: string } {
  if (typeof from !== 'string') return { text: from.text, source: from.source ?? what };
  try {
    return { text: readFileSync(from, 'utf8'), source: from };
  } catch (e) {
    throw new Error(`${from}: cannot read ${what} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}
