// The TMA study's gate (RESULTS.md, the plan): seed 0 of P1 pooled goes on to five seeds only if its cross-entropy is
// below its rolled chance bound by step 300 — the logged `tmaLeakGap` (that bound minus the cross-entropy), averaged
// over the steps logged from 200 to 300, above 0 with a 95 % interval over those steps that excludes 0.
import { bootstrapCi } from '../metrics/bootstrap.js';
import { metricsLines } from './step-selection.js';

export interface GateResult {
  /** the steps whose tmaLeakGap was logged within the window */
  steps: number[];
  mean: number;
  lo: number;
  hi: number;
  pass: boolean;
}

/** The gate on a run's metrics.jsonl text; undefined while the window holds fewer than two logged gaps. */
export function leakGate(
  metricsJsonl: string,
  o: { from?: number; to?: number; source?: string } = {},
): GateResult | undefined {
  const from = o.from ?? 200,
    to = o.to ?? 300;
  const byStep = new Map<number, number>();
  for (const { step, tmaLeakGap: gap } of metricsLines(metricsJsonl, o.source)) {
    if (typeof step === 'number' && step >= from && step <= to && typeof gap === 'number' && Number.isFinite(gap))
      byStep.set(step, gap);
  }
  const steps = [...byStep.keys()].sort((a, b) => a - b);
  if (steps.length < 2) return undefined;
  const gaps = steps.map((s) => byStep.get(s)!);
  const mean = gaps.reduce((a, b) => a + b, 0) / gaps.length;
  const ci = bootstrapCi(
    gaps.length,
    (idx) => Array.from(idx, (i) => gaps[i]!).reduce((a, b) => a + b, 0) / idx.length,
  );
  return { steps, mean, lo: ci.lo, hi: ci.hi, pass: mean > 0 && ci.lo > 0 };
}
