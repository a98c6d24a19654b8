// Parameter initialisers with PyTorch's formulas (torch.nn.init).
import type { Generator } from '../generator.js';
import { type Tensor } from '../tensor.js';

/** fan_in / fan_out as torch.nn.init._calculate_fan_in_and_fan_out computes them. */
export function fans(shape: number[]): { fanIn: number; fanOut: number } {
  if (shape.length < 2) throw new Error(`fan in/out needs a tensor with ≥ 2 dims, got [${shape.join(', ')}]`);
  const receptive = shape.slice(2).reduce((a, b) => a * b, 1);
  return { fanIn: shape[1]! * receptive, fanOut: shape[0]! * receptive };
}

export function gain(nonlinearity: 'linear' | 'relu' | 'leaky_relu' | 'tanh' | 'sigmoid', param = 0.01): number {
  switch (nonlinearity) {
    case 'relu':
      return Math.SQRT2;
    case 'leaky_relu':
      return Math.sqrt(2 / (1 + param * param));
    case 'tanh':
      return 5 / 3;
    default:
      return 1;
  }
}

export const uniform_ = (t: Tensor, a: number, b: number, g?: Generator): Tensor => t.uniform_(a, b, g);
export const normal_ = (t: Tensor, mean: number, std: number, g?: Generator): Tensor => t.normal_(mean, std, g);
export const zeros_ = (t: Tensor): Tensor => t.zero_();
export const ones_ = (t: Tensor): Tensor => t.fill_(1);

export function kaimingUniform_(
  t: Tensor,
  o: { a?: number; mode?: 'fan_in' | 'fan_out'; nonlinearity?: 'relu' | 'leaky_relu' } = {},
  g?: Generator,
): Tensor {
  const f = fans(t.shape);
  const fan = o.mode === 'fan_out' ? f.fanOut : f.fanIn;
  const bound = gain(o.nonlinearity ?? 'leaky_relu', o.a ?? 0) * Math.sqrt(3 / fan);
  return t.uniform_(-bound, bound, g);
}
export function kaimingNormal_(
  t: Tensor,
  o: { a?: number; mode?: 'fan_in' | 'fan_out'; nonlinearity?: 'relu' | 'leaky_relu' } = {},
  g?: Generator,
): Tensor {
  const f = fans(t.shape);
  const fan = o.mode === 'fan_out' ? f.fanOut : f.fanIn;
  return t.normal_(0, gain(o.nonlinearity ?? 'leaky_relu', o.a ?? 0) / Math.sqrt(fan), g);
}
export function xavierUniform_(t: Tensor, gainValue = 1, g?: Generator): Tensor {
  const f = fans(t.shape);
  const bound = gainValue * Math.sqrt(6 / (f.fanIn + f.fanOut));
  return t.uniform_(-bound, bound, g);
}
/** torch.nn.init.trunc_normal_: inverse-CDF sampling of N(mean, std²) truncated to [a, b]. */
export function truncNormal_(t: Tensor, std = 0.02, mean = 0, a = -2, b = 2, g?: Generator): Tensor {
  const cdf = (x: number) => (1 + erf(x / Math.SQRT2)) / 2;
  const lo = cdf((a - mean) / std);
  const hi = cdf((b - mean) / std);
  t.uniform_(2 * lo - 1, 2 * hi - 1, g);
  t.erfinv_()
    .mul_(std * Math.SQRT2)
    .add_(mean);
  return t.clampMin_(a).clampMax_(b);
}

// Abramowitz–Stegun 7.1.26 is too coarse for tails; this series/continued-fraction pair is exact to ~1e-15.
function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 2.5) {
    let sum = ax,
      term = ax;
    for (let n = 1; n < 100; n++) {
      term *= (-ax * ax) / n;
      const next = term / (2 * n + 1);
      sum += next;
      if (Math.abs(next) < 1e-17) break;
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  let f = 0;
  for (let n = 60; n >= 1; n--) f = n / 2 / (ax + f);
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / (ax + f);
  return Math.sign(x) * (1 - erfc);
}

/** PyTorch's default for Linear/Conv weights (kaiming_uniform with a=√5) and their biases. */
export function defaultLayerInit_(weight: Tensor, bias: Tensor | undefined, fanIn = fans(weight.shape).fanIn): void {
  kaimingUniform_(weight, { a: Math.sqrt(5) });
  if (bias) {
    const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
    bias.uniform_(-bound, bound);
  }
}
