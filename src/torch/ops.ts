// torch.* functions that take several tensors.
import { native as N } from './native.js';
import { type Tensor, wrap } from './tensor.js';

const ids = (ts: Tensor[]) => ts.map((t) => t.id);

export const cat = (tensors: Tensor[], dim = 0): Tensor => wrap(N.cat(ids(tensors), dim));
export const stack = (tensors: Tensor[], dim = 0): Tensor => wrap(N.stack(ids(tensors), dim));
export const where = (cond: Tensor, a: Tensor, b: Tensor): Tensor => wrap(N.where(cond.id, a.id, b.id));
export const einsum = (equation: string, ...operands: Tensor[]): Tensor => wrap(N.einsum(equation, ids(operands)));
export const matmul = (a: Tensor, b: Tensor): Tensor => a.matmul(b);
export const oneHot = (indices: Tensor, numClasses = -1): Tensor => wrap(N.oneHot(indices.id, numClasses));
