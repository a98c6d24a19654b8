// torch.nn.functional: convolutions, pooling, normalisation, resampling, attention, losses.
import { native as N } from './native.js';
import { REDUCTION, type Reduction, type Tensor, wrap } from './tensor.js';

type Triple = number | [number, number, number];
type Pair = number | [number, number];
const n3 = (v: Triple, what: string): number[] => expand(v, 3, what);
const n2 = (v: Pair, what: string): number[] => expand(v, 2, what);
function expand(v: number | number[], n: number, what: string): number[] {
  const arr = Array.isArray(v) ? v : Array<number>(n).fill(v);
  if (arr.length !== n || !arr.every(Number.isInteger))
    throw new Error(`${what} must be an integer or ${n} integers, got ${JSON.stringify(v)}`);
  return arr;
}
function requireDims(x: Tensor, n: number, op: string): void {
  if (x.ndim !== n) throw new Error(`${op}: expected a ${n}-D input, got shape [${x.shape.join(', ')}]`);
}

export interface ConvOptions<K> {
  stride?: K;
  padding?: K;
  dilation?: K;
  groups?: number;
}

export const linear = (x: Tensor, weight: Tensor, bias?: Tensor): Tensor => wrap(N.linear(x.id, weight.id, bias?.id));

export function conv3d(x: Tensor, weight: Tensor, bias?: Tensor, o: ConvOptions<Triple> = {}): Tensor {
  return wrap(
    N.conv3d(
      x.id,
      weight.id,
      bias?.id,
      n3(o.stride ?? 1, 'stride'),
      n3(o.padding ?? 0, 'padding'),
      n3(o.dilation ?? 1, 'dilation'),
      o.groups ?? 1,
    ),
  );
}
export function conv2d(x: Tensor, weight: Tensor, bias?: Tensor, o: ConvOptions<Pair> = {}): Tensor {
  return wrap(
    N.conv2d(
      x.id,
      weight.id,
      bias?.id,
      n2(o.stride ?? 1, 'stride'),
      n2(o.padding ?? 0, 'padding'),
      n2(o.dilation ?? 1, 'dilation'),
      o.groups ?? 1,
    ),
  );
}
export function convTranspose3d(
  x: Tensor,
  weight: Tensor,
  bias?: Tensor,
  o: ConvOptions<Triple> & { outputPadding?: Triple } = {},
): Tensor {
  return wrap(
    N.convTranspose3d(
      x.id,
      weight.id,
      bias?.id,
      n3(o.stride ?? 1, 'stride'),
      n3(o.padding ?? 0, 'padding'),
      n3(o.outputPadding ?? 0, 'outputPadding'),
      o.groups ?? 1,
      n3(o.dilation ?? 1, 'dilation'),
    ),
  );
}

export function maxPool3d(
  x: Tensor,
  kernel: Triple,
  o: { stride?: Triple; padding?: Triple; dilation?: Triple; ceilMode?: boolean } = {},
): Tensor {
  return wrap(
    N.maxPool3d(
      x.id,
      n3(kernel, 'kernel'),
      n3(o.stride ?? kernel, 'stride'),
      n3(o.padding ?? 0, 'padding'),
      n3(o.dilation ?? 1, 'dilation'),
      o.ceilMode ?? false,
    ),
  );
}
export function avgPool3d(
  x: Tensor,
  kernel: Triple,
  o: { stride?: Triple; padding?: Triple; ceilMode?: boolean; countIncludePad?: boolean } = {},
): Tensor {
  return wrap(
    N.avgPool3d(
      x.id,
      n3(kernel, 'kernel'),
      n3(o.stride ?? kernel, 'stride'),
      n3(o.padding ?? 0, 'padding'),
      o.ceilMode ?? false,
      o.countIncludePad ?? true,
    ),
  );
}
export const adaptiveAvgPool3d = (x: Tensor, size: Triple): Tensor =>
  wrap(N.adaptiveAvgPool3d(x.id, n3(size, 'outputSize')));

export interface BatchNormOptions {
  weight?: Tensor;
  bias?: Tensor;
  runningMean?: Tensor;
  runningVar?: Tensor;
  training?: boolean;
  momentum?: number;
  eps?: number;
}
export function batchNorm(x: Tensor, o: BatchNormOptions = {}): Tensor {
  return wrap(
    N.batchNorm(
      x.id,
      o.weight?.id,
      o.bias?.id,
      o.runningMean?.id,
      o.runningVar?.id,
      o.training ?? false,
      o.momentum ?? 0.1,
      o.eps ?? 1e-5,
    ),
  );
}
export function groupNorm(x: Tensor, groups: number, weight?: Tensor, bias?: Tensor, eps = 1e-5): Tensor {
  return wrap(N.groupNorm(x.id, groups, weight?.id, bias?.id, eps));
}
export function layerNorm(x: Tensor, normalizedShape: number[], weight?: Tensor, bias?: Tensor, eps = 1e-5): Tensor {
  return wrap(N.layerNorm(x.id, normalizedShape, weight?.id, bias?.id, eps));
}
export function instanceNorm(x: Tensor, weight?: Tensor, bias?: Tensor, eps = 1e-5): Tensor {
  return wrap(N.instanceNorm(x.id, weight?.id, bias?.id, undefined, undefined, true, 0.1, eps));
}
export function dropout(x: Tensor, p: number, training: boolean): Tensor {
  if (!(p >= 0 && p <= 1)) throw new Error(`dropout: p must be in [0, 1], got ${p}`);
  return wrap(N.dropout(x.id, p, training));
}
export const embedding = (weight: Tensor, indices: Tensor, paddingIdx = -1): Tensor =>
  wrap(N.embedding(weight.id, indices.id, paddingIdx));

/**
 * Resizes like F.interpolate(size=...): a 5-D (N, C, D, H, W) tensor to (D, H, W) with 'nearest' or 'trilinear',
 * or a 4-D (N, C, H, W) tensor to (H, W) with 'nearest' or 'bilinear'.
 */
export function interpolate(x: Tensor, size: Triple, mode?: 'nearest' | 'trilinear', alignCorners?: boolean): Tensor;
export function interpolate(
  x: Tensor,
  size: [number, number],
  mode?: 'nearest' | 'bilinear',
  alignCorners?: boolean,
): Tensor;
export function interpolate(
  x: Tensor,
  size: Triple | number[],
  mode: 'nearest' | 'trilinear' | 'bilinear' = 'nearest',
  alignCorners = false,
): Tensor {
  if (mode === 'bilinear' || (mode === 'nearest' && x.ndim === 4)) {
    requireDims(x, 4, `interpolate(${mode})`);
    if (!Array.isArray(size) || size.length !== 2 || !size.every((n) => Number.isInteger(n) && n > 0))
      throw new Error(`interpolate(${mode}): size must be 2 positive integers, got [${[size].flat().join(', ')}]`);
    return wrap(
      mode === 'nearest'
        ? N.upsampleNearest2d(x.id, size as number[])
        : N.upsampleBilinear2d(x.id, size as number[], alignCorners),
    );
  }
  requireDims(x, 5, `interpolate(${mode})`);
  if (mode === 'nearest') return wrap(N.upsampleNearest3d(x.id, n3(size as Triple, 'size')));
  return wrap(N.upsampleTrilinear3d(x.id, n3(size as Triple, 'size'), alignCorners));
}

/** F.pad: pads are given last dimension first, (left, right) per dimension. */
export function pad(
  x: Tensor,
  pads: number[],
  mode: 'constant' | 'reflect' | 'replicate' | 'circular' = 'constant',
  value = 0,
): Tensor {
  if (pads.length % 2 !== 0 || pads.length / 2 > x.ndim)
    throw new Error(`pad: ${pads.length} pad values do not fit a ${x.ndim}-D tensor`);
  return wrap(N.pad(x.id, pads, mode, value));
}

export const softmax = (x: Tensor, dim: number): Tensor => x.softmax(dim);
export const logSoftmax = (x: Tensor, dim: number): Tensor => x.logSoftmax(dim);
export const relu = (x: Tensor): Tensor => x.relu();
export const gelu = (x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor => x.gelu(approximate);
export const silu = (x: Tensor): Tensor => x.silu();

/** x / max(‖x‖_p, eps) along dim (F.normalize). */
export function normalize(x: Tensor, dim = -1, p = 2, eps = 1e-12): Tensor {
  const n = x.norm(p, dim, true);
  const d = n.clampMin(eps);
  const out = x.div(d);
  n.dispose();
  d.dispose();
  return out;
}
export const cosineSimilarity = (a: Tensor, b: Tensor, dim = 1, eps = 1e-8): Tensor =>
  wrap(N.cosineSimilarity(a.id, b.id, dim, eps));

export interface CrossEntropyOptions {
  weight?: Tensor;
  reduction?: Reduction;
  ignoreIndex?: number;
  labelSmoothing?: number;
}
/** Class-index targets (int64) or class-probability targets (same shape as input). */
export function crossEntropy(input: Tensor, target: Tensor, o: CrossEntropyOptions = {}): Tensor {
  return wrap(
    N.crossEntropy(
      input.id,
      target.id,
      o.weight?.id,
      REDUCTION[o.reduction ?? 'mean'],
      o.ignoreIndex ?? -100,
      o.labelSmoothing ?? 0,
    ),
  );
}
export function nllLoss(
  input: Tensor,
  target: Tensor,
  o: { weight?: Tensor; reduction?: Reduction; ignoreIndex?: number } = {},
): Tensor {
  return wrap(N.nllLoss(input.id, target.id, o.weight?.id, REDUCTION[o.reduction ?? 'mean'], o.ignoreIndex ?? -100));
}
export function binaryCrossEntropyWithLogits(
  input: Tensor,
  target: Tensor,
  o: { weight?: Tensor; posWeight?: Tensor; reduction?: Reduction } = {},
): Tensor {
  return wrap(N.bceWithLogits(input.id, target.id, o.weight?.id, o.posWeight?.id, REDUCTION[o.reduction ?? 'mean']));
}
export const mseLoss = (a: Tensor, b: Tensor, reduction: Reduction = 'mean'): Tensor =>
  wrap(N.mseLoss(a.id, b.id, REDUCTION[reduction]));
export const l1Loss = (a: Tensor, b: Tensor, reduction: Reduction = 'mean'): Tensor =>
  wrap(N.l1Loss(a.id, b.id, REDUCTION[reduction]));

/**
 * softmax(q kᵀ / √d + mask) v. `mask` is boolean (true = attend) or additive float, broadcastable to
 * (..., Lq, Lk). Uses libtorch's fused kernel on 2.x; on 1.13 the explicit formula below.
 */
export function scaledDotProductAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  o: { mask?: Tensor; dropoutP?: number; training?: boolean } = {},
): Tensor {
  const p = o.training ? (o.dropoutP ?? 0) : 0;
  if (N.scaledDotProductAttention) return wrap(N.scaledDotProductAttention(q.id, k.id, v.id, o.mask?.id, p, false));
  const kt = k.transpose(-2, -1);
  const raw = q.matmul(kt);
  const scores = raw.mul(1 / Math.sqrt(q.size(-1)));
  kt.dispose();
  raw.dispose();
  let masked = scores;
  if (o.mask) {
    if (o.mask.dtype === 'bool') {
      const blocked = o.mask.logicalNot();
      masked = scores.maskedFill(blocked, -Infinity);
      blocked.dispose();
    } else {
      masked = scores.add(o.mask);
    }
    scores.dispose();
  }
  let attn = masked.softmax(-1);
  masked.dispose();
  if (p > 0) {
    const dropped = dropout(attn, p, true);
    attn.dispose();
    attn = dropped;
  }
  const out = attn.matmul(v);
  attn.dispose();
  return out;
}
