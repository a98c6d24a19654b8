// Activation modules (stateless; modules so they can sit in Sequential like in PyTorch).
import { type Tensor } from '../tensor.js';
import { Module } from './module.js';
import { type Layer } from './layers.js';

export class ReLU extends Module implements Layer {
  forward(x: Tensor): Tensor {
    return x.relu();
  }
}
export class GELU extends Module implements Layer {
  constructor(readonly approximate: 'none' | 'tanh' = 'none') {
    super();
  }
  forward(x: Tensor): Tensor {
    return x.gelu(this.approximate);
  }
}
export class SiLU extends Module implements Layer {
  forward(x: Tensor): Tensor {
    return x.silu();
  }
}
export class Sigmoid extends Module implements Layer {
  forward(x: Tensor): Tensor {
    return x.sigmoid();
  }
}
export class Tanh extends Module implements Layer {
  forward(x: Tensor): Tensor {
    return x.tanh();
  }
}
export class LeakyReLU extends Module implements Layer {
  constructor(readonly negativeSlope = 0.01) {
    super();
  }
  forward(x: Tensor): Tensor {
    return x.leakyRelu(this.negativeSlope);
  }
}
/** Returns its input itself (no copy), like nn.Identity. */
export class Identity extends Module implements Layer {
  forward(x: Tensor): Tensor {
    return x;
  }
}
