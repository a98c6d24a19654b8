// Multi-label classification metrics for any scorer (zero-shot, linear probe, fine-tuning): per-label and
// macro AUROC, AP, F1, precision, recall, accuracy, with each label's operating threshold chosen on the
// validation volumes (Youden's J, as CT-CLIP picks it) and applied unchanged to the test volumes, and
// percentile-bootstrap 95 % CIs over test volumes.
import { auroc, averagePrecision, binaryStats, rocCurve, youdenThreshold } from './classification.js';
import { bootstrapCis } from './bootstrap.js';

export const THRESHOLD_RULE =
  "per label, Youden's J (max TPR − FPR) on the validation volumes, applied unchanged to the test volumes";
export const METRICS = ['auroc', 'ap', 'f1', 'precision', 'recall', 'accuracy'] as const;
export type MetricName = (typeof METRICS)[number];
export type Ci = [number, number];

export interface Scored {
  scores: number[][];
  labels: number[][];
}
export interface LabelMetrics extends Record<MetricName, number> {
  label: string;
  positives: number;
  threshold: number;
}
export interface ClassificationReport {
  labelNames: string[];
  thresholdRule: string;
  /** labels with both classes among the test volumes: the ones every macro value averages */
  labelsCounted: number;
  macro: Record<MetricName, number>;
  macroCi: Record<MetricName, Ci>;
  perLabel: LabelMetrics[];
  /** per-label AUROC CIs */
  aurocCi: Ci[];
  roc: { label: string; fpr: number[]; tpr: number[] }[];
  bootstrap: { resamples: number; seed: number; skipped: number };
}

const column = (m: number[][], l: number, idx?: Int32Array): number[] =>
  idx ? Array.from(idx, (i) => m[i]![l]!) : m.map((r) => r[l]!);

function labelMetrics(test: Scored, l: number, threshold: number, idx?: Int32Array): Record<MetricName, number> {
  const s = column(test.scores, l, idx),
    y = column(test.labels, l, idx);
  const st = binaryStats(s, y, threshold);
  return {
    auroc: auroc(s, y),
    ap: averagePrecision(s, y),
    f1: st.f1,
    precision: st.precision,
    recall: st.recall,
    accuracy: st.accuracy,
  };
}

/** Per-label metrics and their means over the labels with both classes in the (resampled) test set. */
function evaluate(
  test: Scored,
  thresholds: number[],
  idx?: Int32Array,
): { macro: Record<MetricName, number>; perLabel: Record<MetricName, number>[] } {
  const sums = Object.fromEntries(METRICS.map((m) => [m, 0])) as Record<MetricName, number>;
  let counted = 0;
  const perLabel = thresholds.map((thr, l) => {
    const v = labelMetrics(test, l, thr, idx);
    if (Number.isFinite(v.auroc)) {
      counted++;
      for (const m of METRICS) sums[m] += v[m];
    }
    return v;
  });
  for (const m of METRICS) sums[m] = counted ? sums[m] / counted : NaN;
  return { macro: sums, perLabel };
}

/** Thresholds from validation scores; a label without both classes in validation falls back to 0.5. */
export function chooseThresholds(val: Scored, L: number): number[] {
  return Array.from({ length: L }, (_, l) => {
    const y = column(val.labels, l);
    const pos = y.filter(Boolean).length;
    if (pos === 0 || pos === y.length) return 0.5;
    return youdenThreshold(column(val.scores, l), y);
  });
}

export function classificationReport(
  labelNames: string[],
  test: Scored,
  val: Scored,
  o: { resamples?: number; seed?: number } = {},
): ClassificationReport {
  const L = labelNames.length;
  for (const [what, s] of [
    ['test', test],
    ['validation', val],
  ] as const) {
    if (s.scores.length !== s.labels.length)
      throw new Error(`classification: ${what} has ${s.scores.length} score rows but ${s.labels.length} label rows`);
    if (s.scores.some((r) => r.length !== L) || s.labels.some((r) => r.length !== L))
      throw new Error(`classification: every ${what} row must have ${L} labels`);
  }
  if (test.scores.length < 2) throw new Error(`classification: need ≥ 2 test volumes, got ${test.scores.length}`);
  const resamples = o.resamples ?? 1000,
    seed = o.seed ?? 0;
  const thresholds = chooseThresholds(val, L);
  const point = evaluate(test, thresholds);
  const perLabel = labelNames.map((label, l) => ({
    label,
    positives: column(test.labels, l).filter(Boolean).length,
    threshold: thresholds[l]!,
    ...point.perLabel[l]!,
  }));
  // One bootstrap pass: the macro metrics, then each label's AUROC, from the same resampled volumes.
  const ci = bootstrapCis(
    test.scores.length,
    (idx) => {
      const e = evaluate(test, thresholds, idx);
      return [...METRICS.map((m) => e.macro[m]), ...e.perLabel.map((p) => p.auroc)];
    },
    { resamples, seed },
  );
  const pair = (i: number): Ci => [ci.lo[i]!, ci.hi[i]!];
  const macroCi = Object.fromEntries(METRICS.map((m, i) => [m, pair(i)])) as Record<MetricName, Ci>;
  const aurocCi = labelNames.map((_, l) => pair(METRICS.length + l));
  const roc = labelNames.map((label, l) => {
    const y = column(test.labels, l);
    if (!y.some(Boolean) || y.every(Boolean)) return { label, fpr: [], tpr: [] };
    const c = rocCurve(column(test.scores, l), y);
    return { label, fpr: c.fpr, tpr: c.tpr };
  });
  return {
    labelNames,
    thresholdRule: THRESHOLD_RULE,
    labelsCounted: perLabel.filter((p) => Number.isFinite(p.auroc)).length,
    macro: point.macro,
    macroCi,
    perLabel,
    aurocCi,
    roc,
    bootstrap: { resamples, seed, skipped: ci.skipped[0]! },
  };
}
