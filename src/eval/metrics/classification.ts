// Classification metrics on plain arrays (no engine needed), defined as scikit-learn defines them.
// Labels are truthy = positive; scores are any real numbers (higher = more positive).
import { retrievalRanks } from './retrieval.js';

/**
 * Positive and negative scores, each sorted ascending. Native typed-array sorts make the rank metrics O(n log n)
 * with a small constant: they run thousands of times per bootstrap.
 */
function sortedByClass(
  scores: ArrayLike<number>,
  labels: ArrayLike<number>,
  fn: string,
): { pos: Float64Array; neg: Float64Array } {
  const n = scores.length;
  if (labels.length !== n) throw new Error(`${fn}: ${n} scores but ${labels.length} labels`);
  let P = 0;
  for (let i = 0; i < n; i++) {
    if (Number.isNaN(scores[i])) throw new Error(`${fn}: scores[${i}] is NaN`);
    if (labels[i]) P++;
  }
  const pos = new Float64Array(P),
    neg = new Float64Array(n - P);
  for (let i = 0, p = 0, q = 0; i < n; i++)
    if (labels[i]) pos[p++] = scores[i]!;
    else neg[q++] = scores[i]!;
  return { pos: pos.sort(), neg: neg.sort() };
}

/** Area under the ROC curve: P(positive scores above negative) + ½ P(tie) = sklearn's roc_auc_score. */
export function auroc(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  const { pos, neg } = sortedByClass(scores, labels, 'auroc');
  if (pos.length === 0 || neg.length === 0) return NaN;
  let below = 0,
    upTo = 0,
    u = 0; // negatives < and ≤ the current positive score
  for (const p of pos) {
    while (below < neg.length && neg[below]! < p) below++;
    if (upTo < below) upTo = below;
    while (upTo < neg.length && neg[upTo]! <= p) upTo++;
    u += below + (upTo - below) / 2;
  }
  return u / (pos.length * neg.length);
}

/** Mean of the per-label AUROCs that are defined (both classes present); also how many counted. */
export function macroAuroc(
  scores: number[][],
  labels: number[][],
): { value: number; labelsCounted: number; perLabel: number[] } {
  const L = scores[0]?.length ?? 0;
  const perLabel = Array.from({ length: L }, (_, l) =>
    auroc(
      scores.map((s) => s[l]!),
      labels.map((y) => y[l]!),
    ),
  );
  const defined = perLabel.filter((v) => Number.isFinite(v));
  return {
    value: defined.length ? defined.reduce((a, b) => a + b, 0) / defined.length : NaN,
    labelsCounted: defined.length,
    perLabel,
  };
}

/**
 * Cumulative true/false positives at each distinct score, highest first (sklearn's _binary_clf_curve): entry i
 * counts every item scoring ≥ thresholds[i].
 */
function clfCurve(
  scores: ArrayLike<number>,
  labels: ArrayLike<number>,
  fn: string,
): { tps: number[]; fps: number[]; thresholds: number[] } {
  const n = scores.length;
  if (labels.length !== n) throw new Error(`${fn}: ${n} scores but ${labels.length} labels`);
  for (let i = 0; i < n; i++) if (Number.isNaN(scores[i])) throw new Error(`${fn}: scores[${i}] is NaN`);
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[b]! - scores[a]!);
  const tps: number[] = [],
    fps: number[] = [],
    thresholds: number[] = [];
  let tp = 0;
  for (let i = 0; i < n; i++) {
    if (labels[order[i]!]) tp++;
    if (i + 1 < n && scores[order[i + 1]!] === scores[order[i]!]) continue;
    tps.push(tp);
    fps.push(i + 1 - tp);
    thresholds.push(scores[order[i]!]!);
  }
  return { tps, fps, thresholds };
}

/**
 * ROC curve as sklearn's roc_curve(drop_intermediate=True): points collinear with their neighbours are dropped,
 * the curve starts at (0, 0) with threshold +Infinity (sklearn ≥ 1.3), and a rate whose class is absent is all NaN.
 */
export function rocCurve(
  scores: ArrayLike<number>,
  labels: ArrayLike<number>,
): { fpr: number[]; tpr: number[]; thresholds: number[] } {
  let { tps, fps, thresholds } = clfCurve(scores, labels, 'rocCurve');
  if (tps.length === 0) throw new Error('rocCurve: no scores');
  if (tps.length > 2) {
    // keep a point where either count's second difference is non-zero (a corner), plus both ends
    const keep = tps.map(
      (_, i) =>
        i === 0 ||
        i === tps.length - 1 ||
        fps[i - 1]! - 2 * fps[i]! + fps[i + 1]! !== 0 ||
        tps[i - 1]! - 2 * tps[i]! + tps[i + 1]! !== 0,
    );
    tps = tps.filter((_, i) => keep[i]);
    fps = fps.filter((_, i) => keep[i]);
    thresholds = thresholds.filter((_, i) => keep[i]);
  }
  const P = tps[tps.length - 1]!,
    N = fps[fps.length - 1]!;
  return {
    fpr: [0, ...fps].map((v) => (N > 0 ? v / N : NaN)),
    tpr: [0, ...tps].map((v) => (P > 0 ? v / P : NaN)),
    thresholds: [Infinity, ...thresholds],
  };
}

/**
 * Average precision = sklearn's average_precision_score: Σ (R_i − R_{i−1}) · P_i over distinct thresholds, highest
 * first (no interpolation). Recall moves only at scores held by positives, so the sum runs over those. NaN when
 * there is no positive label.
 */
export function averagePrecision(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  const { pos, neg } = sortedByClass(scores, labels, 'averagePrecision');
  const P = pos.length;
  if (P === 0) return NaN;
  let ap = 0,
    negAbove = 0; // negatives ≥ the current threshold, walking down from the top
  for (let i = P - 1; i >= 0;) {
    const t = pos[i]!;
    let j = i;
    while (j > 0 && pos[j - 1] === t) j--;
    while (negAbove < neg.length && neg[neg.length - 1 - negAbove]! >= t) negAbove++;
    const tp = P - j;
    ap += ((i - j + 1) / P) * (tp / (tp + negAbove));
    i = j - 1;
  }
  return ap;
}

/**
 * Youden's J threshold: the ROC threshold maximising TPR − FPR (the first, i.e. highest, on ties), as
 * argmax over rocCurve. +Infinity when no cut beats "all negative"; NaN when only one class is present.
 */
export function youdenThreshold(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  const { fpr, tpr, thresholds } = rocCurve(scores, labels);
  let best = -Infinity,
    thr = NaN;
  for (let i = 0; i < thresholds.length; i++) {
    const j = tpr[i]! - fpr[i]!;
    if (j > best) {
      best = j;
      thr = thresholds[i]!;
    }
  }
  return thr;
}

export interface BinaryStats {
  f1: number;
  accuracy: number;
  precision: number;
  recall: number;
  sensitivity: number;
  specificity: number;
  tp: number;
  fp: number;
  tn: number;
  fn: number;
}

/**
 * Confusion counts and rates at a threshold (score ≥ threshold is positive). A rate whose denominator is zero
 * is 0, as sklearn's zero_division=0; sensitivity = recall; specificity = recall of the negative class.
 */
export function binaryStats(scores: ArrayLike<number>, labels: ArrayLike<number>, threshold: number): BinaryStats {
  if (labels.length !== scores.length)
    throw new Error(`binaryStats: ${scores.length} scores but ${labels.length} labels`);
  let tp = 0,
    fp = 0,
    tn = 0,
    fn = 0;
  for (let i = 0; i < scores.length; i++) {
    const p = scores[i]! >= threshold;
    if (p && labels[i]) tp++;
    else if (p) fp++;
    else if (labels[i]) fn++;
    else tn++;
  }
  const ratio = (a: number, b: number) => (b > 0 ? a / b : 0);
  const recall = ratio(tp, tp + fn);
  return {
    f1: ratio(2 * tp, 2 * tp + fp + fn),
    accuracy: ratio(tp + tn, scores.length),
    precision: ratio(tp, tp + fp),
    recall,
    sensitivity: recall,
    specificity: ratio(tn, tn + fp),
    tp,
    fp,
    tn,
    fn,
  };
}

/**
 * Recall@K for retrieval with a similarity matrix sim[q][c] where the correct candidate of query q is c = q;
 * ties count against the query (see retrievalRanks).
 */
export function recallAtK(sim: number[][], ks: number[]): Record<number, number> {
  const ranks = retrievalRanks(sim);
  const out: Record<number, number> = {};
  for (const k of ks) out[k] = ranks.filter((r) => r <= k).length / Math.max(1, sim.length);
  return out;
}
