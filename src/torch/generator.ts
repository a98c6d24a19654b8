// Generator: an explicit random-number generator (torch.Generator) for the in-place random initialisers.
import { native as N } from './native.js';
import { type Device, type Tensor, wrap } from './tensor.js';

/** An explicit random-number generator (torch.Generator). */
export class Generator {
  readonly id: number;
  constructor(seed: number, device: Device = 'cpu') {
    this.id = N.generatorNew(seed, device) as number;
  }
  manualSeed(seed: number): this {
    N.generatorSeed(this.id, seed);
    return this;
  }
  /** Opaque state bytes (uint8 tensor), for exact resume. */
  getState(): Tensor {
    return wrap(N.generatorGetState(this.id));
  }
  setState(state: Tensor): void {
    N.generatorSetState(this.id, state.id);
  }
}
