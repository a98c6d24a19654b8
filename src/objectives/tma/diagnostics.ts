// Diagnostics of the swapped prediction over prototypes (docs/ARCHITECTURE.md §4). A TMA cross-entropy near log K is
// not evidence that nothing is learned: with Sinkhorn codes over a few concentrated embeddings even a perfect
// predictor scores about log K. So each (predictor, code view) pair's cross-entropy is reported beside two bounds
// computed from the code view itself: the ORACLE, the cross-entropy of the codes against the code view's own scores
// (what a predictor equal to the code view would score), and CHANCE, the same predictor with its rows rolled by one
// in the batch (another patient's volume). A formulation learns when its cross-entropy separates from chance towards
// the oracle. Everything here is read without gradient and draws no random numbers.
import * as torch from '../../torch/index.js';
import { type Tensor } from '../../torch/index.js';

/** The batch rolled by one: every row gets the next patient's. */
export const roll = (t: Tensor) => torch.cat([t.narrow(0, 1, t.size(0) - 1), t.narrow(0, 0, 1)], 0);

/** −mean_i Σ_k codes_ik log softmax(scores_i / τ)_k, as a number (no gradient). */
export function crossEntropy(codes: Tensor, scores: Tensor, tau: number): number {
  return torch.noGrad(() =>
    torch.tidy(() => codes.mul(scores.detach().div(tau).logSoftmax(1)).sum(1).mean().neg().item()),
  );
}

/** Mean entropy (nats) of the batch-averaged code distribution: low values mean collapse onto few prototypes.
 * Sinkhorn's equal partition pins it near log K, whatever the sharpness of each sample's code. */
export function codeUsageEntropy(codes: Tensor): number {
  return torch.tidy(() => {
    const p = codes.mean(0).clampMin(1e-12);
    return p.mul(p.log()).sum().neg().item();
  });
}

/** Mean over samples of each code row's entropy (nats): log K for uniform codes, 0 for one-hot codes. How sharp a
 * sample's target is; the oracle bound is never below it (oracle = row entropy + KL(code ‖ softmax(scores / τ))). */
export function codeRowEntropy(codes: Tensor): number {
  return torch.noGrad(() =>
    torch.tidy(() => {
      const q = codes.detach();
      return q.mul(q.clampMin(1e-12).log()).sum(1).mean().neg().item();
    }),
  );
}

/** The oracle and chance bounds of the codes of one code view (B, K) given the scores they were computed from. Chance
 * needs two rows at least (undefined otherwise). */
export function codeBounds(codes: Tensor, codeScores: Tensor, tau: number): { oracle: number; chance?: number } {
  const oracle = crossEntropy(codes, codeScores, tau);
  if (codes.size(0) < 2) return { oracle };
  return { oracle, chance: torch.noGrad(() => torch.tidy(() => crossEntropy(codes, roll(codeScores.detach()), tau))) };
}

/** One (predictor, code view) term of the loss and its value. */
export interface PairCrossEntropy {
  predictor: string;
  codeView: string;
  ce: number;
}

/** The name of a view in the stats: the local views (local0, local1, …) are one, 'local'. */
const group = (view: string) => view.replace(/^local\d+$/, 'local');

/**
 * The per-pair stats: `ce.<predictor>><code view>` (the local views' pairs averaged), with `.oracle` and `.chance`
 * beside it (codeBounds of the pair's code view), and `codeRowEntropy` of the first code view (as codeEntropy;
 * `codeRowEntropy.<view>` for each further code view). codeScores(w): the scores the codes of w were computed from.
 */
export function pairDiagnostics(
  pairs: PairCrossEntropy[],
  codes: Map<string, Tensor>,
  codeScores: (view: string) => Tensor,
  codeViews: string[],
  tau: number,
): Record<string, number> {
  const bounds = new Map<string, { oracle: number; chance?: number }>();
  const sums = new Map<string, { ce: number; oracle: number; chance?: number; n: number }>();
  for (const { predictor, codeView, ce } of pairs) {
    const code = codes.get(codeView);
    if (!code) continue;
    if (!bounds.has(codeView)) bounds.set(codeView, codeBounds(code, codeScores(codeView), tau));
    const b = bounds.get(codeView)!;
    const name = `ce.${group(predictor)}>${group(codeView)}`;
    const s = sums.get(name) ?? { ce: 0, oracle: 0, chance: b.chance === undefined ? undefined : 0, n: 0 };
    s.ce += ce;
    s.oracle += b.oracle;
    if (s.chance !== undefined && b.chance !== undefined) s.chance += b.chance;
    s.n += 1;
    sums.set(name, s);
  }
  const stats: Record<string, number> = {};
  for (const [name, s] of sums) {
    stats[name] = s.ce / s.n;
    stats[`${name}.oracle`] = s.oracle / s.n;
    if (s.chance !== undefined) stats[`${name}.chance`] = s.chance / s.n;
  }
  codeViews.forEach((w, i) => {
    const code = codes.get(w);
    if (code) stats[i === 0 ? 'codeRowEntropy' : `codeRowEntropy.${w}`] = codeRowEntropy(code);
  });
  return stats;
}
