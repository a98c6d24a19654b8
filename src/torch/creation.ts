// Tensor factories (torch.zeros, torch.randn, torch.from_numpy-like copies, ...).
import { native as N } from './native.js';
import { type DType, dtypeCode, dtypeOfTypedArray, isFloating } from './dtype.js';
import type { Generator } from './generator.js';
import { type Device, type Tensor, wrap } from './tensor.js';

export interface TensorOptions {
  dtype?: DType;
  device?: Device;
  requiresGrad?: boolean;
}
export interface RandomOptions extends TensorOptions {
  generator?: Generator;
}

const code = (o: TensorOptions | undefined, dflt?: DType): number | undefined => {
  const d = o?.dtype ?? dflt;
  return d === undefined ? undefined : dtypeCode(d);
};
const finish = (t: Tensor, o?: TensorOptions): Tensor => (o?.requiresGrad ? t.requiresGrad_(true) : t);

export function checkShape(shape: readonly number[], what = 'shape'): number[] {
  for (const s of shape) {
    if (!Number.isInteger(s) || s < 0)
      throw new Error(`${what} [${shape.join(', ')}]: every size must be an integer ≥ 0`);
  }
  return [...shape];
}

export const zeros = (shape: number[], o?: TensorOptions) =>
  finish(wrap(N.zeros(checkShape(shape), code(o), o?.device)), o);
export const ones = (shape: number[], o?: TensorOptions) =>
  finish(wrap(N.ones(checkShape(shape), code(o), o?.device)), o);
export const empty = (shape: number[], o?: TensorOptions) =>
  finish(wrap(N.empty(checkShape(shape), code(o), o?.device)), o);
export const full = (shape: number[], value: number | boolean, o?: TensorOptions) =>
  finish(
    wrap(N.full(checkShape(shape), value, code(o, typeof value === 'boolean' ? 'bool' : 'float32'), o?.device)),
    o,
  );
/** t's shape, dtype, device and memory layout (as torch.zeros_like), unless `o` says otherwise. */
export const fullLike = (t: Tensor, value: number, o?: TensorOptions) =>
  finish(wrap(N.fullLike(t.id, value, code(o), o?.device)), o);
export const zerosLike = (t: Tensor, o?: TensorOptions) => fullLike(t, 0, o);
export const onesLike = (t: Tensor, o?: TensorOptions) => fullLike(t, 1, o);
export const scalar = (value: number, o?: TensorOptions) => full([], value, o);

/** arange(end) or arange(start, end, step); integer arguments give int64 like PyTorch. */
export function arange(start: number, end?: number, step = 1, o?: TensorOptions): Tensor {
  const [s, e] = end === undefined ? [0, start] : [start, end];
  const allInt = [s, e, step].every(Number.isInteger);
  return finish(wrap(N.arange(s, e, step, code(o, allInt ? 'int64' : 'float32'), o?.device)), o);
}
export const linspace = (start: number, end: number, steps: number, o?: TensorOptions) =>
  finish(wrap(N.linspace(start, end, steps, code(o), o?.device)), o);
export const eye = (n: number, m = n, o?: TensorOptions) => finish(wrap(N.eye(n, m, code(o), o?.device)), o);

export const rand = (shape: number[], o?: RandomOptions) =>
  finish(wrap(N.rand(checkShape(shape), code(o), o?.device, o?.generator?.id)), o);
export const randn = (shape: number[], o?: RandomOptions) =>
  finish(wrap(N.randn(checkShape(shape), code(o), o?.device, o?.generator?.id)), o);
export const randint = (low: number, high: number, shape: number[], o?: RandomOptions) =>
  wrap(N.randint(low, high, checkShape(shape), code(o), o?.device, o?.generator?.id));
export const randperm = (n: number, o?: RandomOptions) => wrap(N.randperm(n, code(o), o?.device, o?.generator?.id));

/**
 * Copies a typed array (or plain numbers) into a new CPU tensor. Plain numbers become float32 unless
 * `dtype` says otherwise; typed arrays keep their element type.
 */
export function tensor(data: ArrayBufferView | number[] | number, shape?: number[], o?: TensorOptions): Tensor {
  let view: ArrayBufferView;
  let natural: DType;
  if (typeof data === 'number' || Array.isArray(data)) {
    const values = typeof data === 'number' ? [data] : data;
    const target = o?.dtype ?? 'float32';
    view = isFloating(target) || target === 'bool' ? new Float64Array(values) : new Float64Array(values);
    natural = 'float64';
    shape ??= typeof data === 'number' ? [] : [values.length];
  } else {
    view = data;
    natural = dtypeOfTypedArray(data);
    shape ??= [data.byteLength / (data as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT];
  }
  // bound for a CUDA device: stage the bytes in pinned memory, so the copy to the device runs asynchronously
  const toCuda = o?.device?.startsWith('cuda') ?? false;
  const t = wrap(N.fromBytes(view, checkShape(shape), dtypeCode(natural), toCuda));
  const target = o?.dtype ?? (typeof data === 'number' || Array.isArray(data) ? 'float32' : natural);
  let out = t;
  if (target !== natural || (o?.device && o.device !== 'cpu')) {
    out = t.to({ dtype: target, device: o?.device, nonBlocking: toCuda });
    t.dispose();
  }
  return finish(out, o);
}

/** A tensor over raw little-endian bytes of any dtype (float16/bfloat16 included). */
export function fromBytes(bytes: Uint8Array, shape: number[], dtype: DType): Tensor {
  return wrap(N.fromBytes(bytes, checkShape(shape), dtypeCode(dtype)));
}
