// A tensor with a given (offset, size, stride) over a 1-D storage tensor, as torch.as_strided makes it, built from
// the engine's view operations (view, narrow, select, permute, unsqueeze, expand) so that it shares the storage's
// bytes. Any layout of non-overlapping nested strides (contiguous, transposed, permuted, sliced, expanded) is a
// view; a layout no chain of views reaches (overlapping strides, or a slice whose enclosing block would run past
// the storage's end) is gathered into a copy instead — equal values, but no longer sharing bytes.
import * as torch from '../../torch/index.js';
import { type Tensor } from '../../torch/index.js';

export function stridedView(storage: Tensor, offset: number, size: number[], stride: number[]): Tensor {
  if (size.includes(0)) return torch.zeros(size, { dtype: storage.dtype });
  return torch.tidy(() => viewOf(storage, offset, size, stride) ?? gather(storage, offset, size, stride));
}

function viewOf(storage: Tensor, offset: number, size: number[], stride: number[]): Tensor | undefined {
  // dims that walk memory, outermost (largest stride) first; size-1 dims and stride-0 (broadcast) dims come later
  const dims = size.map((_, d) => d).filter((d) => size[d]! > 1 && stride[d]! > 0);
  dims.sort((a, b) => stride[b]! - stride[a]! || a - b);
  const st = dims.map((d) => stride[d]!);
  const sz = dims.map((d) => size[d]!);
  // nested: each stride holds the dims inside it whole; the innermost may step by any stride within its row
  const k = dims.length;
  for (let i = 1; i < k - 1; i++) if (st[i - 1]! % st[i]! !== 0 || st[i - 1]! < sz[i]! * st[i]!) return undefined;
  if (k >= 2 && st[k - 2]! < (sz[k - 1]! - 1) * st[k - 1]! + 1) return undefined;
  let t = dims.length ? block(storage, offset, st, sz) : storage.narrow(0, offset, 1).reshape();
  if (!t) return undefined;
  // back to the caller's dim order, then the size-1 and broadcast dims in place
  const order = [...dims].sort((a, b) => a - b);
  t = t.permute(...order.map((d) => dims.indexOf(d)));
  for (let d = 0; d < size.length; d++) if (!order.includes(d)) t = t.unsqueeze(d);
  return size.some((s, d) => s > 1 && stride[d] === 0) ? t.expand(...size) : t;
}

/**
 * The enclosing block — [sz0, st0/st1, …, st(k-3)/st(k-2), st(k-2)] elements, row-major (one row of st0 when k
 * is 1) — narrowed to the tensor, its innermost dim a stepped slice of the last row. The tensor starts at a
 * mixed-radix position inside the block, chosen as deep as possible so that the block still ends within the storage
 * (a column slice starts its block at its row's start).
 */
function block(storage: Tensor, offset: number, st: number[], sz: number[]): Tensor | undefined {
  const k = st.length;
  const radix = k === 1 ? [st[0]!] : [...st.slice(1, k - 1).map((s, i) => st[i]! / s), st[k - 2]!];
  const span = k === 1 ? 1 : (sz[k - 1]! - 1) * st[k - 1]! + 1; // what the innermost dim covers of its row
  const start: number[] = [];
  let rest = offset;
  for (let i = 1; i <= Math.max(k - 1, 1); i++) {
    const last = i === Math.max(k - 1, 1);
    const unit = last ? 1 : st[i]!;
    const room = last ? radix[i - 1]! - span : radix[i - 1]! - sz[i]!;
    const c = Math.min(room, Math.floor(rest / unit));
    start.push(c);
    rest -= c * unit;
  }
  const len = sz[0]! * st[0]!;
  if (rest + len > storage.shape[0]!) return undefined;
  let t = storage.narrow(0, rest, len).view(sz[0]!, ...radix);
  for (let i = 1; i < k - 1; i++) t = t.narrow(i, start[i - 1]!, sz[i]!);
  const c = start[start.length - 1]!;
  return k === 1 ? t.select(1, c) : t.slice(k - 1, c, c + span, st[k - 1]!);
}

function gather(storage: Tensor, offset: number, size: number[], stride: number[]): Tensor {
  let index = torch.full([], offset, { dtype: 'int64' });
  size.forEach((s, d) => {
    const shape = size.map((_, e) => (e === d ? s : 1));
    index = index.add(
      torch
        .arange(s)
        .mul(stride[d]!)
        .view(...shape),
    );
  });
  return storage.indexSelect(0, index.expand(...size).flatten()).view(...size);
}
