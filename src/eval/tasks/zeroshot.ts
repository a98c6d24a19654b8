// Zero-shot classification (CT-RATE protocol: "{label} is present." vs "{label} is not present.", softmax
// over the pair) and report↔volume retrieval, from a model's global embeddings.
import * as torch from '../../torch/index.js';
import { F, type Tensor } from '../../torch/index.js';
import { type ClipModel } from '../../models/t3d.js';
import { type WordPieceTokenizer } from '../../text/wordpiece.js';
import { embedTexts, reportsOf, type Embedded } from '../../inference/embed.js';
import { macroAuroc, recallAtK } from '../metrics/classification.js';

/** Positive/negative prompt pairs (CT-RATE protocol); the first is CT-CLIP's, the others form the ensemble. */
export const PROMPT_TEMPLATES: readonly { present: (l: string) => string; absent: (l: string) => string }[] = [
  { present: (l) => `${l} is present.`, absent: (l) => `${l} is not present.` },
  { present: (l) => `There is ${l.toLowerCase()}.`, absent: (l) => `There is no ${l.toLowerCase()}.` },
  { present: (l) => `${l} is seen.`, absent: (l) => `No ${l.toLowerCase()} is seen.` },
];

/** Prompt embedding per label: templates averaged in embedding space, then renormalised (as CLIP's ensembles). */
function promptEmbeddings(
  model: ClipModel,
  tokenizer: WordPieceTokenizer | undefined,
  labelNames: string[],
  polarity: 'present' | 'absent',
  templates: number,
  maxTokens: number,
  device?: string,
): Tensor {
  return torch.tidy(() => {
    const per = PROMPT_TEMPLATES.slice(0, templates).map((t) =>
      embedTexts(model, tokenizer, labelNames.map(t[polarity]), maxTokens, device),
    );
    return F.normalize(torch.stack(per, 0).mean(0), -1);
  });
}

/** Present/absent prompt embeddings, (L, D) each; the same for every volume, so services compute them once. */
export interface Prompts {
  pos: Tensor;
  neg: Tensor;
}

/** `templates` = how many of PROMPT_TEMPLATES to ensemble (1 = the single CT-CLIP pair). The caller disposes. */
export function zeroShotPrompts(
  model: ClipModel,
  tokenizer: WordPieceTokenizer | undefined,
  labelNames: string[],
  o: { templates?: number; maxTokens?: number; device?: string } = {},
): Prompts {
  const templates = o.templates ?? 1;
  if (!(Number.isInteger(templates) && templates >= 1 && templates <= PROMPT_TEMPLATES.length))
    throw new Error(`zero-shot: templates must be 1..${PROMPT_TEMPLATES.length}, got ${templates}`);
  return torch.noGrad(() => ({
    pos: promptEmbeddings(model, tokenizer, labelNames, 'present', templates, o.maxTokens ?? 64, o.device).keep(),
    neg: promptEmbeddings(model, tokenizer, labelNames, 'absent', templates, o.maxTokens ?? 64, o.device).keep(),
  }));
}

/** Positive-prompt probability per volume and label: softmax over (present, absent) of scaled similarities. */
export function scoresFromPrompts(model: ClipModel, volumes: Tensor, p: Prompts): number[][] {
  return torch.noGrad(() =>
    torch.tidy(() => {
      const scale = model.textSide().logitScale.value.exp().clamp(undefined, 100);
      const sp = volumes.matmul(p.pos.T).mul(scale),
        sn = volumes.matmul(p.neg.T).mul(scale); // (N, L)
      return rows(torch.stack([sp, sn], 2).softmax(2).select(2, 0));
    }),
  );
}

export function zeroShotScores(
  model: ClipModel,
  tokenizer: WordPieceTokenizer | undefined,
  volumes: Tensor,
  labelNames: string[],
  o: { templates?: number; maxTokens?: number; device?: string } = {},
): number[][] {
  const p = zeroShotPrompts(model, tokenizer, labelNames, o);
  try {
    return scoresFromPrompts(model, volumes, p);
  } finally {
    torch.dispose([p.pos, p.neg]);
  }
}

/** A 2-D tensor as rows of float64 numbers. */
export function rows(t: Tensor): number[][] {
  const flat = t.to('float64').toArray();
  const C = t.size(1);
  return Array.from({ length: t.size(0) }, (_, i) => flat.slice(i * C, (i + 1) * C));
}

export interface ZeroShotResult {
  macroAuroc: number;
  labelsCounted: number;
  perLabel: Record<string, number>;
  recallReportToVolume: Record<number, number>;
  recallVolumeToReport: Record<number, number>;
}

export function evaluateEmbedded(
  model: ClipModel,
  tokenizer: WordPieceTokenizer | undefined,
  e: Embedded,
  labelNames: string[],
  device?: string,
): ZeroShotResult {
  const scores = zeroShotScores(model, tokenizer, e.volumes, labelNames, { device });
  const m = macroAuroc(scores, e.labels);
  const sim = torch.noGrad(() => torch.tidy(() => rows(reportsOf(e).matmul(e.volumes.T))));
  const transpose = sim.map((_, i) => sim.map((row) => row[i]!));
  const ks = [1, 5, 10].filter((k) => k <= sim.length);
  return {
    macroAuroc: m.value,
    labelsCounted: m.labelsCounted,
    perLabel: Object.fromEntries(labelNames.map((l, i) => [l, m.perLabel[i]!])),
    recallReportToVolume: recallAtK(sim, ks),
    recallVolumeToReport: recallAtK(transpose, ks),
  };
}
