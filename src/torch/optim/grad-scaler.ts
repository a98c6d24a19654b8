// Dynamic loss scaling for float16 mixed precision (PyTorch's torch.amp.GradScaler): the loss is multiplied
// by a large scale so that small gradients survive float16; gradients are unscaled before clipping and the
// optimizer step; a step whose gradients overflowed is skipped and the scale backs off.
import { noGrad } from '../autograd.js';
import { tidy } from '../scope.js';
import { stack } from '../ops.js';
import { type Tensor } from '../tensor.js';

export interface GradScalerOptions {
  initScale?: number;
  growthFactor?: number;
  backoffFactor?: number;
  growthInterval?: number;
}
export interface GradScalerState {
  scale: number;
  growthTracker: number;
}

export class GradScaler {
  private s: number;
  private tracker = 0;
  readonly growthFactor: number;
  readonly backoffFactor: number;
  readonly growthInterval: number;

  constructor(o: GradScalerOptions = {}) {
    this.s = o.initScale ?? 2 ** 16;
    this.growthFactor = o.growthFactor ?? 2;
    this.backoffFactor = o.backoffFactor ?? 0.5;
    this.growthInterval = o.growthInterval ?? 2000;
  }

  get scale(): number {
    return this.s;
  }

  scaleLoss(loss: Tensor): Tensor {
    return loss.mul(this.s);
  }

  /** Divides every gradient by the scale in place; returns true when any gradient is inf or NaN. */
  unscale(params: Tensor[]): boolean {
    return noGrad(() =>
      tidy(() => {
        const grads = params.map((p) => p.grad).filter((g): g is Tensor => g !== undefined);
        if (grads.length === 0) return false;
        for (const g of grads) g.mul_(1 / this.s);
        // one host sync for all gradients (a sync per tensor would stall CUDA every step)
        return !stack(grads.map((g) => g.isfinite().all()))
          .all()
          .item();
      }),
    );
  }

  /** After each step attempt: back off on overflow, grow after `growthInterval` clean steps in a row. */
  update(foundInf: boolean): void {
    if (foundInf) {
      this.s *= this.backoffFactor;
      this.tracker = 0;
    } else if (++this.tracker >= this.growthInterval) {
      this.s *= this.growthFactor;
      this.tracker = 0;
    }
  }

  stateDict(): GradScalerState {
    return { scale: this.s, growthTracker: this.tracker };
  }
  loadStateDict(s: GradScalerState): void {
    this.s = s.scale;
    this.tracker = s.growthTracker;
  }
}
