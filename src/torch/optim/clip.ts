// Gradient clipping by global norm (torch.nn.utils.clip_grad_norm_), in one addon call: per-gradient norms by the
// multi-tensor norm, the global norm from them, and the in-place scaling.
import { type Tensor } from '../tensor.js';
import { native as N } from '../native.js';

/** Scales gradients so their global p-norm is at most maxNorm; returns the norm before clipping. */
export function clipGradNorm(params: Tensor[], maxNorm: number, normType = 2): number {
  const grads: Tensor[] = [];
  for (const p of params) {
    const g = p.grad;
    if (g) grads.push(g);
  }
  try {
    return N.clipGradNorm(
      grads.map((g) => g.id),
      maxNorm,
      normType,
    ) as number;
  } finally {
    for (const g of grads) g.dispose();
  }
}
