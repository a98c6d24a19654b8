// Adam and AdamW with PyTorch's update order and bias correction. A group's parameters are updated together by the
// addon's multi-tensor step (PyTorch's foreach implementation): one call, and on CUDA a few kernels, per group.
import { type Tensor } from '../tensor.js';
import { zerosLike } from '../creation.js';
import { native as N } from '../native.js';
import { type GroupSpec, Optimizer, type ParamUpdate } from './optimizer.js';

export interface AdamOptions {
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
}

abstract class AdamBase extends Optimizer<AdamOptions> {
  protected abstract readonly decoupled: boolean;

  protected updateGroup(items: ParamUpdate[], h: AdamOptions): void {
    const [beta1, beta2] = h.betas;
    // parameters that missed updates (no gradient on some steps) have their own step count and bias correction
    const bySteps = new Map<number, ParamUpdate[]>();
    for (const it of items) {
      const group = bySteps.get(it.step);
      if (group) group.push(it);
      else bySteps.set(it.step, [it]);
    }
    for (const [step, group] of bySteps) {
      const m = group.map((it) => this.stateTensor(it.state, 'exp_avg', () => zerosLike(it.param)).id);
      const v = group.map((it) => this.stateTensor(it.state, 'exp_avg_sq', () => zerosLike(it.param)).id);
      N.adamStep(
        group.map((it) => it.param.id),
        group.map((it) => it.grad.id),
        m,
        v,
        h.lr,
        beta1,
        beta2,
        h.eps,
        h.weightDecay,
        this.decoupled,
        -h.lr / (1 - beta1 ** step),
        Math.sqrt(1 - beta2 ** step),
      );
    }
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
