// Operating points for calling a finding from a score: Youden's J (the evaluation's rule) or the lowest threshold
// whose specificity on the validation volumes reaches a target. Either threshold is chosen on validation volumes
// and described by what it did on the test volumes (sensitivity, specificity, PPV at the test volumes' prevalence),
// so a user reads a call with its error rates instead of as a diagnosis.
import { binaryStats, youdenThreshold } from './classification.js';

export type OperatingRule = { kind: 'youden' } | { kind: 'specificity'; target: number };

export interface LabelOperatingPoint {
  /** score ≥ threshold is a positive call; Infinity: never called */
  threshold: number;
  /** NaN where the test volumes have no positive (sensitivity), no negative (specificity) or no call (PPV) */
  sensitivity: number;
  specificity: number;
  /** positive predictive value on the test volumes (their prevalence) */
  ppv: number;
}
export interface OperatingPoints {
  rule: string;
  perLabel: (LabelOperatingPoint | null)[];
  /** mean positive calls per test volume, and mean reference labels per test volume */
  callsPerVolume: number;
  labelsPerVolume: number;
}

export const describeRule = (r: OperatingRule): string =>
  r.kind === 'youden'
    ? "Youden's J on validation volumes"
    : `specificity ≥ ${r.target} on validation volumes (the lowest such threshold)`;

/**
 * The lowest threshold at which at least `target` of the negatives score below it (score ≥ threshold is positive):
 * the most sensitive cut with validation specificity ≥ target. Infinity when only "never call" reaches it.
 */
export function specificityThreshold(scores: ArrayLike<number>, labels: ArrayLike<number>, target: number): number {
  if (!(target > 0 && target <= 1)) throw new Error(`specificity target must be in (0, 1], got ${target}`);
  const neg = Array.from(scores)
    .filter((_, i) => !labels[i])
    .sort((a, b) => a - b);
  if (neg.length === 0) throw new Error('specificityThreshold: no negative volumes');
  // k negatives must lie strictly below the threshold; the cut just above the k-th lowest negative does it
  const k = Math.ceil(target * neg.length - 1e-9);
  if (k === 0) return Math.min(...Array.from(scores));
  const below = neg[k - 1]!;
  let t = Infinity;
  for (const s of Array.from(scores)) if (s > below && s < t) t = s;
  return t;
}

const column = (m: number[][], l: number): number[] => m.map((r) => r[l]!);

/** Per label, the rule's threshold chosen on validation volumes; null for a label missing one class there. */
export function ruleThresholds(
  val: { scores: number[][]; labels: number[][] },
  rule: OperatingRule,
): (number | null)[] {
  const L = val.scores[0]?.length ?? 0;
  return Array.from({ length: L }, (_, l) => {
    const vs = column(val.scores, l),
      vy = column(val.labels, l);
    const pos = vy.filter(Boolean).length;
    if (pos === 0 || pos === vy.length) return null;
    return rule.kind === 'youden' ? youdenThreshold(vs, vy) : specificityThreshold(vs, vy, rule.target);
  });
}

/** What thresholds do on the test volumes: per label rates, and calls against reference labels per volume. */
export function describeThresholds(
  test: { scores: number[][]; labels: number[][] },
  thresholds: (number | null)[],
  rule: string,
): OperatingPoints {
  const perLabel = thresholds.map((threshold, l): LabelOperatingPoint | null => {
    if (threshold === null) return null;
    const st = binaryStats(column(test.scores, l), column(test.labels, l), threshold);
    const rate = (a: number, b: number) => (b > 0 ? a / b : NaN);
    return {
      threshold,
      sensitivity: rate(st.tp, st.tp + st.fn),
      specificity: rate(st.tn, st.tn + st.fp),
      ppv: rate(st.tp, st.tp + st.fp),
    };
  });
  let calls = 0,
    refs = 0;
  test.scores.forEach((row, i) =>
    row.forEach((s, l) => {
      const t = thresholds[l];
      if (t !== null && t !== undefined && s >= t) calls++;
      if (test.labels[i]![l]) refs++;
    }),
  );
  const n = Math.max(1, test.scores.length);
  return { rule, perLabel, callsPerVolume: calls / n, labelsPerVolume: refs / n };
}
