// Trains a WordPiece vocabulary the way Hugging Face `tokenizers` does for BertWordPieceTokenizer.train, whose
// WordPieceTrainer is a BPE trainer with a '##' continuation prefix (not Google's likelihood-scored WordPiece):
//  1. Normalise and pre-tokenize each text exactly as the tokenizer will (BertNormalizer + BertPreTokenizer) and
//     count the words.
//  2. Vocabulary starts as: special tokens; the alphabet (the `limitAlphabet` most frequent characters, in code-point
//     order); then '##c' for every character seen inside a word. Each word becomes a sequence of those symbols.
//  3. Repeatedly merge the most frequent adjacent symbol pair (frequency weighted by word count; ties go to the pair
//     with the smaller ids) into a new token a + b-without-'##', until the vocabulary reaches `vocabSize` or the best
//     pair occurs fewer than `minFrequency` times.
// Pair counts are updated incrementally, only in the words that contain the merged pair, with a lazy max-heap; so
// the cost is the corpus word count plus the merges' local work, not merges × corpus.
// Ids differ from HF's (its first-seen order of '##c' comes from hash-map iteration): ours follow the order in which
// words first appear, so a corpus always gives the same vocabulary.
import { normalizeBert, preTokenizeBert, resolveNormalizer, type BertNormalizerOptions } from './basic-tokenizer.js';
import { WordPieceTokenizer } from './wordpiece.js';

export interface WordPieceTrainerOptions extends BertNormalizerOptions {
  /** Target vocabulary size, special tokens included. Default 30000. */
  vocabSize?: number;
  /** A pair must occur at least this often to be merged. Default 2. */
  minFrequency?: number;
  /** Default [PAD], [UNK], [CLS], [SEP], [MASK] (ids 0–4). */
  specialTokens?: readonly string[];
  /** Characters kept in the initial alphabet (most frequent first); rarer ones become [UNK]. Default 1000. */
  limitAlphabet?: number;
  continuingSubwordPrefix?: string;
}

const PAIR = 2 ** 22; // ids stay below this, so a pair (a, b) is the exact number a·PAIR + b

export function trainWordPiece(texts: Iterable<string>, o: WordPieceTrainerOptions = {}): WordPieceTokenizer {
  const vocabSize = o.vocabSize ?? 30000;
  const minFrequency = o.minFrequency ?? 2;
  const limitAlphabet = o.limitAlphabet ?? 1000;
  const prefix = o.continuingSubwordPrefix ?? '##';
  const specials = o.specialTokens ?? ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];
  if (!(vocabSize > 0 && vocabSize < PAIR))
    throw new Error(`trainWordPiece: vocabSize ${vocabSize} must be in 1..${PAIR - 1}`);
  const normalizer = resolveNormalizer(o);

  const wordCounts = new Map<string, number>();
  for (const text of texts) {
    for (const w of preTokenizeBert(normalizeBert(text, normalizer))) wordCounts.set(w, (wordCounts.get(w) ?? 0) + 1);
  }

  const vocab: string[] = [];
  const ids = new Map<string, number>();
  const add = (token: string): number => {
    let id = ids.get(token);
    if (id === undefined) {
      id = vocab.length;
      vocab.push(token);
      ids.set(token, id);
    }
    return id;
  };
  specials.forEach(add);
  for (const c of alphabet(wordCounts, limitAlphabet)) add(c);

  const words: number[][] = [];
  const counts: number[] = [];
  for (const [word, count] of wordCounts) {
    const symbols: number[] = [];
    for (const c of word) {
      if (!ids.has(c)) continue; // outside the alphabet
      symbols.push(symbols.length === 0 ? ids.get(c)! : add(prefix + c));
    }
    words.push(symbols);
    counts.push(count);
  }

  const pairCount = new Map<number, number>();
  const pairWords = new Map<number, Set<number>>();
  const bump = (pair: number, by: number, word: number): void => {
    pairCount.set(pair, (pairCount.get(pair) ?? 0) + by);
    if (by > 0) {
      let set = pairWords.get(pair);
      if (!set) pairWords.set(pair, (set = new Set()));
      set.add(word);
    }
  };
  words.forEach((s, w) => {
    for (let i = 0; i + 1 < s.length; i++) bump(s[i]! * PAIR + s[i + 1]!, counts[w]!, w);
  });

  const heap = new PairHeap();
  for (const [pair, count] of pairCount) heap.push(count, pair);
  while (vocab.length < vocabSize && heap.size > 0) {
    const [count, pair] = heap.pop();
    const current = pairCount.get(pair) ?? 0;
    if (count !== current) {
      if (current > 0) heap.push(current, pair);
      continue;
    }
    if (count < Math.max(1, minFrequency)) break;
    const a = Math.floor(pair / PAIR),
      b = pair % PAIR;
    const right = vocab[b]!;
    const merged = add(vocab[a]! + (right.startsWith(prefix) ? right.slice(prefix.length) : right));
    const changed = new Set<number>();
    for (const w of pairWords.get(pair)!) {
      const s = words[w]!,
        c = counts[w]!,
        out: number[] = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          const prev = out[out.length - 1];
          if (prev !== undefined) {
            bump(prev * PAIR + a, -c, w);
            bump(prev * PAIR + merged, c, w);
            changed.add(prev * PAIR + merged);
          }
          const next = s[i + 2];
          if (next !== undefined) {
            bump(b * PAIR + next, -c, w);
            bump(merged * PAIR + next, c, w);
            changed.add(merged * PAIR + next);
          }
          out.push(merged);
          i++;
        } else {
          out.push(s[i]!);
        }
      }
      words[w] = out;
    }
    // Every occurrence was merged (left to right, as HF does for runs like 'aaa').
    pairCount.delete(pair);
    pairWords.delete(pair);
    for (const p of changed) {
      const n = pairCount.get(p) ?? 0;
      if (n > 0) heap.push(n, p);
    }
  }
  return new WordPieceTokenizer(vocab, { ...normalizer, continuingSubwordPrefix: prefix, source: 'trainWordPiece' });
}

/** Characters of the corpus (weighted by word count), the `limit` most frequent, in code-point order. */
function alphabet(wordCounts: Map<string, number>, limit: number): string[] {
  const freq = new Map<string, number>();
  for (const [word, count] of wordCounts) for (const c of word) freq.set(c, (freq.get(c) ?? 0) + count);
  const byCodePoint = (x: string, y: string): number => x.codePointAt(0)! - y.codePointAt(0)!;
  return [...freq]
    .sort((x, y) => y[1] - x[1] || byCodePoint(x[0], y[0]))
    .slice(0, limit)
    .map(([c]) => c)
    .sort(byCodePoint);
}

/** Max-heap of (count, pair): highest count first, then the smallest pair — the order of HF's merge queue. */
class PairHeap {
  private readonly counts: number[] = [];
  private readonly pairs: number[] = [];
  get size(): number {
    return this.counts.length;
  }

  push(count: number, pair: number): void {
    this.counts.push(count);
    this.pairs.push(pair);
    let i = this.counts.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  pop(): [number, number] {
    const top: [number, number] = [this.counts[0]!, this.pairs[0]!];
    const lastCount = this.counts.pop()!,
      lastPair = this.pairs.pop()!;
    if (this.counts.length > 0) {
      this.counts[0] = lastCount;
      this.pairs[0] = lastPair;
      for (let i = 0; ;) {
        const l = 2 * i + 1,
          r = l + 1;
        let best = i;
        if (l < this.counts.length && this.before(l, best)) best = l;
        if (r < this.counts.length && this.before(r, best)) best = r;
        if (best === i) break;
        this.swap(i, best);
        i = best;
      }
    }
    return top;
  }

  private before(i: number, j: number): boolean {
    return this.counts[i]! > this.counts[j]! || (this.counts[i] === this.counts[j] && this.pairs[i]! < this.pairs[j]!);
  }
  private swap(i: number, j: number): void {
    [this.counts[i], this.counts[j]] = [this.counts[j]!, this.counts[i]!];
    [this.pairs[i], this.pairs[j]] = [this.pairs[j]!, this.pairs[i]!];
  }
}
