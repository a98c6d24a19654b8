// Classification and retrieval metrics on plain arrays (no engine needed).

/** Area under the ROC curve (Mann–Whitney U with average ranks for ties = sklearn's roc_auc_score). */
export function auroc(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  const n = scores.length;
  if (labels.length !== n) throw new Error(`auroc: ${n} scores but ${labels.length} labels`);
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a]! - scores[b]!);
  const ranks = new Float64Array(n);
  for (let i = 0; i < n;) {
    let j = i;
    while (j + 1 < n && scores[order[j + 1]!] === scores[order[i]!]) j++;
    const avg = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) ranks[order[k]!] = avg;
    i = j + 1;
  }
  let pos = 0, rankSum = 0;
  for (let i = 0; i < n; i++) if (labels[i]) { pos++; rankSum += ranks[i]!; }
  const neg = n - pos;
  if (pos === 0 || neg === 0) return NaN;
  return (rankSum - (pos * (pos + 1)) / 2) / (pos * neg);
}

/** Mean of the per-label AUROCs that are defined (both classes present); also how many counted. */
export function macroAuroc(scores: number[][], labels: number[][]): { value: number; labelsCounted: number; perLabel: number[] } {
  const L = scores[0]?.length ?? 0;
  const perLabel = Array.from({ length: L }, (_, l) => auroc(scores.map((s) => s[l]!), labels.map((y) => y[l]!)));
  const defined = perLabel.filter((v) => Number.isFinite(v));
  return { value: defined.length ? defined.reduce((a, b) => a + b, 0) / defined.length : NaN, labelsCounted: defined.length, perLabel };
}

/** Youden's J threshold: the score cut maximising TPR − FPR. */
export function youdenThreshold(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  const pairs = Array.from({ length: scores.length }, (_, i) => [scores[i]!, labels[i]!] as const).sort((a, b) => b[0] - a[0]);
  const pos = pairs.filter((p) => p[1]).length, neg = pairs.length - pos;
  let tp = 0, fp = 0, best = -Infinity, thr = Infinity;
  for (let i = 0; i < pairs.length; i++) {
    if (pairs[i]![1]) tp++; else fp++;
    if (i + 1 < pairs.length && pairs[i + 1]![0] === pairs[i]![0]) continue;
    const j = (pos ? tp / pos : 0) - (neg ? fp / neg : 0);
    if (j > best) { best = j; thr = pairs[i]![0]; }
  }
  return thr;
}

/** F1, accuracy, sensitivity, specificity at a threshold (score ≥ threshold is positive). */
export function binaryStats(scores: ArrayLike<number>, labels: ArrayLike<number>, threshold: number): { f1: number; accuracy: number; sensitivity: number; specificity: number } {
  let tp = 0, fp = 0, tn = 0, fn = 0;
  for (let i = 0; i < scores.length; i++) {
    const p = scores[i]! >= threshold;
    if (p && labels[i]) tp++; else if (p) fp++; else if (labels[i]) fn++; else tn++;
  }
  return {
    f1: tp ? (2 * tp) / (2 * tp + fp + fn) : 0, accuracy: (tp + tn) / Math.max(1, scores.length),
    sensitivity: tp / Math.max(1, tp + fn), specificity: tn / Math.max(1, tn + fp),
  };
}

/**
 * Recall@K for retrieval with a similarity matrix sim[q][c] where the correct candidate of query q is c = q.
 */
export function recallAtK(sim: number[][], ks: number[]): Record<number, number> {
  const out: Record<number, number> = {};
  const ranks = sim.map((row, q) => row.filter((v) => v > row[q]!).length); // 0 = top
  for (const k of ks) out[k] = ranks.filter((r) => r < k).length / Math.max(1, sim.length);
  return out;
}
