// Sinkhorn-Knopp equal-partition codes (SwAV): soft assignments of samples to K prototypes such that
// every prototype receives the same share of the batch. No gradient flows through the codes.
import * as torch from '../torch/index.js';
import { type Tensor } from '../torch/index.js';

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
      const eps =
        (o.epsilon ?? 0.05) *
        (o.relative && B > 1 ? Math.max(s.sub(s.mean(0, true)).pow(2).mean().sqrt().item(), 1e-12) : 1);
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
