// Swapped prediction over prototypes (SwAV, and DESIGN §4's TMA): every view is scored against K prototypes;
// codes come from Sinkhorn-Knopp on the code views; predictor views predict them. A queue of recent scores
// stabilises Sinkhorn with small batches. Which views predict which codes is the formulation's choice
// (objectives/t3d-tma.ts).
import * as torch from '../torch/index.js';
import { type Tensor } from '../torch/index.js';
import { sinkhorn } from './sinkhorn.js';

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
}

/**
 * Scores (B, K) for every view, by name; codeViews name the views whose codes are targets (e.g. ['text']
 * or ['text', 'global']). Loss = mean over ordered pairs (predictor v ≠ code view w) of
 * −Σ_k q_k^(w) log softmax(s^(v)/τ)_k. `queue` holds extra score rows per code view (detached), used only
 * inside Sinkhorn. `codeScores` gives the scores the codes are computed from when they are not the views' own
 * (e.g. a teacher's). The returned codes are kept tensors: the caller disposes them.
 */
export function tmaLoss(
  scores: Map<string, Tensor>,
  codeViews: string[],
  o: TmaOptions = {},
  queue?: Map<string, Tensor>,
  codeScores?: Map<string, Tensor>,
): { loss: Tensor; codes: Map<string, Tensor> } {
  const tau = o.temperature ?? 0.1;
  for (const w of codeViews)
    if (!scores.has(w))
      throw new Error(`tmaLoss: code view '${w}' has no scores (views: ${[...scores.keys()].join(', ')})`);
  const codes = new Map<string, Tensor>();
  const loss = torch.tidy(() => {
    for (const w of codeViews) {
      const s = codeScores?.get(w) ?? scores.get(w)!;
      const B = s.size(0);
      const q = queue?.get(w);
      const all = q && q.size(0) > 0 ? torch.cat([s.detach(), q], 0) : s.detach();
      const code = sinkhorn(all, {
        epsilon: o.epsilon,
        iterations: o.sinkhornIterations,
        relative: o.relativeEpsilon,
      }).narrow(0, 0, B);
      codes.set(w, torch.keep(code));
    }
    const pairs =
      o.pairs ??
      [...scores.keys()].flatMap((v) => codeViews.filter((w) => w !== v).map((w): [string, string] => [v, w]));
    const terms: Tensor[] = [];
    const logp = new Map<string, Tensor>();
    for (const [v, w] of pairs) {
      if (!scores.has(v) || !codes.has(w))
        throw new Error(`tmaLoss: pair ${v} → ${w} names a view without scores or a view that is not a code view`);
      if (!logp.has(v)) logp.set(v, scores.get(v)!.div(tau).logSoftmax(1));
      terms.push(codes.get(w)!.mul(logp.get(v)!).sum(1).mean().neg());
    }
    if (terms.length === 0) throw new Error('tmaLoss: no (predictor, code) pair: give at least two views');
    return torch.stack(terms).mean();
  });
  return { loss, codes };
}

/** Mean entropy (nats) of the batch-averaged code distribution: low values mean collapse onto few prototypes. */
export function codeUsageEntropy(codes: Tensor): number {
  return torch.tidy(() => {
    const p = codes.mean(0).clampMin(1e-12);
    return p.mul(p.log()).sum().neg().item();
  });
}

/**
 * FIFO of recent embeddings per code view (SwAV's queue). Embeddings, not scores, are stored so that
 * queue scores are recomputed with the current prototypes.
 */
export class EmbeddingQueue {
  private readonly items = new Map<string, Tensor>();
  constructor(readonly size: number) {}

  get(view: string): Tensor | undefined {
    return this.items.get(view);
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
