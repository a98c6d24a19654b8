// The full pre-training objective (DESIGN §4): L = w_clip·L_clip + λ_tma(step)·L_tma + w_ssl·L_ssl + w_rec·L_rec.
// Every part can be switched off, which gives the baselines: CLIP-only (tma.weight 0), TMA without text
// (tma.useText false), vision-only SSL (clip off, ssl on: SimCLR between views; or restoration alone with
// restoration.useText false).
import * as torch from '../torch/index.js';
import { F, type Tensor } from '../torch/index.js';
import { type T3dModel } from '../models/t3d.js';
import { clipLoss } from './clip.js';
import { EmbeddingQueue, codeUsageEntropy, tmaLoss } from './tma.js';
import { maskPatches, restorationLoss } from './restoration.js';

export interface ObjectiveConfig {
  clip: { weight: number };
  tma: {
    weight: number;
    /** λ ramps linearly from 0 over these steps (the naive form collapses when switched on at once) */
    warmupSteps: number;
    /** cross-attention to the report and the report as a code view */
    useText: boolean;
    /** views whose Sinkhorn codes are targets: 'text' and/or 'global' */
    codeViews: ('text' | 'global')[];
    temperature: number;
    epsilon: number;
    sinkhornIterations: number;
    /** queue length in samples (0 = off) */
    queue: number;
    /** > 0: codes come from an EMA (momentum) teacher of the whole model instead of the student itself */
    teacherMomentum?: number;
  };
  ssl: { weight: number; temperature: number };
  /** masked-volume restoration of the global view, the decoder FiLM-conditioned on the report (useText) */
  restoration?: { weight: number; maskRatio: number; patchSize: number; useText: boolean };
}

export interface LossParts { total: Tensor; parts: Record<string, number>; stats: Record<string, number> }

export interface ViewBatch {
  /** (B, 1, D, H, W) */
  global: Tensor;
  /** V × (B, 1, d, h, w) */
  locals: Tensor[];
  /** tokenised reports (B, L) int64 and mask (B, L); absent for vision-only SSL */
  inputIds?: Tensor;
  attentionMask?: Tensor;
}

export function tmaWeight(cfg: ObjectiveConfig['tma'], step: number): number {
  if (cfg.weight <= 0) return 0;
  return cfg.warmupSteps > 0 ? cfg.weight * Math.min(1, step / cfg.warmupSteps) : cfg.weight;
}

/** SimCLR's NT-Xent between two views' normalised embeddings (symmetric InfoNCE, fixed temperature). */
export function simclrLoss(a: Tensor, b: Tensor, temperature: number): Tensor {
  return torch.tidy(() => {
    const logits = a.matmul(b.T).div(temperature);
    const target = torch.arange(a.size(0), undefined, 1, { device: a.device });
    return F.crossEntropy(logits, target).add(F.crossEntropy(logits.T, target)).mul(0.5);
  });
}

/** The code views' embeddings from the teacher (no gradient): the report's e and the global view's fused h. */
function teacherEmbeddings(teacher: T3dModel, batch: ViewBatch, views: string[], useText: boolean): Map<string, Tensor> {
  return torch.noGrad(() => torch.tidy(() => {
    const out = new Map<string, Tensor>();
    const report = batch.inputIds && batch.attentionMask ? teacher.encodeReport(batch.inputIds, batch.attentionMask) : undefined;
    if (views.includes('text') && report) out.set('text', report.emb);
    if (views.includes('global')) {
      const text = useText && report ? { tokens: report.tokens, paddingMask: report.paddingMask } : undefined;
      out.set('global', teacher.fusion.forward(teacher.encodeVolume(batch.global).tokens, text));
    }
    return out;
  }));
}

/** Computes the loss for one batch (inside the caller's tidy scope); updates the queue. */
export function t3dLoss(model: T3dModel, batch: ViewBatch, cfg: ObjectiveConfig, step: number, queue?: EmbeddingQueue, teacher?: T3dModel): LossParts {
  const parts: Record<string, number> = {};
  const stats: Record<string, number> = {};
  const terms: Tensor[] = [];
  const lambda = tmaWeight(cfg.tma, step);
  const rec = cfg.restoration && cfg.restoration.weight > 0 ? cfg.restoration : undefined;
  const needText = cfg.clip.weight > 0 || (lambda > 0 && (cfg.tma.useText || cfg.tma.codeViews.includes('text'))) || !!rec?.useText;
  if (needText && (!batch.inputIds || !batch.attentionMask)) throw new Error('t3dLoss: this objective needs tokenised reports');

  const g = model.encodeVolume(batch.global);
  const report = needText ? model.encodeReport(batch.inputIds!, batch.attentionMask!) : undefined;
  if (cfg.clip.weight > 0 && report) {
    const l = clipLoss(g.emb, report.emb, model.logit_scale.value);
    parts.clip = l.item();
    terms.push(l.mul(cfg.clip.weight));
    stats.logitScale = model.logit_scale.value.exp().item();
  }

  const V = batch.locals.length;
  const B = batch.global.size(0);
  const locals = V > 0 && (lambda > 0 || cfg.ssl.weight > 0) ? model.encodeVolume(torch.cat(batch.locals, 0)) : undefined;

  if (lambda > 0) {
    model.prototypes.normalize_();
    const text = cfg.tma.useText && report ? { tokens: report.tokens, paddingMask: report.paddingMask } : undefined;
    const repeat = (t: Tensor, n: number) => (n === 1 ? t : t.repeat(n, ...Array(t.ndim - 1).fill(1)));
    const scores = new Map<string, Tensor>();
    const hGlobal = model.fusion.forward(g.tokens, text);
    scores.set('global', model.prototypes.scores(hGlobal));
    if (locals) {
      const hLocal = model.fusion.forward(locals.tokens, text && { tokens: repeat(text.tokens, V), paddingMask: repeat(text.paddingMask, V) });
      hLocal.chunk(V, 0).forEach((h, v) => scores.set(`local${v}`, model.prototypes.scores(h)));
    }
    const embOf: Record<string, Tensor | undefined> = { global: hGlobal, text: report?.emb };
    if (report && cfg.tma.codeViews.includes('text')) scores.set('text', model.prototypes.scores(report.emb));
    const codeViews = cfg.tma.codeViews.filter((v) => scores.has(v));
    // codes come from the teacher's embeddings and prototypes when there is one (the queue then holds its embeddings)
    let codeScores: Map<string, Tensor> | undefined;
    if (teacher) {
      teacher.prototypes.normalize_();
      const emb = teacherEmbeddings(teacher, batch, codeViews, cfg.tma.useText);
      codeScores = new Map(codeViews.map((v) => [v, teacher.prototypes.scores(emb.get(v)!)]));
      for (const v of codeViews) embOf[v] = emb.get(v);
    }
    const codePrototypes = teacher?.prototypes ?? model.prototypes;
    const queued = new Map<string, Tensor>();
    for (const v of codeViews) {
      const q = queue?.get(v);
      if (q) queued.set(v, torch.noGrad(() => codePrototypes.scores(q)));
    }
    const { loss, codes } = tmaLoss(scores, codeViews, { temperature: cfg.tma.temperature, epsilon: cfg.tma.epsilon, sinkhornIterations: cfg.tma.sinkhornIterations }, queued, codeScores);
    for (const v of codeViews) if (embOf[v]) queue?.push(v, embOf[v]!);
    const first = codes.get(codeViews[0]!);
    if (first) stats.codeEntropy = codeUsageEntropy(first);
    torch.dispose([...codes.values()]);
    parts.tma = loss.item();
    stats.tmaWeight = lambda;
    terms.push(loss.mul(lambda));
  }

  if (cfg.ssl.weight > 0 && locals && V >= 1) {
    const first = locals.emb.narrow(0, 0, B);
    const l = simclrLoss(g.emb, first, cfg.ssl.temperature);
    parts.ssl = l.item();
    terms.push(l.mul(cfg.ssl.weight));
  }
  if (rec) {
    const decoder = model.restoration_decoder;
    if (!decoder) throw new Error('t3dLoss: objective.restoration is on but the model has no restoration decoder (model.restoration)');
    const { masked, mask } = maskPatches(batch.global, rec.maskRatio, rec.patchSize);
    const pred = decoder.forward(model.visual.encode(masked).featureMap, batch.global.shape.slice(2) as [number, number, number], rec.useText ? report?.sentence : undefined);
    const l = restorationLoss(pred, batch.global, mask);
    parts.rec = l.item();
    terms.push(l.mul(rec.weight));
  }
  if (terms.length === 0) throw new Error('t3dLoss: every objective is switched off');
  // Embedding spread: mean pairwise cosine of global embeddings; near 1 means the features collapsed.
  stats.embCosine = torch.noGrad(() => g.emb.matmul(g.emb.T).sum().sub(B).div(Math.max(1, B * (B - 1))).item());
  return { total: terms.reduce((a, b) => a.add(b)), parts, stats };
}
