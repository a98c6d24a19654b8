// The full pre-training objective (docs/ARCHITECTURE.md §3):
// L = w_clip·L_clip + w_sent·L_sentence-clip + w_lab·L_labels + λ_tma(step)·L_tma + w_ssl·L_ssl + w_rec·L_rec.
// Every part can be switched off, which gives the baselines: CLIP-only (tma.weight 0), TMA without text
// (tma.useText false), vision-only SSL (clip off, ssl on: SimCLR between views; or restoration alone with
// restoration.useText false).
import * as torch from '../torch/index.js';
import { F, type Tensor } from '../torch/index.js';
import { type T3dModel } from '../models/t3d.js';
import { clipLoss } from './clip.js';
import { type EmbeddingQueue } from './tma/shared.js';
import { type ClusterTargets, type TmaConfig, tmaFormulation } from './tma/index.js';
import { maskPatches, restorationLoss } from './restoration.js';
import { type LabelsConfig, labelLoss } from './labels.js';
import { type SentenceClipConfig, sentenceClipTerm } from './sentence-clip.js';

export interface ObjectiveConfig {
  /**
   * weight: global view ↔ report InfoNCE. localWeight (default 0): the same InfoNCE between each local view and its
   * volume's report, averaged over the views: the crop-CLIP control (the crops the TMA arms see, aligned with the
   * whole report, no TMA)
   */
  clip: { weight: number; localWeight?: number };
  /** multi-positive InfoNCE between volumes and report sentences (off when absent) */
  sentenceClip?: SentenceClipConfig;
  /** multi-label BCE of a linear head on the image embedding against report-extracted labels (off when absent) */
  labels?: LabelsConfig;
  tma: TmaConfig;
  ssl: { weight: number; temperature: number };
  /** masked-volume restoration of the global view, the decoder FiLM-conditioned on the report (useText) */
  restoration?: { weight: number; maskRatio: number; patchSize: number; useText: boolean };
}

export interface LossParts {
  total: Tensor;
  parts: Record<string, number>;
  stats: Record<string, number>;
}

export interface ViewBatch {
  /** (B, 1, D, H, W) */
  global: Tensor;
  /** V × (B, 1, d, h, w) */
  locals: Tensor[];
  /** tokenised reports (B, L) int64 and mask (B, L); absent for vision-only SSL */
  inputIds?: Tensor;
  attentionMask?: Tensor;
  /** each token's sentence number (B, L) int64, -1 for special tokens; when the TMA formulation or sentence-level
   * CLIP needs them */
  sentenceIndex?: Tensor;
  /** labels extracted from each report (B, L) 0/1, when objective.labels is on */
  reportLabels?: Tensor;
  /** the epoch's report clusters for this batch, when the TMA formulation needs them (added by the trainer) */
  clusters?: ClusterTargets;
}

export function tmaWeight(cfg: ObjectiveConfig['tma'], step: number): number {
  const start = cfg.startStep ?? 0;
  if (cfg.weight <= 0 || step < start) return 0;
  return cfg.warmupSteps > 0 ? cfg.weight * Math.min(1, (step - start) / cfg.warmupSteps) : cfg.weight;
}

/** SimCLR's NT-Xent between two views' normalised embeddings (symmetric InfoNCE, fixed temperature). */
export function simclrLoss(a: Tensor, b: Tensor, temperature: number): Tensor {
  return torch.tidy(() => {
    const logits = a.matmul(b.T).div(temperature);
    const target = torch.arange(a.size(0), undefined, 1, { device: a.device });
    return F.crossEntropy(logits, target).add(F.crossEntropy(logits.T, target)).mul(0.5);
  });
}

/** Computes the loss for one batch (inside the caller's tidy scope); updates the queue. */
export function t3dLoss(
  model: T3dModel,
  batch: ViewBatch,
  cfg: ObjectiveConfig,
  step: number,
  queue?: EmbeddingQueue,
  teacher?: T3dModel,
): LossParts {
  const parts: Record<string, number> = {};
  const stats: Record<string, number> = {};
  const terms: Tensor[] = [];
  const lambda = tmaWeight(cfg.tma, step);
  const tma = lambda > 0 ? tmaFormulation(cfg.tma) : undefined;
  const needs = tma?.needs(cfg.tma);
  const rec = cfg.restoration && cfg.restoration.weight > 0 ? cfg.restoration : undefined;
  const sentenceClip = (cfg.sentenceClip?.weight ?? 0) > 0 ? cfg.sentenceClip : undefined;
  const labels = (cfg.labels?.weight ?? 0) > 0 ? cfg.labels : undefined;
  const clipLocal = cfg.clip.localWeight ?? 0;
  const needText = cfg.clip.weight > 0 || clipLocal > 0 || !!sentenceClip || !!needs?.report || !!rec?.useText;
  if (needText && (!batch.inputIds || !batch.attentionMask))
    throw new Error('t3dLoss: this objective needs tokenised reports');

  // data-parallel: CLIP, SimCLR and TMA over the global batch (every rank's embeddings or scores gathered, this
  // rank's own keeping their gradient); terms that are means over this rank's volumes count 1/worldSize, so that the
  // sum of the ranks' gradients (the trainer's allReduce) is the gradient of the global batch's loss
  const world = torch.distributed.worldSize;
  const gather = (t: Tensor) => (world > 1 ? torch.distributed.gatherWithLocalGrad(t) : t);

  const g = model.encodeVolume(batch.global);
  const report = needText ? model.encodeReport(batch.inputIds!, batch.attentionMask!) : undefined;
  if (cfg.clip.weight > 0 && report) {
    const l = clipLoss(gather(g.emb), gather(report.emb), model.logit_scale.value);
    parts.clip = l.item();
    terms.push(l.mul(cfg.clip.weight));
    stats.logitScale = model.logit_scale.value.exp().item();
  }

  if (sentenceClip && report) {
    if (!batch.sentenceIndex) throw new Error("t3dLoss: objective.sentenceClip needs the reports' sentence indices");
    const l = sentenceClipTerm(model, g.emb, report, batch.inputIds!, batch.sentenceIndex);
    parts.sentenceClip = l.item();
    terms.push(l.mul(sentenceClip.weight));
  }
  if (labels) {
    if (!model.label_head) throw new Error('t3dLoss: objective.labels is on but the model has no label head');
    if (!batch.reportLabels) throw new Error('t3dLoss: objective.labels needs the labels extracted from the reports');
    const l = labelLoss(model.label_head.forward(g.emb), batch.reportLabels);
    parts.labels = l.item();
    // a mean over this rank's volumes (see above)
    terms.push(l.mul(labels.weight / world));
  }

  const V = batch.locals.length;
  const B = batch.global.size(0);
  const encodeLocals = V > 0 && (!!needs?.localViews || cfg.ssl.weight > 0 || clipLocal > 0);
  const locals = encodeLocals ? model.encodeVolume(torch.cat(batch.locals, 0)) : undefined;

  if (clipLocal > 0 && report && locals) {
    const perView = Array.from({ length: V }, (_, v) =>
      clipLoss(gather(locals.emb.narrow(0, v * B, B)), gather(report.emb), model.logit_scale.value),
    );
    const l = perView.reduce((a, b) => a.add(b)).div(V);
    parts.clipLocal = l.item();
    terms.push(l.mul(clipLocal));
  }

  if (tma) {
    const { sentenceIndex, clusters } = batch;
    const teacherInput = teacher && { model: teacher, batch };
    const x = { global: g, locals, numLocal: V, report, sentenceIndex, teacher: teacherInput, clusters, step };
    // the queue takes part from queueStartStep on (SwAV switches it on late)
    const term = tma.term(model, x, cfg.tma, step >= (cfg.tma.queueStartStep ?? 0) ? queue : undefined);
    Object.assign(stats, term.stats);
    parts.tma = term.loss.item();
    stats.tmaWeight = lambda;
    terms.push(term.loss.mul(lambda));
  }

  if (cfg.ssl.weight > 0 && locals && V >= 1) {
    const first = locals.emb.narrow(0, 0, B);
    const l = simclrLoss(gather(g.emb), gather(first), cfg.ssl.temperature);
    parts.ssl = l.item();
    terms.push(l.mul(cfg.ssl.weight));
  }
  if (rec) {
    const decoder = model.restoration_decoder;
    if (!decoder)
      throw new Error(
        't3dLoss: objective.restoration is on but the model has no restoration decoder (model.restoration)',
      );
    const { masked, mask } = maskPatches(batch.global, rec.maskRatio, rec.patchSize);
    const pred = decoder.forward(
      model.visual.encode(masked).featureMap,
      batch.global.shape.slice(2) as [number, number, number],
      rec.useText ? report?.sentence : undefined,
    );
    const l = restorationLoss(pred, batch.global, mask);
    parts.rec = l.item();
    terms.push(l.mul(rec.weight / world));
  }
  if (terms.length === 0) throw new Error('t3dLoss: every objective is switched off');
  // Embedding spread: mean pairwise cosine of global embeddings; near 1 means the features collapsed.
  stats.embCosine = torch.noGrad(() =>
    g.emb
      .matmul(g.emb.T)
      .sum()
      .sub(B)
      .div(Math.max(1, B * (B - 1)))
      .item(),
  );
  return { total: terms.reduce((a, b) => a.add(b)), parts, stats };
}
