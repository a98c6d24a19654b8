// Agreement between two labelings of the same items (plain arrays): normalised mutual information with
// scikit-learn's definition (normalized_mutual_info_score, average_method 'arithmetic'), natural logarithms.

/** The entropy (nats) of a labeling's empirical distribution. */
function entropy(counts: Iterable<number>, n: number): number {
  let h = 0;
  for (const c of counts) if (c > 0) h -= (c / n) * Math.log(c / n);
  return h;
}

const countsOf = <T>(labels: readonly T[]): Map<T, number> => {
  const m = new Map<T, number>();
  for (const l of labels) m.set(l, (m.get(l) ?? 0) + 1);
  return m;
};

/** I(a; b) in nats between two labelings of the same items (any label values, compared with ===). */
export function mutualInformation<A, B>(a: readonly A[], b: readonly B[]): number {
  if (a.length !== b.length) throw new Error(`mutualInformation: ${a.length} labels against ${b.length}`);
  const n = a.length;
  if (n === 0) return 0;
  const ca = countsOf(a),
    cb = countsOf(b);
  const joint = new Map<A, Map<B, number>>();
  a.forEach((x, i) => {
    const row = joint.get(x) ?? new Map<B, number>();
    row.set(b[i]!, (row.get(b[i]!) ?? 0) + 1);
    joint.set(x, row);
  });
  let mi = 0;
  for (const [x, row] of joint) {
    for (const [y, c] of row) mi += (c / n) * Math.log((c * n) / (ca.get(x)! * cb.get(y)!));
  }
  return Math.max(0, mi);
}

/**
 * NMI(a, b) = I(a; b) / ((H(a) + H(b)) / 2), as scikit-learn computes it: 1 when both labelings have a single class
 * (or no items), 0 when the mutual information is 0, the denominator floored at the float64 machine epsilon.
 */
export function normalizedMutualInformation<A, B>(a: readonly A[], b: readonly B[]): number {
  if (a.length !== b.length) throw new Error(`normalizedMutualInformation: ${a.length} labels against ${b.length}`);
  const ca = countsOf(a),
    cb = countsOf(b);
  if (ca.size === cb.size && ca.size <= 1) return 1;
  const mi = mutualInformation(a, b);
  if (mi === 0) return 0;
  const mean = (entropy(ca.values(), a.length) + entropy(cb.values(), b.length)) / 2;
  return mi / Math.max(mean, Number.EPSILON);
}
