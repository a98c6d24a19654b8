// Sentence-level CLIP (docs/ARCHITECTURE.md §3): a multi-positive InfoNCE between volumes and the batch's report
// sentences, the control that credits text granularity alone (no prototypes, no codes). Each sentence is embedded as
// in the 'sentence' TMA formulation (its report's token states mean-pooled by sentence index and projected as the
// report embedding is; objectives/tma/shared.ts pooledSentences), here with gradient. A volume's positives are the
// sentences of its own report — and any sentence of the batch with the same text: "No pleural effusion is seen." in
// two reports is no negative for either volume.
import * as torch from '../torch/index.js';
import { type Tensor } from '../torch/index.js';
import { type ReportEncoding, type T3dModel } from '../models/t3d.js';
import { logitScaleValue } from './clip.js';
import { pooledSentences } from './tma/shared.js';

/** objective.sentenceClip */
export interface SentenceClipConfig {
  weight: number;
}

/**
 * Volumes z (B, D) and sentences u (N, D), both normalised; P (B, N) 0/1 positives; ℓ_ij = s·z_i·u_j.
 * L = ½ [ mean_{i: |P_i|>0} −(1/|P_i|) Σ_j P_ij log softmax_j(ℓ_i·) + mean_j −(1/|P_·j|) Σ_i P_ij log softmax_i(ℓ_·j) ]
 * (volume→sentence over the batch's sentences, sentence→volume over its volumes). Every sentence needs a positive.
 */
export function multiPositiveInfoNce(volumes: Tensor, sentences: Tensor, positive: Tensor, scale: Tensor): Tensor {
  const [B, N] = positive.shape as [number, number];
  if (volumes.size(0) !== B || sentences.size(0) !== N) {
    throw new Error(
      `multiPositiveInfoNce: ${volumes.size(0)} volumes and ${sentences.size(0)} sentences for positives ` +
        `[${positive.shape.join(', ')}]`,
    );
  }
  return torch.tidy(() => {
    const p = positive.to(volumes.dtype);
    const logits = volumes.matmul(sentences.T).mul(scale);
    const perVolume = p.div(p.sum(1, true).clampMin(1)).mul(logits.logSoftmax(1)).sum(1).neg();
    const hasPositive = p.sum(1).gt(0).to(volumes.dtype);
    const v2s = perVolume.mul(hasPositive).sum().div(hasPositive.sum().clampMin(1));
    const s2v = p.div(p.sum(0, true).clampMin(1)).mul(logits.logSoftmax(0)).sum(0).neg().mean();
    return v2s.add(s2v).mul(0.5);
  });
}

/**
 * The batch's sentences as rows of the flattened (B·S) sentence slots, and the positives (B, N): report i and
 * sentence j are positive when report i holds a sentence with sentence j's tokens. From token ids (B, L) and each
 * token's sentence number (B, L), −1 outside sentences.
 */
export function sentencePositives(
  inputIds: Tensor,
  sentenceIndex: Tensor,
  S: number,
): { rows: number[]; positive: Tensor } {
  const [B, L] = inputIds.shape as [number, number];
  const ids = inputIds.toArray(),
    index = sentenceIndex.toArray();
  const tokens = Array.from({ length: B * S }, (): number[] => []);
  for (let b = 0; b < B; b++)
    for (let t = 0; t < L; t++) {
      const s = index[b * L + t]!;
      if (s >= 0) tokens[b * S + s]!.push(ids[b * L + t]!);
    }
  const rows = tokens.flatMap((t, r) => (t.length ? [r] : []));
  const key = (r: number) => tokens[r]!.join(',');
  const reportsOf = new Map<string, Set<number>>();
  for (const r of rows) reportsOf.set(key(r), (reportsOf.get(key(r)) ?? new Set()).add(Math.floor(r / S)));
  const p = new Float32Array(B * rows.length);
  rows.forEach((r, j) => {
    for (const i of reportsOf.get(key(r))!) p[i * rows.length + j] = 1;
  });
  return { rows, positive: torch.tensor(p, [B, rows.length], { device: inputIds.device }) };
}

/** The term for a batch: volumes' normalised embeddings (B, D), their reports encoded, token ids and sentence
 * numbers (B, L). CLIP's learnable scale is the temperature. One process only (no gathering across ranks yet). */
export function sentenceClipTerm(
  model: T3dModel,
  volumes: Tensor,
  report: ReportEncoding,
  inputIds: Tensor,
  sentenceIndex: Tensor,
): Tensor {
  if (torch.distributed.worldSize > 1)
    throw new Error('objective.sentenceClip runs in one process: data-parallel sentence gathering is not built');
  return torch.tidy(() => {
    const { sentences } = pooledSentences(model, report.tokens, sentenceIndex);
    const [B, S, D] = sentences.shape as [number, number, number];
    const { rows, positive } = sentencePositives(inputIds, sentenceIndex, S);
    if (!rows.length) throw new Error("objective.sentenceClip: the batch's reports have no sentences");
    const at = torch.tensor(BigInt64Array.from(rows.map(BigInt)), [rows.length], { device: volumes.device });
    const u = sentences.reshape(B * S, D).indexSelect(0, at);
    return multiPositiveInfoNce(volumes, u, positive, logitScaleValue(model.logit_scale.value));
  });
}
