// The TMA term of the T3D objective (DESIGN §4.2), one function per formulation. The rule: a predictor never
// sees the report; text may shape only the targets. 'fused' breaks it and is kept as the ablation that showed why.
//   fused   — every view fused with the report by cross-attention predicts the report's codes (the first formulation).
//   swapped — (a) cross-modal swapped prediction: every view's pure visual embedding predicts the report's Sinkhorn
//             codes, the report predicts the global view's codes. useText false: the vision-only multi-crop
//             counterpart, local views predict the global view's codes.
//   teacher — (b) text-informed teacher codes: an EMA teacher's Sinkhorn codes of the global view with the report are
//             the targets; the student's pure visual embeddings of the other views (the local views) predict them, as
//             DINO's student predicts its teacher's global crops. teacherCodes 'fusion': the teacher fuses the global
//             view's tokens with the report's (cross-attention) — but the student never trains that head, so the
//             teacher's copy stays at its random initialisation; 'embedding': the teacher's normalised sum of its
//             global-view and report embeddings, both in the CLIP space that training shapes.
//             useText false: the same without the report (an EMA-teacher multi-crop, vision only).
//   local   — (c) fine-grained local alignment (GLoRIA-like, no prototypes): each sentence embedding of a report
//             attends over a volume's local-view embeddings; the volume–report score is the mean over sentences of
//             the cosine between sentence and attended context; a symmetric InfoNCE over the batch. Text shapes the
//             local features, and a report cannot score its own volume higher without looking at it.
// The leak diagnostic (stats.tmaLeakGap) is a predictor's cross-entropy against its codes when the volume is another
// patient's (the batch rolled by one) minus that with the true volume — the global view against the report's codes,
// or (teacher) local view 0 against the teacher's codes: near 0 means TMA is solved without looking at the image.
import * as torch from '../torch/index.js';
import { F, type Tensor } from '../torch/index.js';
import { type ReportEncoding, type T3dModel, type VolumeEncoding } from '../models/t3d.js';
import { EmbeddingQueue, codeUsageEntropy, tmaLoss } from './tma.js';

export type TmaFormulation = 'fused' | 'swapped' | 'teacher' | 'local';
export const TMA_FORMULATIONS: readonly TmaFormulation[] = ['fused', 'swapped', 'teacher', 'local'];

export interface TmaConfig {
  weight: number;
  /** λ ramps linearly from 0 over these steps (the naive form collapses when switched on at once) */
  warmupSteps: number;
  /** λ is 0 (no TMA term, local views not encoded) before this step, then ramps over warmupSteps; default 0.
   * Lets CLIP spread the embeddings first: Sinkhorn codes of near-identical embeddings are near uniform. */
  startStep?: number;
  /** default 'fused' (configs written before formulations existed) */
  formulation?: TmaFormulation;
  /** the report takes part: fused as cross-attention context and code view; swapped as code view and predictor;
   * teacher as the teacher's cross-attention context */
  useText: boolean;
  /** fused only: views whose Sinkhorn codes are targets, 'text' and/or 'global' */
  codeViews: ('text' | 'global')[];
  temperature: number;
  epsilon: number;
  /** ε in units of the code scores' spread between samples instead of absolute (objectives/sinkhorn.ts) */
  relativeEpsilon?: boolean;
  sinkhornIterations: number;
  /** queue length in samples (0 = off) */
  queue: number;
  /** > 0 = codes come from an EMA (momentum) teacher of the whole model instead of the student (fused: optional;
   * teacher: required) */
  teacherMomentum?: number;
  /** teacher formulation: what the teacher's codes are computed from, 'fusion' (default) or 'embedding' (above) */
  teacherCodes?: 'fusion' | 'embedding';
}

export interface TmaInputs {
  global: VolumeEncoding;
  /** all local views, concatenated along the batch (V chunks of B) */
  locals?: VolumeEncoding;
  numLocal: number;
  report?: ReportEncoding;
  /** local formulation: each report token's sentence number (B, L) int64, -1 for special tokens */
  sentenceIndex?: Tensor;
  /** the teacher's code-view embeddings (fused and teacher formulations), by view name */
  teacherEmb?: () => Map<string, Tensor>;
  teacher?: T3dModel;
}

export interface TmaTerm {
  loss: Tensor;
  stats: Record<string, number>;
}

const roll = (t: Tensor) => torch.cat([t.narrow(0, 1, t.size(0) - 1), t.narrow(0, 0, 1)], 0);
const crossEntropy = (codes: Tensor, scores: Tensor, tau: number) =>
  codes.mul(scores.div(tau).logSoftmax(1)).sum(1).mean().neg().item();

/** Sentence-to-local-view alignment (formulation 'local'); temperature τ both sharpens the attention over views
 * and scales the scores. The leak gap is the reports' cross-entropy of the next patient's volume minus their own. */
function localAlignment(model: T3dModel, x: TmaInputs, tau: number): TmaTerm {
  if (!x.report || !x.sentenceIndex)
    throw new Error(
      "objective.tma.formulation 'local' needs tokenised reports and their sentence indices (objective.tma.useText true)",
    );
  if (!x.locals || x.numLocal < 1)
    throw new Error("objective.tma.formulation 'local' needs local views (data.views.numLocal ≥ 1)");
  const V = x.numLocal,
    D = x.locals.emb.size(1);
  const { tokens } = x.report;
  const world = torch.distributed.worldSize;
  let S = Math.max(1, x.sentenceIndex.max().item() + 1);
  if (world > 1) {
    // every rank pads its reports to the global batch's sentence count, so they can be gathered
    const s = torch.tensor([S], [1], { dtype: 'int64' });
    torch.distributed.allReduce(s, 'max');
    S = s.item();
    s.dispose();
  }
  const member = x.sentenceIndex
    .unsqueeze(1)
    .eq(torch.arange(S, undefined, 1, { device: tokens.device }).view(1, S, 1))
    .to(tokens.dtype); // (b, S, L)
  let count = member.sum(2); // (b, S) tokens per sentence; 0 where a report has fewer sentences
  let sentences = F.normalize(
    model.text_projection.forward(member.matmul(tokens).div(count.clampMin(1).unsqueeze(2))),
    -1,
  ); // (b, S, D)
  let views = x.locals.emb.view(V, -1, D).transpose(0, 1); // (b, V, D): locals are V chunks of b
  if (world > 1) {
    // data-parallel: the score matrix over the global batch on every rank, this rank's rows keeping their gradient
    // (as CLIP's embeddings): the ranks' gradients then sum to the single-process gradient
    sentences = torch.distributed.gatherWithLocalGrad(sentences);
    views = torch.distributed.gatherWithLocalGrad(views.contiguous());
    count = torch.cat(torch.distributed.allGather(count), 0);
  }
  const B = sentences.size(0);
  const sim = sentences
    .reshape(B * S, D)
    .matmul(views.reshape(B * V, D).T)
    .view(B, S, B, V);
  const context = sim
    .div(tau)
    .softmax(-1)
    .unsqueeze(-1)
    .mul(views.view(1, 1, B, V, D))
    .sum(3); // (B, S, B, D)
  const cosine = F.normalize(context, -1).mul(sentences.unsqueeze(2)).sum(-1); // (B, S, B)
  const present = count.gt(0).to(tokens.dtype).unsqueeze(2);
  const logits = cosine.mul(present).sum(1).div(present.sum(1).clampMin(1)).div(tau); // (reports, volumes)
  const target = torch.arange(B, undefined, 1, { device: tokens.device });
  const loss = F.crossEntropy(logits, target).add(F.crossEntropy(logits.T, target)).mul(0.5);
  const stats: Record<string, number> = {};
  if (B > 1) {
    stats.tmaLeakGap = torch.noGrad(() =>
      torch.tidy(() => {
        const logp = logits.detach().logSoftmax(1);
        const at = (t: Tensor) => logp.gather(1, t.unsqueeze(1)).squeeze(1);
        return at(target)
          .sub(at(target.add(1).remainder(B)))
          .mean()
          .item();
      }),
    );
  }
  return { loss, stats };
}

/** Computes the TMA term (inside the caller's tidy scope) and pushes the code views' embeddings to the queue. */
export function tmaTerm(model: T3dModel, x: TmaInputs, cfg: TmaConfig, queue?: EmbeddingQueue): TmaTerm {
  const formulation = cfg.formulation ?? 'fused';
  if (!TMA_FORMULATIONS.includes(formulation))
    throw new Error(`objective.tma.formulation: unknown '${formulation}' (known: ${TMA_FORMULATIONS.join(', ')})`);
  if (formulation === 'local') return localAlignment(model, x, cfg.temperature);
  model.prototypes.normalize_();
  const useText = cfg.useText && !!x.report;
  if (cfg.useText && !x.report) throw new Error('objective.tma.useText needs tokenised reports');
  const p = model.prototypes;
  const scores = new Map<string, Tensor>();
  /** embeddings whose scores the codes come from (queued) */
  const codeEmb = new Map<string, Tensor>();
  let codeViews: string[];
  let pairs: [string, string][] | undefined;
  let codeScores: Map<string, Tensor> | undefined;
  /** the leak diagnostic: predictor view, code view, and the predictor's scores for the batch rolled by one */
  let leak: { view: string; codeView: string; rolled: () => Tensor } | undefined;
  const V = x.numLocal;
  const localNames = Array.from({ length: x.locals ? V : 0 }, (_, v) => `local${v}`);

  if (formulation === 'fused') {
    const text = useText ? { tokens: x.report!.tokens, paddingMask: x.report!.paddingMask } : undefined;
    const hGlobal = model.fusion.forward(x.global.tokens, text);
    scores.set('global', p.scores(hGlobal));
    if (x.locals) {
      const hLocal = model.fusion.forwardViews(x.locals.tokens, V, text);
      hLocal.chunk(V, 0).forEach((h, v) => scores.set(localNames[v]!, p.scores(h)));
    }
    if (x.report && cfg.codeViews.includes('text')) scores.set('text', p.scores(x.report.emb));
    codeViews = cfg.codeViews.filter((v) => scores.has(v));
    codeEmb.set('global', hGlobal);
    if (x.report) codeEmb.set('text', x.report.emb);
    if (x.teacher && x.teacherEmb) {
      x.teacher.prototypes.normalize_();
      const emb = x.teacherEmb();
      codeScores = new Map(codeViews.map((v) => [v, x.teacher!.prototypes.scores(emb.get(v)!)]));
      for (const v of codeViews) codeEmb.set(v, emb.get(v)!);
    }
    if (text && codeViews.includes('text')) {
      leak = {
        view: 'global',
        codeView: 'text',
        rolled: () => torch.noGrad(() => torch.tidy(() => p.scores(model.fusion.forward(roll(x.global.tokens), text)))),
      };
    }
  } else if (formulation === 'teacher') {
    if (!x.teacher || !x.teacherEmb)
      throw new Error(
        "objective.tma.formulation 'teacher' needs an EMA teacher: set objective.tma.teacherMomentum > 0",
      );
    if (!x.locals || !localNames.length)
      throw new Error(
        "objective.tma.formulation 'teacher' needs local views (data.views.numLocal ≥ 1): they predict the teacher's codes of the global view",
      );
    // the student's global view is scored only because tmaLoss keys codes by view; it predicts nothing (not an other view)
    scores.set('global', p.scores(x.global.emb));
    x.locals.emb.chunk(V, 0).forEach((z, v) => scores.set(localNames[v]!, p.scores(z)));
    x.teacher.prototypes.normalize_();
    const teacherGlobal = x.teacherEmb().get('global')!;
    codeViews = ['global'];
    codeScores = new Map([['global', x.teacher.prototypes.scores(teacherGlobal)]]);
    codeEmb.set('global', teacherGlobal);
    pairs = localNames.map((v): [string, string] => [v, 'global']);
    leak = {
      view: localNames[0]!,
      codeView: 'global',
      rolled: () => torch.noGrad(() => roll(scores.get(localNames[0]!)!.detach())),
    };
  } else {
    scores.set('global', p.scores(x.global.emb));
    x.locals?.emb.chunk(V, 0).forEach((z, v) => scores.set(localNames[v]!, p.scores(z)));
    codeEmb.set('global', x.global.emb);
    if (useText) {
      scores.set('text', p.scores(x.report!.emb));
      codeEmb.set('text', x.report!.emb);
      codeViews = ['text', 'global'];
      pairs = [['global', 'text'], ...localNames.map((v): [string, string] => [v, 'text']), ['text', 'global']];
      leak = {
        view: 'global',
        codeView: 'text',
        rolled: () => torch.noGrad(() => roll(scores.get('global')!.detach())),
      };
    } else {
      if (!localNames.length)
        throw new Error(
          'objective.tma: the vision-only swapped formulation (useText false) needs local views (data.views.numLocal ≥ 1)',
        );
      codeViews = ['global'];
      pairs = localNames.map((v): [string, string] => [v, 'global']);
    }
  }

  if (torch.distributed.worldSize > 1) {
    // data-parallel: codes and cross-entropies over the global batch, as SwAV does. Predictor scores are gathered
    // with this rank's rows keeping their gradient; code scores and queued embeddings carry none. The leak
    // diagnostic needs this rank's inputs beside global codes, so it is left out.
    const gathered = (t: Tensor) => torch.cat(torch.distributed.allGather(t), 0);
    for (const [v, t] of scores) scores.set(v, torch.distributed.gatherWithLocalGrad(t));
    if (codeScores) for (const [v, t] of codeScores) codeScores.set(v, gathered(t));
    for (const [v, t] of codeEmb) codeEmb.set(v, gathered(t));
    leak = undefined;
  }
  // codes come from the teacher's embeddings and prototypes when there is one (the queue then holds its embeddings)
  const codePrototypes = codeScores ? x.teacher!.prototypes : p;
  const queued = new Map<string, Tensor>();
  for (const v of codeViews) {
    const q = queue?.get(v);
    if (q)
      queued.set(
        v,
        torch.noGrad(() => codePrototypes.scores(q)),
      );
  }
  const o = {
    temperature: cfg.temperature,
    epsilon: cfg.epsilon,
    relativeEpsilon: cfg.relativeEpsilon,
    sinkhornIterations: cfg.sinkhornIterations,
    pairs,
  };
  const { loss, codes } = tmaLoss(scores, codeViews, o, queued, codeScores);
  for (const v of codeViews) if (codeEmb.has(v)) queue?.push(v, codeEmb.get(v)!);
  const stats: Record<string, number> = {};
  const first = codes.get(codeViews[0]!);
  if (first) stats.codeEntropy = codeUsageEntropy(first);
  const leakCodes = leak && codes.get(leak.codeView);
  if (leak && leakCodes && x.global.emb.size(0) > 1) {
    const own = torch.noGrad(() => crossEntropy(leakCodes, scores.get(leak.view)!.detach(), cfg.temperature));
    stats.tmaLeakGap = torch.tidy(() => crossEntropy(leakCodes, leak.rolled(), cfg.temperature)) - own;
  }
  torch.dispose([...codes.values()]);
  return { loss, stats };
}
