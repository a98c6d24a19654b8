// Gradient clipping by global norm (torch.nn.utils.clip_grad_norm_).
import { type Tensor } from '../tensor.js';
import { noGrad } from '../autograd.js';
import { stack } from '../ops.js';
import { tidy } from '../scope.js';

/** Scales gradients so their global p-norm is at most maxNorm; returns the norm before clipping. */
export function clipGradNorm(params: Tensor[], maxNorm: number, normType = 2): number {
  return noGrad(() => tidy(() => {
    const grads = params.map((p) => p.grad).filter((g): g is Tensor => g !== undefined);
    if (grads.length === 0) return 0;
    const total = normType === Infinity
      ? stack(grads.map((g) => g.abs().max())).max()
      : stack(grads.map((g) => g.norm(normType))).norm(normType);
    const totalValue = total.item();
    const coef = maxNorm / (totalValue + 1e-6);
    if (coef < 1) for (const g of grads) g.mul_(coef);
    return totalValue;
  }));
}
