// TensorHandle: one native libtorch tensor as a handle: what it is (shape, dtype, device), its lifetime, reading its
// values out, and the in-place operations that mutate it and return it. Tensor (tensor.ts) extends it with every
// operation that makes a new tensor; Tensor is the only class ever instantiated.
import { native as N } from './native.js';
import { type DType, dtypeName, typedArrayFromBytes, type TypedArrayOf } from './dtype.js';
import type { Generator } from './generator.js';
import type { Device, MemoryFormat, Scalar, Tensor } from './tensor.js';

export abstract class TensorHandle {
  /**
   * Native handle. Lifetime is explicit (tidy scopes, dispose) like tfjs: V8 cannot see native memory,
   * and finalizers only run when the event loop turns, which a training loop may never do.
   */
  readonly id: number;
  private shapeCache: number[] | undefined;

  constructor(id: number) {
    this.id = id;
  }

  // ---- metadata ----
  get shape(): number[] {
    return (this.shapeCache ??= N.shape(this.id) as number[]);
  }
  get ndim(): number {
    return this.shape.length;
  }
  get dtype(): DType {
    return dtypeName(N.dtype(this.id) as number);
  }
  get device(): Device {
    return N.device(this.id) as string;
  }
  get strides(): number[] {
    return N.strides(this.id) as number[];
  }
  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }
  get isDisposed(): boolean {
    return !(N.isLive(this.id) as boolean);
  }
  get requiresGrad(): boolean {
    return N.requiresGrad(this.id) as boolean;
  }
  get isLeaf(): boolean {
    return N.isLeaf(this.id) as boolean;
  }
  /** Row-major by default; with 'channels-last', whether a 4-D/5-D tensor is laid out with channels innermost. */
  isContiguous(format?: MemoryFormat): boolean {
    return (format ? N.isContiguousAs(this.id, format) : N.isContiguous(this.id)) as boolean;
  }
  size(dim: number): number {
    const s = this.shape;
    const d = dim < 0 ? dim + s.length : dim;
    if (d < 0 || d >= s.length) throw new Error(`size(${dim}): tensor has ${s.length} dims`);
    return s[d]!;
  }
  toString(): string {
    return `Tensor(shape=[${this.shape.join(', ')}], dtype=${this.dtype}, device=${this.device})`;
  }

  // ---- lifetime ----
  dispose(): void {
    N.free(this.id);
  }
  /** Excludes this tensor from scope cleanup: it lives until dispose(). */
  keep(): this {
    N.keep(this.id);
    return this;
  }

  // ---- data ----
  toBytes(): Uint8Array {
    return N.toBytes(this.id) as Uint8Array;
  }
  /** Values in row-major order; float16/bfloat16 are returned as float32, bool as uint8. */
  toTypedArray(): TypedArrayOf {
    const dt = this.dtype;
    if (dt === 'float16' || dt === 'bfloat16') return this.toDtypeScoped('float32', (t) => t.toTypedArray());
    const bytes = this.toBytes();
    // Copy into a fresh aligned buffer: Buffer pools may not be aligned to the element size.
    const aligned = new Uint8Array(bytes.byteLength);
    aligned.set(bytes);
    return typedArrayFromBytes(dt, aligned);
  }
  toArray(): number[] {
    const a = this.toTypedArray();
    return a instanceof BigInt64Array ? Array.from(a, Number) : Array.from(a as ArrayLike<number>);
  }
  item(): number {
    const v = N.item(this.id);
    return typeof v === 'boolean' ? Number(v) : (v as number);
  }
  private toDtypeScoped<R>(dtype: DType, fn: (t: Tensor) => R): R {
    const t = this.to({ dtype });
    try {
      return fn(t);
    } finally {
      t.dispose();
    }
  }
  /** A converted copy (Tensor.to); the readers above only change the dtype. */
  abstract to(target: { dtype: DType }): Tensor;

  // ---- in place, recorded by autograd like PyTorch's (MONAI's ReLU(inplace=True), `out += residual`): no new
  // allocation per activation. Only on intermediates whose overwritten values no backward pass reads, e.g. the output
  // of a norm layer or of an add ----
  relu_(): this {
    N.relu_(this.id);
    return this;
  }
  addRecorded_(o: Tensor): this {
    N.addRecorded_(this.id, o.id);
    return this;
  }

  // ---- in place (no autograd; for optimizers, initialisers and buffers) ----
  zero_(): this {
    N.zero_(this.id);
    return this;
  }
  fill_(v: Scalar): this {
    N.fill_(this.id, v);
    return this;
  }
  copy_(src: Tensor): this {
    N.copy_(this.id, src.id);
    return this;
  }
  mul_(o: Tensor | number): this {
    if (typeof o === 'number') N.mul_(this.id, o);
    else N.mulT_(this.id, o.id);
    return this;
  }
  div_(s: number): this {
    N.div_(this.id, s);
    return this;
  }
  add_(o: Tensor | number, alpha = 1): this {
    if (typeof o === 'number') N.addS_(this.id, o * alpha);
    else N.add_(this.id, o.id, alpha);
    return this;
  }
  addcmul_(a: Tensor, b: Tensor, value = 1): this {
    N.addcmul_(this.id, a.id, b.id, value);
    return this;
  }
  addcdiv_(a: Tensor, b: Tensor, value = 1): this {
    N.addcdiv_(this.id, a.id, b.id, value);
    return this;
  }
  lerp_(end: Tensor, weight: number): this {
    N.lerp_(this.id, end.id, weight);
    return this;
  }
  clampMin_(v: number): this {
    N.clampMin_(this.id, v);
    return this;
  }
  clampMax_(v: number): this {
    N.clampMax_(this.id, v);
    return this;
  }
  sqrt_(): this {
    N.sqrt_(this.id);
    return this;
  }
  erfinv_(): this {
    N.erfinv_(this.id);
    return this;
  }
  maximum_(o: Tensor): this {
    N.maximum_(this.id, o.id);
    return this;
  }
  uniform_(low: number, high: number, generator?: Generator): this {
    N.uniform_(this.id, low, high, generator?.id);
    return this;
  }
  normal_(mean: number, std: number, generator?: Generator): this {
    N.normal_(this.id, mean, std, generator?.id);
    return this;
  }
}
