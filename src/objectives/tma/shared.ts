// What the TMA formulations share (docs/ARCHITECTURE.md §4): the config fields every formulation reads, the interface a
// formulation implements, and the swapped prediction over prototypes (SwAV): every view is scored against K
// prototypes; codes come from Sinkhorn-Knopp on the code views; predictor views predict them. A queue of recent
// scores stabilises Sinkhorn with small batches. Which views predict which codes is the formulation's choice (one
// file per formulation beside this one; index.ts maps names to them).
import * as torch from '../../torch/index.js';
import { F, type Tensor } from '../../torch/index.js';
import { type ReportEncoding, type T3dModel, type VolumeEncoding } from '../../models/t3d.js';
import { type Prototypes } from '../../models/heads.js';
import { type PairCrossEntropy, codeUsageEntropy, crossEntropy, pairDiagnostics } from './diagnostics.js';
import { type ClusterNeeds, type ClusterTargets } from './cluster.js';

export { codeUsageEntropy, roll } from './diagnostics.js';

/** The fields of objective.tma that every formulation reads. */
export interface TmaBaseConfig {
  weight: number;
  /** λ ramps linearly from 0 over these steps (the naive form collapses when switched on at once) */
  warmupSteps: number;
  /** λ is 0 (no TMA term, local views not encoded) before this step, then ramps over warmupSteps; default 0.
   * Lets CLIP spread the embeddings first: Sinkhorn codes of near-identical embeddings are near uniform. */
  startStep?: number;
  /** the report takes part (how is the formulation's choice) */
  useText: boolean;
  temperature: number;
  epsilon: number;
  /** ε in units of the code scores' spread between samples instead of absolute (sinkhorn below) */
  relativeEpsilon?: boolean;
  sinkhornIterations: number;
  /** queue length in samples (0 = off) */
  queue: number;
  /** Reference-fidelity options of the prototype formulations (prototypeOptions; off by default). The prototypes
   * receive no gradient before this step (SwAV's freeze_prototypes_niters; MGCA freezes them for the first epoch). */
  freezePrototypesSteps?: number;
  /** the queue is filled and read from this step on (SwAV's epoch_queue_starts) */
  queueStartStep?: number;
  /** the queue takes part in Sinkhorn only once it is full (SwAV) */
  queueWhenFull?: boolean;
}

/** What a formulation needs from the batch and the trainer; nothing else reads its name. */
export interface TmaNeeds {
  /** tokenised reports are encoded for the term (also when CLIP is off) */
  report: boolean;
  /** each report token's sentence number (ViewBatch.sentenceIndex), made by the collator */
  sentenceIndex: boolean;
  /** the local views are encoded for the term */
  localViews: boolean;
  /** > 0: an EMA teacher of the whole model with this momentum, updated after every step (TmaInputs.teacher) */
  teacherMomentum: number;
  /** the teacher's momentum schedule ('cosine': DINO's, towards 1 at the last step) and its BatchNorm mode ('train':
   * batch statistics, as DINO's teacher); absent: constant momentum, running statistics */
  teacherSchedule?: 'cosine';
  teacherBatchNorm?: 'train';
  /** dataset-level report clusters, recomputed by the trainer at the start of every epoch (TmaInputs.clusters) */
  clusters?: ClusterNeeds;
}

/** A batch as the teacher encodes it (ViewBatch's fields). */
export interface TeacherBatch {
  global: Tensor;
  inputIds?: Tensor;
  attentionMask?: Tensor;
}

export interface TmaInputs {
  global: VolumeEncoding;
  /** all local views, concatenated along the batch (V chunks of B) */
  locals?: VolumeEncoding;
  numLocal: number;
  report?: ReportEncoding;
  /** each report token's sentence number (B, L) int64, -1 for special tokens (needs.sentenceIndex) */
  sentenceIndex?: Tensor;
  /** the EMA teacher and the batch it encodes (needs.teacherMomentum > 0) */
  teacher?: { model: T3dModel; batch: TeacherBatch };
  /** the epoch's report clusters (needs.clusters) */
  clusters?: ClusterTargets;
  step?: number; // the training step (sentence's shufflePairs draws its pairing from it)
}

export interface TmaTerm {
  loss: Tensor;
  stats: Record<string, number>;
}

/** An option that only some formulations read. Set (inUse) on another formulation it would be silently ignored,
 * so the registry reports it; check gives the problems with a value whatever the formulation. */
export interface TmaOption {
  key: string;
  inUse(value: unknown): boolean;
  check(value: unknown): string[];
}

/** One TMA formulation. C is its variant of the config, keyed on `formulation`. */
export interface TmaFormulationSpec<C extends TmaBaseConfig> {
  /** the options of its variant beyond the base fields */
  readonly options: readonly TmaOption[];
  needs(cfg: C): TmaNeeds;
  /** problems with the combination of options (objective.tma as read from JSON, not yet validated) */
  validate(tma: Readonly<Record<string, unknown>>): string[];
  /** the term, inside the caller's tidy scope; pushes the code views' embeddings to the queue */
  term(model: T3dModel, x: TmaInputs, cfg: C, queue?: EmbeddingQueue): TmaTerm;
}

/** objective.tma.teacherMomentum, read by the formulations that take codes from an EMA teacher. */
export const teacherMomentumOption: TmaOption = {
  key: 'teacherMomentum',
  inUse: (m) => ((m as number | undefined) ?? 0) > 0,
  check: (m) =>
    typeof m === 'number' && m >= 0 && m < 1
      ? []
      : [`objective.tma.teacherMomentum must be in [0, 1) (got ${JSON.stringify(m)})`],
};

export interface TmaOptions {
  /** prediction temperature τ_p */
  temperature?: number;
  /** Sinkhorn entropic temperature ε */
  epsilon?: number;
  /** ε in units of the code scores' spread between samples (sinkhorn's `relative`) */
  relativeEpsilon?: boolean;
  sinkhornIterations?: number;
  /** (predictor, code view) pairs; default: every view predicts every code view but itself */
  pairs?: [string, string][];
  /** 'pairs' (default): the mean over pairs; 'codeViews' (SwAV): each code view's predictors averaged first */
  average?: 'pairs' | 'codeViews';
}

/**
 * Scores (B, K) for every view, by name; codeViews name the views whose codes are targets (e.g. ['text']
 * or ['text', 'global']). Loss = mean over ordered pairs (predictor v ≠ code view w) of
 * −Σ_k q_k^(w) log softmax(s^(v)/τ)_k. `queue` holds extra score rows per code view (detached), used only
 * inside Sinkhorn. `codeScores` gives the scores the codes are computed from when they are not the views' own
 * (e.g. a teacher's). The returned codes are kept tensors: the caller disposes them; `pairs` gives each term's value
 * (read without gradient, for the diagnostics).
 */
export function tmaLoss(
  scores: Map<string, Tensor>,
  codeViews: string[],
  o: TmaOptions = {},
  queue?: Map<string, Tensor>,
  codeScores?: Map<string, Tensor>,
): { loss: Tensor; codes: Map<string, Tensor>; pairs: PairCrossEntropy[] } {
  const tau = o.temperature ?? 0.1;
  for (const w of codeViews) {
    if (!scores.has(w)) {
      throw new Error(`tmaLoss: code view '${w}' has no scores (views: ${[...scores.keys()].join(', ')})`);
    }
  }
  const codes = new Map<string, Tensor>();
  const values: PairCrossEntropy[] = [];
  const loss = torch.tidy(() => {
    for (const w of codeViews) {
      const s = codeScores?.get(w) ?? scores.get(w)!;
      const B = s.size(0);
      const q = queue?.get(w);
      const all = q && q.size(0) > 0 ? torch.cat([s.detach(), q], 0) : s.detach();
      const sinkhornOptions = { epsilon: o.epsilon, iterations: o.sinkhornIterations, relative: o.relativeEpsilon };
      const code = sinkhorn(all, sinkhornOptions).narrow(0, 0, B);
      codes.set(w, torch.keep(code));
    }
    const everyOther = (v: string) => codeViews.filter((w) => w !== v).map((w): [string, string] => [v, w]);
    const pairs = o.pairs ?? [...scores.keys()].flatMap(everyOther);
    const terms: Tensor[] = [];
    const logp = new Map<string, Tensor>();
    for (const [v, w] of pairs) {
      if (!scores.has(v) || !codes.has(w)) {
        throw new Error(`tmaLoss: pair ${v} → ${w} names a view without scores or a view that is not a code view`);
      }
      if (!logp.has(v)) logp.set(v, scores.get(v)!.div(tau).logSoftmax(1));
      terms.push(codes.get(w)!.mul(logp.get(v)!).sum(1).mean().neg());
    }
    if (terms.length === 0) throw new Error('tmaLoss: no (predictor, code) pair: give at least two views');
    let loss = torch.stack(terms).mean();
    if (o.average === 'codeViews') {
      const perCodeView = codeViews
        .map((w) => terms.filter((_, i) => pairs[i]![1] === w))
        .filter((t) => t.length > 0)
        .map((t) => torch.stack(t).mean());
      loss = torch.stack(perCodeView).mean();
    }
    const ce = torch.noGrad(() => torch.stack(terms.map((t) => t.detach())).toArray());
    pairs.forEach(([predictor, codeView], i) => values.push({ predictor, codeView, ce: ce[i]! }));
    return loss;
  });
  return { loss, codes, pairs: values };
}

/**
 * FIFO of recent embeddings per code view (SwAV's queue). Embeddings, not scores, are stored so that
 * queue scores are recomputed with the current prototypes.
 */
export class EmbeddingQueue {
  private readonly items = new Map<string, Tensor>();
  /** whenFull: a view's queue is read only once it holds `size` rows (SwAV) */
  constructor(
    readonly size: number,
    readonly whenFull = false,
  ) {}

  get(view: string): Tensor | undefined {
    const q = this.items.get(view);
    return this.whenFull && q && q.size(0) < this.size ? undefined : q;
  }

  /** Prepends the batch (detached) and drops the oldest rows beyond `size`. */
  push(view: string, emb: Tensor): void {
    if (this.size <= 0) return;
    const old = this.items.get(view);
    const next = torch
      .tidy(() => {
        const all = old ? torch.cat([emb.detach(), old], 0) : emb.detach().clone();
        return all.narrow(0, 0, Math.min(this.size, all.size(0))).contiguous();
      })
      .keep();
    old?.dispose();
    this.items.set(view, next);
  }

  /** Named tensors for checkpoints (exact resume needs the queue too). */
  stateDict(): Map<string, Tensor> {
    return new Map([...this.items].map(([k, t]) => [`queue.${k}`, t]));
  }
  loadStateDict(state: Map<string, Tensor>): void {
    this.dispose();
    for (const [k, t] of state) if (k.startsWith('queue.')) this.items.set(k.slice(6), t.clone().keep());
  }
  dispose(): void {
    for (const t of this.items.values()) t.dispose();
    this.items.clear();
  }
}

/** Normalises the prototypes and says whether the report takes part (the prototype formulations' first step). */
/**
 * Each report's sentence embeddings (b, S, D), normalised: its token states mean-pooled by sentence index and
 * projected as the report embedding is; and the tokens per sentence (b, S), 0 where a report has fewer sentences.
 * S is the batch's sentence count — the global batch's under data parallelism, so that ranks can gather.
 */
export function pooledSentences(
  model: T3dModel,
  tokens: Tensor,
  sentenceIndex: Tensor,
): { sentences: Tensor; count: Tensor } {
  let S = Math.max(1, sentenceIndex.max().item() + 1);
  if (torch.distributed.worldSize > 1) {
    const s = torch.tensor([S], [1], { dtype: 'int64' });
    torch.distributed.allReduce(s, 'max');
    S = s.item();
    s.dispose();
  }
  const sentenceNumbers = torch.arange(S, undefined, 1, { device: tokens.device }).view(1, S, 1);
  const member = sentenceIndex.unsqueeze(1).eq(sentenceNumbers).to(tokens.dtype); // (b, S, L)
  const count = member.sum(2);
  const pooled = member.matmul(tokens).div(count.clampMin(1).unsqueeze(2));
  return { sentences: F.normalize(model.text_projection.forward(pooled), -1), count };
}

export function prototypeText(model: T3dModel, x: TmaInputs, cfg: TmaBaseConfig): boolean {
  model.prototypes.normalize_();
  if (cfg.useText && !x.report) throw new Error('objective.tma.useText needs tokenised reports');
  return cfg.useText && !!x.report;
}

/** The code views' embeddings from the teacher (no gradient): the report's e and the global view's h — fused with
 * the report by cross-attention, or (codes 'embedding') the normalised sum of the global view's z and the
 * report's e. */
export function teacherEmbeddings(
  teacher: T3dModel,
  batch: TeacherBatch,
  views: string[],
  useText: boolean,
  codes: 'fusion' | 'embedding',
): Map<string, Tensor> {
  return torch.noGrad(() =>
    torch.tidy(() => {
      const out = new Map<string, Tensor>();
      const { inputIds, attentionMask } = batch;
      const report = inputIds && attentionMask ? teacher.encodeReport(inputIds, attentionMask) : undefined;
      if (views.includes('text') && report) out.set('text', report.emb);
      if (views.includes('global')) {
        const g = teacher.encodeVolume(batch.global);
        const text = useText && report ? { tokens: report.tokens, paddingMask: report.paddingMask } : undefined;
        if (codes === 'fusion') out.set('global', teacher.fusion.forward(g.tokens, text));
        else out.set('global', text ? F.normalize(g.emb.add(report!.emb), -1) : g.emb);
      }
      return out;
    }),
  );
}

/** Which views a prototype formulation scores, whose codes are the targets and who predicts them. */
export interface SwappedSetup {
  scores: Map<string, Tensor>;
  codeViews: string[];
  /** embeddings whose scores the codes come from (queued) */
  codeEmb: Map<string, Tensor>;
  /** (predictor, code view); default: every view predicts every code view but itself */
  pairs?: [string, string][];
  /** the teacher's code scores and prototypes, when the codes are a teacher's (the queue then holds its embeddings) */
  codes?: { scores: Map<string, Tensor>; prototypes: Prototypes };
  /** the leak diagnostic: predictor view, code view, and the predictor's scores for the batch rolled by one */
  leak?: { view: string; codeView: string; rolled: () => Tensor };
}

/**
 * The swapped-prediction term of a setup, with the code-usage entropy, the per-pair cross-entropies with their oracle
 * and chance bounds and the codes' row entropy (pairDiagnostics in diagnostics.ts), and the leak diagnostic
 * (stats.tmaLeakGap): a predictor's cross-entropy against its codes when the volume is another patient's (the batch
 * rolled by one) minus that with the true volume; near 0 means TMA is solved without looking at the image.
 */
export function swappedPrediction(
  model: T3dModel,
  s: SwappedSetup,
  cfg: TmaBaseConfig & { averageByCodeView?: boolean },
  batchSize: number,
  queue?: EmbeddingQueue,
): TmaTerm {
  const { scores, codeViews, codeEmb } = s;
  let codeScores = s.codes?.scores;
  let leak = s.leak;
  if (torch.distributed.worldSize > 1) {
    // data-parallel: codes and cross-entropies over the global batch, as SwAV does. Predictor scores are gathered
    // with this rank's rows keeping their gradient; code scores and queued embeddings carry none. The leak
    // diagnostic needs this rank's inputs beside global codes, so it is left out; the per-pair diagnostics need only
    // the gathered scores and codes (the bounds roll the global batch), so they stay.
    const gathered = (t: Tensor) => torch.cat(torch.distributed.allGather(t), 0);
    for (const [v, t] of scores) scores.set(v, torch.distributed.gatherWithLocalGrad(t));
    if (codeScores) for (const [v, t] of codeScores) codeScores.set(v, gathered(t));
    for (const [v, t] of codeEmb) codeEmb.set(v, gathered(t));
    leak = undefined;
  }
  const codePrototypes = s.codes?.prototypes ?? model.prototypes;
  const queued = new Map<string, Tensor>();
  for (const v of codeViews) {
    const q = queue?.get(v);
    if (q)
      queued.set(
        v,
        torch.noGrad(() => codePrototypes.scores(q)),
      );
  }
  const o: TmaOptions = {
    temperature: cfg.temperature,
    epsilon: cfg.epsilon,
    relativeEpsilon: cfg.relativeEpsilon,
    sinkhornIterations: cfg.sinkhornIterations,
    pairs: s.pairs,
    ...(cfg.averageByCodeView ? { average: 'codeViews' as const } : {}),
  };
  const { loss, codes, pairs } = tmaLoss(scores, codeViews, o, queued, codeScores);
  for (const v of codeViews) if (codeEmb.has(v)) queue?.push(v, codeEmb.get(v)!);
  const stats: Record<string, number> = {};
  const first = codes.get(codeViews[0]!);
  if (first) stats.codeEntropy = codeUsageEntropy(first);
  const codeScoresOf = (w: string) => codeScores?.get(w) ?? scores.get(w)!;
  Object.assign(stats, pairDiagnostics(pairs, codes, codeScoresOf, codeViews, cfg.temperature));
  const leakCodes = leak && codes.get(leak.codeView);
  if (leak && leakCodes && batchSize > 1) {
    const own = torch.noGrad(() => crossEntropy(leakCodes, scores.get(leak.view)!.detach(), cfg.temperature));
    stats.tmaLeakGap = torch.tidy(() => crossEntropy(leakCodes, leak.rolled(), cfg.temperature)) - own;
  }
  torch.dispose([...codes.values()]);
  return { loss, stats };
}

// Sinkhorn-Knopp equal-partition codes (SwAV): soft assignments of samples to K prototypes such that
// every prototype receives the same share of the batch. No gradient flows through the codes.
/**
 * scores (B, K) → codes (B, K), rows summing to 1 and columns to B/K after convergence.
 * `iterations` alternating normalisations (SwAV uses 3); epsilon is the entropic temperature. `relative`: epsilon
 * is in units of the scores' spread between samples (the sd of the scores with each prototype's batch mean removed,
 * which Sinkhorn's normalisations ignore anyway). Codes are then as sharp when the embeddings are concentrated (early
 * in CLIP training their mean pairwise cosine is 0.98, and absolute-ε codes are close to uniform) as when they spread.
 */
export function sinkhorn(
  scores: Tensor,
  o: { epsilon?: number; iterations?: number; relative?: boolean } = {},
): Tensor {
  const iters = o.iterations ?? 3;
  return torch.noGrad(() =>
    torch.tidy(() => {
      const [B, K] = scores.shape as [number, number];
      const s = scores.detach().to('float64');
      const spread = () => Math.max(s.sub(s.mean(0, true)).pow(2).mean().sqrt().item(), 1e-12);
      const eps = (o.epsilon ?? 0.05) * (o.relative && B > 1 ? spread() : 1);
      // Log-domain iterations: the same fixed point as SwAV's, but no row can underflow to all zeros when
      // scores/epsilon are large (which would turn the codes into NaN).
      let logQ = s.div(eps).T; // (K, B)
      logQ = logQ.sub(logQ.logsumexp([0, 1]));
      for (let i = 0; i < iters; i++) {
        logQ = logQ.sub(logQ.logsumexp(1, true)).sub(Math.log(K)); // each prototype gets 1/K of the mass
        logQ = logQ.sub(logQ.logsumexp(0, true)).sub(Math.log(B)); // each sample has 1/B of the mass
      }
      const q = logQ.exp();
      return q.mul(B).T.to(scores.dtype);
    }),
  );
}
