// Tensor: a typed handle to a libtorch tensor. Memory is owned natively; see scope.ts for lifetimes. The handle
// itself (metadata, lifetime, reading values, in-place mutation) is TensorHandle (tensor-handle.ts); here are the
// conversions, autograd and the operations that make new tensors.
import { native as N } from './native.js';
import { TensorHandle } from './tensor-handle.js';
import { type DType, ELEMENT_SIZE, dtypeCode } from './dtype.js';

export type Device = string; // 'cpu' | 'cuda' | 'cuda:N'
export type Scalar = number | boolean;
export type Reduction = 'none' | 'mean' | 'sum';
/** PyTorch's torch.contiguous_format / channels_last(_3d): oneDNN's 3D convolutions are faster channels-last. */
export type MemoryFormat = 'contiguous' | 'channels-last';
export const REDUCTION: Record<Reduction, number> = { none: 0, mean: 1, sum: 2 };

export function wrap(id: unknown): Tensor {
  if (typeof id !== 'number') throw new Error('internal: native op returned no tensor');
  return new Tensor(id);
}
export function wrapList(ids: unknown): Tensor[] {
  return (ids as number[]).map((id) => new Tensor(id));
}
function pair(ids: unknown): [Tensor, Tensor] {
  const [a, b] = ids as [number, number];
  return [new Tensor(a), new Tensor(b)];
}
const dims = (d: number | number[] | undefined): number[] | undefined =>
  d === undefined ? undefined : Array.isArray(d) ? d : [d];

export class Tensor extends TensorHandle {
  // ---- conversion ----
  /** nonBlocking: a copy from pinned host memory to a CUDA device returns before it has finished (as in PyTorch) */
  override to(
    target: { dtype?: DType; device?: Device; copy?: boolean; nonBlocking?: boolean } | DType | Device,
  ): Tensor {
    const o = typeof target === 'string' ? (isDTypeName(target) ? { dtype: target } : { device: target }) : target;
    return wrap(
      N.to(
        this.id,
        o.dtype === undefined ? undefined : dtypeCode(o.dtype),
        o.device,
        o.copy ?? false,
        o.nonBlocking ?? false,
      ),
    );
  }
  float(): Tensor {
    return this.to({ dtype: 'float32' });
  }
  double(): Tensor {
    return this.to({ dtype: 'float64' });
  }
  long(): Tensor {
    return this.to({ dtype: 'int64' });
  }
  clone(): Tensor {
    return wrap(N.clone(this.id));
  }
  /** A dense copy (or this tensor when already so): row-major, or channels innermost for 4-D/5-D 'channels-last'. */
  contiguous(format?: MemoryFormat): Tensor {
    return wrap(format ? N.contiguousAs(this.id, format) : N.contiguous(this.id));
  }

  // ---- autograd ----
  requiresGrad_(flag = true): this {
    N.setRequiresGrad(this.id, flag);
    return this;
  }
  get grad(): Tensor | undefined {
    const g = N.grad(this.id);
    return g === undefined ? undefined : wrap(g);
  }
  set grad(g: Tensor | undefined) {
    N.setGrad(this.id, g?.id);
  }
  zeroGrad(): void {
    N.setGrad(this.id, undefined);
  }
  detach(): Tensor {
    return wrap(N.detach(this.id));
  }
  backward(gradient?: Tensor, opts: { retainGraph?: boolean } = {}): void {
    N.backward([this.id], gradient ? [gradient.id] : undefined, opts.retainGraph ?? false);
  }

  // ---- element-wise ----
  add(o: Tensor | number, alpha?: number): Tensor {
    return wrap(
      typeof o === 'number' ? N.addS(this.id, alpha === undefined ? o : o * alpha) : N.add(this.id, o.id, alpha),
    );
  }
  sub(o: Tensor | number, alpha?: number): Tensor {
    return wrap(
      typeof o === 'number' ? N.subS(this.id, alpha === undefined ? o : o * alpha) : N.sub(this.id, o.id, alpha),
    );
  }
  /** scalar - this */
  rsub(s: number): Tensor {
    return wrap(N.rsubS(this.id, s));
  }
  mul(o: Tensor | number): Tensor {
    return wrap(typeof o === 'number' ? N.mulS(this.id, o) : N.mul(this.id, o.id));
  }
  div(o: Tensor | number): Tensor {
    return wrap(typeof o === 'number' ? N.divS(this.id, o) : N.div(this.id, o.id));
  }
  pow(o: Tensor | number): Tensor {
    return wrap(typeof o === 'number' ? N.powS(this.id, o) : N.pow(this.id, o.id));
  }
  remainder(o: Tensor | number): Tensor {
    return wrap(typeof o === 'number' ? N.remainderS(this.id, o) : N.remainder(this.id, o.id));
  }
  eq(o: Tensor | Scalar): Tensor {
    return wrap(typeof o === 'object' ? N.eq(this.id, o.id) : N.eqS(this.id, o));
  }
  ne(o: Tensor | Scalar): Tensor {
    return wrap(typeof o === 'object' ? N.ne(this.id, o.id) : N.neS(this.id, o));
  }
  lt(o: Tensor | number): Tensor {
    return wrap(typeof o === 'number' ? N.ltS(this.id, o) : N.lt(this.id, o.id));
  }
  le(o: Tensor | number): Tensor {
    return wrap(typeof o === 'number' ? N.leS(this.id, o) : N.le(this.id, o.id));
  }
  gt(o: Tensor | number): Tensor {
    return wrap(typeof o === 'number' ? N.gtS(this.id, o) : N.gt(this.id, o.id));
  }
  ge(o: Tensor | number): Tensor {
    return wrap(typeof o === 'number' ? N.geS(this.id, o) : N.ge(this.id, o.id));
  }
  maximum(o: Tensor): Tensor {
    return wrap(N.maximum(this.id, o.id));
  }
  minimum(o: Tensor): Tensor {
    return wrap(N.minimum(this.id, o.id));
  }
  logicalAnd(o: Tensor): Tensor {
    return wrap(N.logicalAnd(this.id, o.id));
  }
  logicalOr(o: Tensor): Tensor {
    return wrap(N.logicalOr(this.id, o.id));
  }
  logicalNot(): Tensor {
    return wrap(N.logicalNot(this.id));
  }
  neg(): Tensor {
    return wrap(N.neg(this.id));
  }
  abs(): Tensor {
    return wrap(N.abs(this.id));
  }
  exp(): Tensor {
    return wrap(N.exp(this.id));
  }
  log(): Tensor {
    return wrap(N.log(this.id));
  }
  log1p(): Tensor {
    return wrap(N.log1p(this.id));
  }
  expm1(): Tensor {
    return wrap(N.expm1(this.id));
  }
  sqrt(): Tensor {
    return wrap(N.sqrt(this.id));
  }
  rsqrt(): Tensor {
    return wrap(N.rsqrt(this.id));
  }
  reciprocal(): Tensor {
    return wrap(N.reciprocal(this.id));
  }
  sin(): Tensor {
    return wrap(N.sin(this.id));
  }
  cos(): Tensor {
    return wrap(N.cos(this.id));
  }
  sign(): Tensor {
    return wrap(N.sign(this.id));
  }
  erfinv(): Tensor {
    return wrap(N.erfinv(this.id));
  }
  floor(): Tensor {
    return wrap(N.floor(this.id));
  }
  ceil(): Tensor {
    return wrap(N.ceil(this.id));
  }
  round(): Tensor {
    return wrap(N.round(this.id));
  }
  sigmoid(): Tensor {
    return wrap(N.sigmoid(this.id));
  }
  tanh(): Tensor {
    return wrap(N.tanh(this.id));
  }
  relu(): Tensor {
    return wrap(N.relu(this.id));
  }
  gelu(approximate: 'none' | 'tanh' = 'none'): Tensor {
    return wrap(N.gelu(this.id, approximate));
  }
  silu(): Tensor {
    return wrap(N.silu(this.id));
  }
  leakyRelu(slope = 0.01): Tensor {
    return wrap(N.leakyRelu(this.id, slope));
  }
  isnan(): Tensor {
    return wrap(N.isnan(this.id));
  }
  isfinite(): Tensor {
    return wrap(N.isfinite(this.id));
  }
  clamp(min?: number, max?: number): Tensor {
    return wrap(N.clamp(this.id, min, max));
  }
  clampMin(min: number): Tensor {
    return this.clamp(min, undefined);
  }
  lerp(end: Tensor, weight: number): Tensor {
    return wrap(N.lerp(this.id, end.id, weight));
  }
  softmax(dim: number): Tensor {
    return wrap(N.softmax(this.id, dim));
  }
  logSoftmax(dim: number): Tensor {
    return wrap(N.logSoftmax(this.id, dim));
  }
  maskedFill(mask: Tensor, value: number): Tensor {
    return wrap(N.maskedFill(this.id, mask.id, value));
  }

  // ---- reductions ----
  sum(dim?: number | number[], keepdim = false): Tensor {
    return wrap(N.sum(this.id, dims(dim), keepdim));
  }
  mean(dim?: number | number[], keepdim = false): Tensor {
    return wrap(N.mean(this.id, dims(dim), keepdim));
  }
  prod(dim?: number, keepdim = false): Tensor {
    return wrap(N.prod(this.id, dim, keepdim));
  }
  /** Max over all elements, or over `dim` (values only; see maxDim for indices). */
  max(dim?: number | number[], keepdim = false): Tensor {
    return wrap(N.amax(this.id, dims(dim), keepdim));
  }
  min(dim?: number | number[], keepdim = false): Tensor {
    return wrap(N.amin(this.id, dims(dim), keepdim));
  }
  maxDim(dim: number, keepdim = false): [Tensor, Tensor] {
    return pair(N.maxDim(this.id, dim, keepdim));
  }
  minDim(dim: number, keepdim = false): [Tensor, Tensor] {
    return pair(N.minDim(this.id, dim, keepdim));
  }
  argmax(dim?: number, keepdim = false): Tensor {
    return wrap(N.argmax(this.id, dim, keepdim));
  }
  argmin(dim?: number, keepdim = false): Tensor {
    return wrap(N.argmin(this.id, dim, keepdim));
  }
  all(): Tensor {
    return wrap(N.all(this.id));
  }
  any(): Tensor {
    return wrap(N.any(this.id));
  }
  logsumexp(dim: number | number[], keepdim = false): Tensor {
    return wrap(N.logsumexp(this.id, dims(dim), keepdim));
  }
  norm(p = 2, dim?: number | number[], keepdim = false): Tensor {
    return wrap(N.norm(this.id, p, dims(dim), keepdim));
  }
  var(dim?: number | number[], opts: { correction?: number; keepdim?: boolean } = {}): Tensor {
    return wrap(N.var(this.id, dims(dim), opts.correction ?? 1, opts.keepdim ?? false));
  }
  std(dim?: number | number[], opts: { correction?: number; keepdim?: boolean } = {}): Tensor {
    return wrap(N.std(this.id, dims(dim), opts.correction ?? 1, opts.keepdim ?? false));
  }
  cumsum(dim: number): Tensor {
    return wrap(N.cumsum(this.id, dim));
  }
  topk(k: number, dim = -1, largest = true, sorted = true): [Tensor, Tensor] {
    return pair(N.topk(this.id, k, dim, largest, sorted));
  }
  sort(dim = -1, descending = false): [Tensor, Tensor] {
    return pair(N.sort(this.id, dim, descending));
  }

  // ---- linear algebra ----
  matmul(o: Tensor): Tensor {
    return wrap(N.matmul(this.id, o.id));
  }
  bmm(o: Tensor): Tensor {
    return wrap(N.bmm(this.id, o.id));
  }

  // ---- shape ----
  reshape(...shape: number[]): Tensor {
    return wrap(N.reshape(this.id, shape));
  }
  view(...shape: number[]): Tensor {
    return wrap(N.view(this.id, shape));
  }
  flatten(start = 0, end = -1): Tensor {
    return wrap(N.flatten(this.id, start, end));
  }
  permute(...order: number[]): Tensor {
    return wrap(N.permute(this.id, order));
  }
  transpose(d0: number, d1: number): Tensor {
    return wrap(N.transpose(this.id, d0, d1));
  }
  get T(): Tensor {
    return this.transpose(-2, -1);
  }
  squeeze(dim?: number): Tensor {
    return wrap(N.squeeze(this.id, dim));
  }
  unsqueeze(dim: number): Tensor {
    return wrap(N.unsqueeze(this.id, dim));
  }
  expand(...shape: number[]): Tensor {
    return wrap(N.expand(this.id, shape));
  }
  expandAs(o: Tensor): Tensor {
    return this.expand(...o.shape);
  }
  repeat(...times: number[]): Tensor {
    return wrap(N.repeat(this.id, times));
  }
  flip(dims: number[]): Tensor {
    return wrap(N.flip(this.id, dims));
  }
  roll(shifts: number[], dims: number[]): Tensor {
    return wrap(N.roll(this.id, shifts, dims));
  }
  narrow(dim: number, start: number, length: number): Tensor {
    return wrap(N.narrow(this.id, dim, start, length));
  }
  slice(dim: number, start?: number, end?: number, step = 1): Tensor {
    return wrap(N.slice(this.id, dim, start, end, step));
  }
  select(dim: number, index: number): Tensor {
    return wrap(N.select(this.id, dim, index));
  }
  split(sizeOrSizes: number | number[], dim = 0): Tensor[] {
    return wrapList(N.split(this.id, sizeOrSizes, dim));
  }
  chunk(chunks: number, dim = 0): Tensor[] {
    return wrapList(N.chunk(this.id, chunks, dim));
  }
  indexSelect(dim: number, index: Tensor): Tensor {
    return wrap(N.indexSelect(this.id, dim, index.id));
  }
  gather(dim: number, index: Tensor): Tensor {
    return wrap(N.gather(this.id, dim, index.id));
  }
  scatter(dim: number, index: Tensor, src: Tensor): Tensor {
    return wrap(N.scatter(this.id, dim, index.id, src.id));
  }
  scatterAdd(dim: number, index: Tensor, src: Tensor): Tensor {
    return wrap(N.scatterAdd(this.id, dim, index.id, src.id));
  }
  maskedSelect(mask: Tensor): Tensor {
    return wrap(N.maskedSelect(this.id, mask.id));
  }
  /** Advanced indexing along leading dims (null keeps a dim whole), like x[idx0, idx1]. */
  index(indices: (Tensor | null)[]): Tensor {
    return wrap(
      N.index(
        this.id,
        indices.map((t) => (t ? t.id : null)),
      ),
    );
  }
  nonzero(): Tensor {
    return wrap(N.nonzero(this.id));
  }
  tril(diagonal = 0): Tensor {
    return wrap(N.tril(this.id, diagonal));
  }
  triu(diagonal = 0): Tensor {
    return wrap(N.triu(this.id, diagonal));
  }
}

function isDTypeName(s: string): s is DType {
  return s in ELEMENT_SIZE;
}
