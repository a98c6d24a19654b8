// SGD with momentum, dampening, Nesterov and L2 weight decay, as torch.optim.SGD.
import { type Tensor } from '../tensor.js';
import { type GroupSpec, Optimizer, type ParamUpdate } from './optimizer.js';

export interface SGDOptions {
  lr: number;
  momentum: number;
  dampening: number;
  nesterov: boolean;
  weightDecay: number;
}

export class SGD extends Optimizer<SGDOptions> {
  constructor(params: Tensor[] | GroupSpec<SGDOptions>[], o: Partial<SGDOptions> & { lr: number }) {
    super(params, { momentum: 0, dampening: 0, nesterov: false, weightDecay: 0, ...o }, 'SGD');
    if (this.groups.some((g) => g.options.nesterov && (g.options.momentum <= 0 || g.options.dampening !== 0))) {
      throw new Error('SGD: nesterov needs momentum > 0 and dampening 0');
    }
  }

  protected updateGroup(items: ParamUpdate[], h: SGDOptions): void {
    for (const { param: p, grad: g, state: s } of items) {
      let d = h.weightDecay !== 0 ? g.add(p, h.weightDecay) : g;
      if (h.momentum !== 0) {
        const fresh = !s.has('momentum_buffer');
        const buf = this.stateTensor(s, 'momentum_buffer', () => d.clone());
        if (!fresh) buf.mul_(h.momentum).add_(d, 1 - h.dampening);
        d = h.nesterov ? d.add(buf, h.momentum) : buf;
      }
      p.add_(d, -h.lr);
    }
  }
}
