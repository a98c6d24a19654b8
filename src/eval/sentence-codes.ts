// Do sentence codes cluster by finding? Report sentences are embedded as the 'sentence' TMA formulation embeds them
// (report token states mean-pooled by sentence, projected into the embedding space), given Sinkhorn codes over the
// model's prototypes (relative ε, then argmax), and compared with the finding each sentence states (the rule-based
// label extractor read on the single sentence) by NMI, beside a chance level: the same codes shuffled over the
// sentences (NMI is biased upward when codes hold few items). bench/sentence-codes.ts reports it on a cache.
import * as torch from '../torch/index.js';
import { type Tensor } from '../torch/index.js';
import { type T3dModel } from '../models/t3d.js';
import { splitSentences } from '../text/report.js';
import { toBigInt64, type WordPieceTokenizer } from '../text/wordpiece.js';
import { EXTRACTED_LABELS, labelMentions } from '../text/label-extractor.js';
import { pooledSentences, sinkhorn } from '../objectives/tma/shared.js';
import { Rng } from '../util/rng.js';
import { normalizedMutualInformation } from './metrics/clustering.js';

/**
 * Every sentence's embedding (N, D), normalised, as training pools them, and its text; sentences cut off by
 * `maxTokens` are left out. Reports go through the model 16 at a time, without gradient; the caller owns `emb`.
 */
export function embedSentences(
  model: T3dModel,
  tokenizer: WordPieceTokenizer,
  reports: string[],
  maxTokens: number,
): { texts: string[]; emb: Tensor } {
  const texts: string[] = [];
  const parts: Tensor[] = [];
  for (let at = 0; at < reports.length; at += 16) {
    const batch = reports.slice(at, at + 16);
    const enc = tokenizer.encodeBatch(batch, { maxLength: maxTokens, padding: 'longest' });
    const sentenceIndex = tokenizer.sentenceIndex(batch, enc);
    torch.noGrad(() =>
      torch.tidy(() => {
        const ids = (v: Int32Array) => torch.tensor(toBigInt64(v), enc.shape);
        const { tokens } = model.encodeReport(ids(enc.inputIds), ids(enc.attentionMask));
        const { sentences, count } = pooledSentences(model, tokens, ids(sentenceIndex)); // (b, S, D), (b, S)
        const S = sentences.size(1);
        const counts = count.toArray();
        batch.forEach((report, b) => {
          splitSentences(report).forEach((sentence, s) => {
            if (s >= S || counts[b * S + s]! === 0) return;
            texts.push(sentence);
            parts.push(sentences.select(0, b).select(0, s).unsqueeze(0).keep());
          });
        });
      }),
    );
  }
  if (!parts.length) throw new Error('embedSentences: no sentence within maxTokens in the reports given');
  const emb = torch.cat(parts, 0).keep();
  torch.dispose(parts);
  return { texts, emb };
}

/** Each embedding's code: Sinkhorn (3 iterations, ε relative to the scores' spread) over the prototypes' scores, then
 * argmax. The prototypes are normalised first, as training does before scoring. */
export function sentenceCodes(model: T3dModel, emb: Tensor, epsilon = 0.05): number[] {
  model.prototypes.normalize_();
  return torch.noGrad(() =>
    torch.tidy(() =>
      sinkhorn(model.prototypes.scores(emb), { epsilon, iterations: 3, relative: true }).argmax(1).toArray(),
    ),
  );
}

export interface SentenceFindings {
  /** indices of the sentences naming exactly one finding, and only stating it / only denying it */
  stated: number[];
  denied: number[];
  /** the finding (an extracted label's name) of a stated or denied sentence */
  findingOf: (i: number) => string;
}

/** The finding each sentence names: a single label, stated or denied (the rule-based extractor on the sentence). */
export function sentenceFindings(texts: readonly string[]): SentenceFindings {
  const named = texts.map((t) => {
    const m = labelMentions(t);
    return new Set(m.map((x) => x.label)).size === 1 ? m : undefined;
  });
  return {
    stated: named.flatMap((m, i) => (m && m.every((x) => !x.negated) ? [i] : [])),
    denied: named.flatMap((m, i) => (m && m.every((x) => x.negated) ? [i] : [])),
    findingOf: (i) => {
      const m = named[i];
      if (!m) throw new Error(`sentence ${i} names no single finding`);
      return EXTRACTED_LABELS[m[0]!.label]!;
    },
  };
}

/** `values` shuffled (Fisher–Yates) by the random stream (seed, 31). */
export function shuffledCopy<T>(values: readonly T[], seed: number): T[] {
  const rng = new Rng(seed, 31);
  const out = [...values];
  for (let i = out.length - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** NMI of the codes against the stated findings over the sentences stating one, and its chance level: the same codes
 * shuffled over those sentences (`seed` picks the shuffle). */
export function statedFindingNmi(
  codes: readonly number[],
  findings: SentenceFindings,
  seed: number,
): { sentences: number; nmi: number; chance: number } {
  const { stated, findingOf } = findings;
  const truth = stated.map(findingOf);
  const own = stated.map((i) => codes[i]!);
  return {
    sentences: stated.length,
    nmi: normalizedMutualInformation(own, truth),
    chance: normalizedMutualInformation(shuffledCopy(own, seed), truth),
  };
}
