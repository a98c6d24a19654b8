// Finite-difference gradient check (like torch.autograd.gradcheck), for float64 inputs.
import { type Tensor } from './tensor.js';
import { randn, tensor } from './creation.js';
import { grad, noGrad } from './autograd.js';
import { tidy } from './scope.js';
import { Generator } from './generator.js';

export interface GradcheckResult {
  ok: boolean;
  maxAbsError: number;
  worst: string;
}

/**
 * Compares autograd's gradient of sum(fn(inputs) · w), w random, with central differences, for every
 * element of the inputs listed in `wrt` (default: all floating inputs).
 */
export function gradcheck(
  fn: (...xs: Tensor[]) => Tensor,
  inputs: Tensor[],
  o: { wrt?: number[]; eps?: number; atol?: number; rtol?: number; seed?: number } = {},
): GradcheckResult {
  const eps = o.eps ?? 1e-6,
    atol = o.atol ?? 1e-5,
    rtol = o.rtol ?? 1e-3;
  const wrt = o.wrt ?? inputs.map((t, i) => (t.dtype === 'float64' ? i : -1)).filter((i) => i >= 0);
  for (const i of wrt)
    if (inputs[i]!.dtype !== 'float64')
      throw new Error(`gradcheck: input ${i} must be float64, got ${inputs[i]!.dtype}`);
  return tidy(() => {
    const leaves = inputs.map((t, i) => (wrt.includes(i) ? t.detach().requiresGrad_(true) : t));
    const out = fn(...leaves);
    const w = randn(out.shape, { dtype: 'float64', generator: new Generator(o.seed ?? 0) });
    const loss = (xs: Tensor[]) =>
      fn(...xs)
        .mul(w)
        .sum();
    const analytic = grad(
      [loss(leaves)],
      wrt.map((i) => leaves[i]!),
      { allowUnused: true },
    );
    let maxAbsError = 0;
    let worst = '';
    let ok = true;
    wrt.forEach((inputIndex, k) => {
      const base = Float64Array.from(inputs[inputIndex]!.toTypedArray() as Float64Array);
      const shape = inputs[inputIndex]!.shape;
      const a = analytic[k] ? (analytic[k]!.toTypedArray() as Float64Array) : new Float64Array(base.length);
      for (let j = 0; j < base.length; j++) {
        const evalAt = (delta: number) =>
          tidy(() =>
            noGrad(() => {
              const v = Float64Array.from(base);
              v[j]! += delta;
              const xs = leaves.map((t, i) => (i === inputIndex ? tensor(v, shape) : t.detach()));
              return loss(xs).item();
            }),
          );
        const numeric = (evalAt(eps) - evalAt(-eps)) / (2 * eps);
        const err = Math.abs(numeric - a[j]!);
        if (err > maxAbsError) {
          maxAbsError = err;
          worst = `input ${inputIndex}[${j}]: autograd ${a[j]} vs numeric ${numeric}`;
        }
        if (err > atol + rtol * Math.abs(numeric)) ok = false;
      }
    });
    return { ok, maxAbsError, worst };
  });
}
