// Autograd entry points beyond Tensor.backward: grad mode scopes and torch.autograd.grad.
import { native as N } from './native.js';
import { type Tensor, wrap } from './tensor.js';

function withGradMode<T>(enabled: boolean, fn: () => T): T {
  const prev = N.setGradEnabled(enabled) as boolean;
  try {
    return fn();
  } finally {
    N.setGradEnabled(prev);
  }
}

/** Runs fn without recording operations for autograd (torch.no_grad). */
export const noGrad = <T>(fn: () => T): T => withGradMode(false, fn);
/** Re-enables recording inside a noGrad region (torch.enable_grad). */
export const enableGrad = <T>(fn: () => T): T => withGradMode(true, fn);
export const isGradEnabled = (): boolean => N.isGradEnabled() as boolean;

/** Backward from several roots at once (torch.autograd.backward). */
export function backward(roots: Tensor[], grads?: Tensor[], opts: { retainGraph?: boolean } = {}): void {
  N.backward(
    roots.map((t) => t.id),
    grads?.map((t) => t.id),
    opts.retainGraph ?? false,
  );
}

/** Gradients of outputs w.r.t. inputs without touching .grad (torch.autograd.grad). */
export function grad(
  outputs: Tensor[],
  inputs: Tensor[],
  opts: { gradOutputs?: Tensor[]; retainGraph?: boolean; createGraph?: boolean; allowUnused?: boolean } = {},
): (Tensor | undefined)[] {
  const ids = N.autogradGrad(
    outputs.map((t) => t.id),
    inputs.map((t) => t.id),
    opts.gradOutputs?.map((t) => t.id),
    opts.retainGraph ?? opts.createGraph ?? false,
    opts.createGraph ?? false,
    opts.allowUnused ?? false,
  ) as (number | undefined)[];
  return ids.map((id) => (id === undefined ? undefined : wrap(id)));
}
