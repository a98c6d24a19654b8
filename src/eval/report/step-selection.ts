// The step a study run is evaluated at (RESULTS.md, the TMA study's plan): the one with the best validation zero-shot
// macro-AUROC that the trainer logs every train.validateEvery steps (on data.valCache, never on the test volumes);
// steps within `tolerance` of the best count as ties and go to the earliest of them.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface ValidationPoint {
  step: number;
  auroc: number;
}

/** The lines of a run's metrics.jsonl text, parsed; a line that is not JSON is an error naming it. */
export function metricsLines(metricsJsonl: string, source = 'metrics.jsonl'): Record<string, unknown>[] {
  return metricsJsonl.split('\n').flatMap((line, i) => {
    if (!line.trim()) return [];
    try {
      return [JSON.parse(line) as Record<string, unknown>];
    } catch {
      throw new Error(`${source}:${i + 1}: not a JSON line`);
    }
  });
}

/** The validations of a run's metrics.jsonl text, by step; a step logged twice (a resumed run) keeps its last. */
export function validationCurve(metricsJsonl: string, source = 'metrics.jsonl'): ValidationPoint[] {
  const byStep = new Map<number, number>();
  for (const r of metricsLines(metricsJsonl, source)) {
    const auroc = (r.validation as { zeroShotAuroc?: unknown } | undefined)?.zeroShotAuroc;
    if (typeof r.step === 'number' && typeof auroc === 'number' && Number.isFinite(auroc)) byStep.set(r.step, auroc);
  }
  return [...byStep].map(([step, auroc]) => ({ step, auroc })).sort((a, b) => a.step - b.step);
}

/** The earliest step whose validation AUROC is within `tolerance` of the best; undefined for an empty curve. */
export function selectStep(curve: readonly ValidationPoint[], tolerance = 0.002): ValidationPoint | undefined {
  if (!curve.length) return undefined;
  const best = Math.max(...curve.map((p) => p.auroc));
  return [...curve].sort((a, b) => a.step - b.step).find((p) => p.auroc >= best - tolerance);
}

export interface Selection extends ValidationPoint {
  /** the best validation AUROC (the selected step's is within the tolerance of it) */
  best: number;
  /** the last validated step */
  lastStep: number;
}

/** The selection of a run folder (its metrics.jsonl); undefined while it has no validation. */
export function runSelection(runDir: string, tolerance = 0.002): Selection | undefined {
  const path = join(runDir, 'metrics.jsonl');
  if (!existsSync(path)) return undefined;
  const curve = validationCurve(readFileSync(path, 'utf8'), path);
  const chosen = selectStep(curve, tolerance);
  if (!chosen) return undefined;
  return { ...chosen, best: Math.max(...curve.map((p) => p.auroc)), lastStep: curve[curve.length - 1]!.step };
}
