// TMA formulation 'sentence' — sentence-level text-informed codes with batch-free targets. Every sentence of the
// batch's reports is embedded (its report tokens' states mean-pooled by sentence index and projected into the embedding
// space as the report embedding is; no gradient), scored against the K prototypes and given Sinkhorn codes together
// with a queue of recent sentences. A volume's target is the normalised sum of its sentences' codes ('mean') or their
// noisy-or; the global view's prototype scores predict it — or, pooled, the per-prototype maximum (or logsumexp) of the
// global and local views' scores, multiple-instance style, so no crop is asked for a finding it does not hold. A batch
// of 8 reports carries ~110 sentences, which cluster by finding: the codes no longer hinge on 8 points, and a finding
// named by one sentence among ~15 still owns its share of the target. Text shapes only the targets. `shufflePairs` is
// the negative control: every volume's target comes from another volume's sentences (shuffledPairing below).
import * as torch from '../../torch/index.js';
import { type Tensor } from '../../torch/index.js';
import { type T3dModel } from '../../models/t3d.js';
import {
  type EmbeddingQueue,
  type TmaBaseConfig,
  type TmaFormulationSpec,
  type TmaOption,
  codeUsageEntropy,
  pooledSentences,
  roll,
  sinkhorn,
} from './shared.js';
import { Rng } from '../../util/rng.js';
import { prototypeOptions, shufflePairsOption } from './options.js';

export type SentenceTarget = 'mean' | 'noisy-or';
export type SentencePool = 'global' | 'max' | 'logsumexp';

/** objective.tma with formulation 'sentence'. K is model.prototypes (the study uses 32–64). `queue` (a base field)
 * counts queued sentences here, not samples. */
export interface SentenceTmaConfig extends TmaBaseConfig {
  formulation: 'sentence';
  /** how a volume's sentence codes make its target; default 'mean' */
  sentenceTarget?: SentenceTarget;
  /** which views predict the target; default 'global' (see views below) */
  pool?: SentencePool;
  /** the negative control: each volume's target is built from another volume's sentences (shuffledPairing) */
  shufflePairs?: boolean;
}

/** the queue's view name for sentence embeddings (distinct from the other formulations' 'text' and 'global') */
export const SENTENCE_QUEUE_VIEW = 'sentence';

const quoted = (values: readonly string[]) =>
  values
    .map((s) => `'${s}'`)
    .join(', ')
    .replace(/, ([^,]*)$/, ' or $1');
const choice = (key: string, values: readonly string[]): TmaOption => ({
  key,
  inUse: (v) => v !== undefined,
  check: (v) =>
    values.includes(v as string) ? [] : [`objective.tma.${key} must be ${quoted(values)} (got ${JSON.stringify(v)})`],
});
const sentenceTargetOption = choice('sentenceTarget', ['mean', 'noisy-or']);
const poolOption = choice('pool', ['global', 'max', 'logsumexp']);

/**
 * Targets (B, K) from sentence codes (N, K) (rows summing to 1) and each sentence's volume `owner` (N) int64:
 * 'mean': t_b ∝ Σ_{s∈b} q_s; 'noisy-or': t_bk ∝ 1 − Π_{s∈b} (1 − q_sk). Each row sums to 1; a volume without
 * sentences gets a row of zeros.
 */
export function sentenceTargets(codes: Tensor, owner: Tensor, B: number, mode: SentenceTarget = 'mean'): Tensor {
  return torch.noGrad(() =>
    torch.tidy(() => {
      const [N, K] = codes.shape as [number, number];
      const index = owner.view(N, 1).expand(N, K);
      const zeros = torch.zeros([B, K], { dtype: codes.dtype, device: codes.device });
      const u =
        mode === 'mean'
          ? zeros.scatterAdd(0, index, codes)
          : zeros.scatterAdd(0, index, codes.neg().add(1).clampMin(1e-12).log()).exp().neg().add(1);
      return u.div(u.sum(1, true).clampMin(1e-12));
    }),
  );
}

/** The key of shufflePairs' random stream. */
const SHUFFLE_STREAM = 0x5e47;

/**
 * shufflePairs' pairing at a step: volume i takes the target made from volume pairing[i]'s sentences, a derangement of
 * the B volumes (none keeps its own) drawn from a stream keyed on the step and B alone: the same on every rank and on
 * resume, and the global generator is left alone, so batches, crops and dropout stay those of the unshuffled arm.
 */
export function shuffledPairing(B: number, step: number): number[] {
  if (B < 2) throw new Error(`objective.tma.shufflePairs needs batches of two volumes or more (got ${B})`);
  return new Rng(SHUFFLE_STREAM, step, B).derangement(B);
}

/** Targets (B, K) re-paired: row i is row pairing[i] of `targets`. */
export function repairedTargets(targets: Tensor, pairing: number[]): Tensor {
  return torch.noGrad(() =>
    torch.tidy(() => {
      const index = torch.tensor(
        BigInt64Array.from(pairing, (i) => BigInt(i)),
        [pairing.length],
        { device: targets.device },
      );
      return targets.indexSelect(0, index);
    }),
  );
}

/** The batch's sentence embeddings (N, D), normalised and without gradient, and each one's volume (N) int64. */
function batchSentences(model: T3dModel, tokens: Tensor, sentenceIndex: Tensor): { emb: Tensor; owner: Tensor } {
  return torch.noGrad(() =>
    torch.tidy(() => {
      const world = torch.distributed.worldSize;
      let { sentences, count } = pooledSentences(model, tokens.detach(), sentenceIndex);
      if (world > 1) {
        sentences = torch.cat(torch.distributed.allGather(sentences.contiguous()), 0);
        count = torch.cat(torch.distributed.allGather(count.contiguous()), 0);
      }
      const [B, S, D] = sentences.shape as [number, number, number];
      const present = count
        .flatten()
        .toArray()
        .map((n) => n > 0);
      const rows = present.flatMap((p, i) => (p ? [BigInt(i)] : []));
      const owners = present.flatMap((p, i) => (p ? [BigInt(Math.floor(i / S))] : []));
      if (!rows.length) throw new Error("objective.tma.formulation 'sentence': the batch's reports have no sentences");
      const at = (v: bigint[]) => torch.tensor(BigInt64Array.from(v), [v.length], { device: tokens.device });
      const emb = sentences.reshape(B * S, D).indexSelect(0, at(rows));
      return { emb: emb.keep(), owner: at(owners).keep() };
    }),
  );
}

/** Cross-entropy of logits (B, K) at temperature τ against soft targets (B, K), averaged over volumes with a target. */
function softCrossEntropy(scores: Tensor, targets: Tensor, tau: number): Tensor {
  const present = targets.sum(1).gt(0).to(scores.dtype);
  const perVolume = targets.mul(scores.div(tau).logSoftmax(1)).sum(1).neg();
  return perVolume.mul(present).sum().div(present.sum().clampMin(1));
}

export const sentence: TmaFormulationSpec<SentenceTmaConfig> = {
  options: [sentenceTargetOption, poolOption, shufflePairsOption, ...prototypeOptions],
  needs: (cfg) => ({
    report: true,
    sentenceIndex: true,
    localViews: (cfg.pool ?? 'global') !== 'global',
    teacherMomentum: 0,
  }),
  validate: (tma) =>
    tma.useText === false
      ? [
          "objective.tma.formulation 'sentence' takes its targets from the report's sentences: " +
            'it needs objective.tma.useText true',
        ]
      : [],
  term(model, x, cfg, queue?: EmbeddingQueue) {
    const tau = cfg.temperature;
    const pool = cfg.pool ?? 'global';
    if (!x.report || !x.sentenceIndex) {
      throw new Error(
        "objective.tma.formulation 'sentence' needs tokenised reports and their sentence indices " +
          '(objective.tma.useText true)',
      );
    }
    if (pool !== 'global' && (!x.locals || x.numLocal < 1)) {
      throw new Error(
        `objective.tma.pool '${pool}' pools the global and local views: it needs local views ` +
          "(data.views.numLocal ≥ 1), or pool 'global'",
      );
    }
    if (cfg.shufflePairs && x.step === undefined)
      throw new Error('objective.tma.shufflePairs draws its pairing from the training step: TmaInputs.step is needed');
    const p = model.prototypes;
    p.normalize_();
    const { emb, owner } = batchSentences(model, x.report.tokens, x.sentenceIndex);
    const N = emb.size(0);
    // Sinkhorn over the batch's sentences and the queued ones (scored with the current prototypes)
    const codes = torch.noGrad(() => {
      const q = queue?.get(SENTENCE_QUEUE_VIEW);
      const all = q && q.size(0) > 0 ? torch.cat([emb, q.to(emb.dtype)], 0) : emb;
      const o = { epsilon: cfg.epsilon, iterations: cfg.sinkhornIterations, relative: cfg.relativeEpsilon };
      return sinkhorn(p.scores(all), o).narrow(0, 0, N);
    });
    queue?.push(SENTENCE_QUEUE_VIEW, emb);
    // the predictor: the global view's scores, or per prototype the views' scores pooled over views
    let scores = p.scores(x.global.emb); // (b, K)
    if (pool !== 'global') {
      const V = x.numLocal,
        b = x.global.emb.size(0);
      const views = torch.cat([scores.unsqueeze(0), p.scores(x.locals!.emb).view(V, b, -1)], 0); // (V+1, b, K)
      // logsumexp at temperature τ, returned in score units so that the cross-entropy's 1/τ applies once
      scores = pool === 'max' ? views.max(0) : views.div(tau).logsumexp(0).mul(tau);
    }
    if (torch.distributed.worldSize > 1) scores = torch.distributed.gatherWithLocalGrad(scores);
    const B = scores.size(0);
    let targets = sentenceTargets(codes, owner, B, cfg.sentenceTarget ?? 'mean');
    if (cfg.shufflePairs) {
      const own = targets;
      targets = repairedTargets(own, shuffledPairing(B, x.step!));
      own.dispose();
    }
    const loss = softCrossEntropy(scores, targets, tau);
    const stats: Record<string, number> = { codeEntropy: codeUsageEntropy(codes), sentences: N };
    if (B > 1) {
      // the leak diagnostic: the cross-entropy with another patient's predictor scores minus with the volume's own
      stats.tmaLeakGap = torch.noGrad(() =>
        torch.tidy(
          () =>
            softCrossEntropy(roll(scores.detach()), targets, tau).item() -
            softCrossEntropy(scores.detach(), targets, tau).item(),
        ),
      );
    }
    torch.dispose([emb, owner, codes, targets]);
    return { loss, stats };
  },
};
