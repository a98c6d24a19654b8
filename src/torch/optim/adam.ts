// Adam and AdamW with PyTorch's update order and bias correction (single-tensor path).
import { type Tensor } from '../tensor.js';
import { zerosLike } from '../creation.js';
import { type GroupSpec, Optimizer } from './optimizer.js';

export interface AdamOptions { lr: number; betas: [number, number]; eps: number; weightDecay: number }

abstract class AdamBase extends Optimizer<AdamOptions> {
  protected abstract readonly decoupled: boolean;

  protected update(p: Tensor, g: Tensor, s: Map<string, Tensor>, step: number, h: AdamOptions): void {
    const [beta1, beta2] = h.betas;
    let grad = g;
    if (h.weightDecay !== 0) {
      if (this.decoupled) p.mul_(1 - h.lr * h.weightDecay);
      else grad = g.add(p, h.weightDecay);
    }
    const m = this.stateTensor(s, 'exp_avg', () => zerosLike(p));
    const v = this.stateTensor(s, 'exp_avg_sq', () => zerosLike(p));
    m.lerp_(grad, 1 - beta1);
    v.mul_(beta2).addcmul_(grad, grad, 1 - beta2);
    const bc1 = 1 - beta1 ** step;
    const bc2Sqrt = Math.sqrt(1 - beta2 ** step);
    const denom = v.sqrt().div_(bc2Sqrt).add_(h.eps);
    p.addcdiv_(m, denom, -h.lr / bc1);
  }
}

export class Adam extends AdamBase {
  protected readonly decoupled = false;
  constructor(params: Tensor[] | GroupSpec<AdamOptions>[], o: Partial<AdamOptions> = {}) {
    super(params, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0, ...o }, 'Adam');
  }
}

export class AdamW extends AdamBase {
  protected readonly decoupled = true;
  constructor(params: Tensor[] | GroupSpec<AdamOptions>[], o: Partial<AdamOptions> = {}) {
    super(params, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 1e-2, ...o }, 'AdamW');
  }
}
