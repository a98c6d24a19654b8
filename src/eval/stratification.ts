// Iterative stratification for multi-label data (Sechidis, Tsoumakas & Vlahavas, ECML PKDD 2011;
// scikit-multilearn's IterativeStratification): the rarest label's examples are placed first, each into the fold
// that still wants most of that label. Two additions: volumes of one patient (CT-RATE names
// <split>_<patient>_<scan>_<reconstruction>) move together, so no patient sits on both sides of a split; and fold
// sizes are then brought to their rounded targets by the moves that disturb the per-label counts least.
import { Rng } from '../util/rng.js';

/** A group of volumes that must stay together, with its positive volumes per label. */
export interface Unit {
  names: string[];
  counts: number[];
}

const CT_RATE_NAME = /^(.+)_[a-z]+_\d+$/;
/** The patient a volume belongs to (CT-RATE naming); any other name is its own patient. */
export function patientOf(name: string): string {
  return CT_RATE_NAME.exec(name)?.[1] ?? name;
}

export function unitsOf(names: readonly string[], labelsOf: (name: string) => number[], L: number): Unit[] {
  const byPatient = new Map<string, Unit>();
  for (const n of names) {
    const p = patientOf(n);
    let u = byPatient.get(p);
    if (!u) {
      u = { names: [], counts: new Array<number>(L).fill(0) };
      byPatient.set(p, u);
    }
    u.names.push(n);
    labelsOf(n).forEach((v, l) => {
      if (v > 0) u!.counts[l]! += 1;
    });
  }
  return [...byPatient.values()];
}

/** Per-fold state shared by the steps below: volumes and positives per label in each fold. */
export class Partition {
  readonly sizes: number[];
  readonly counts: number[][];
  constructor(
    readonly units: Unit[],
    readonly fold: number[],
    K: number,
    readonly L: number,
  ) {
    this.sizes = new Array<number>(K).fill(0);
    this.counts = Array.from({ length: K }, () => new Array<number>(L).fill(0));
    units.forEach((_, i) => {
      if (fold[i]! >= 0) this.add(i, fold[i]!, 1);
    });
  }
  private add(i: number, f: number, sign: number): void {
    const u = this.units[i]!;
    this.sizes[f]! += sign * u.names.length;
    for (let l = 0; l < this.L; l++) this.counts[f]![l]! += sign * u.counts[l]!;
  }
  move(i: number, to: number): void {
    const from = this.fold[i]!;
    if (from >= 0) this.add(i, from, -1);
    this.fold[i] = to;
    this.add(i, to, 1);
  }
}

/** Picks uniformly among the indices whose key is maximal (keys compared lexicographically). */
function argmaxRandom(n: number, key: (j: number) => number[], rng: Rng): number {
  let best: number[] = [],
    bestKey: number[] | undefined;
  for (let j = 0; j < n; j++) {
    const k = key(j);
    const cmp = bestKey === undefined ? 1 : compareKeys(k, bestKey);
    if (cmp > 0) {
      best = [j];
      bestKey = k;
    } else if (cmp === 0) best.push(j);
  }
  return best.length === 1 ? best[0]! : rng.pick(best);
}
function compareKeys(a: number[], b: number[]): number {
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!;
    if (Math.abs(d) > 1e-9) return d > 0 ? 1 : -1;
  }
  return 0;
}

/**
 * Iterative stratification of units into folds wanting `targets` volumes each (Sechidis et al. 2011,
 * Algorithm 1, with units weighted by their volume count). Returns the fold of each unit.
 */
export function iterativeStratification(units: Unit[], targets: number[], L: number, rng: Rng): number[] {
  const K = targets.length;
  const total = targets.reduce((a, b) => a + b, 0);
  const labelTotals = Array.from({ length: L }, (_, l) => units.reduce((s, u) => s + u.counts[l]!, 0));
  const want = [...targets];
  const wantLabel = targets.map((t) => labelTotals.map((n) => (total > 0 ? (n * t) / total : 0)));
  const fold = new Array<number>(units.length).fill(-1);
  const order = rng.shuffle(units.map((_, i) => i));
  const withLabel = Array.from({ length: L }, (_, l) => order.filter((i) => units[i]!.counts[l]! > 0));
  const remaining = [...labelTotals];
  const assign = (i: number, f: number) => {
    fold[i] = f;
    want[f]! -= units[i]!.names.length;
    for (let l = 0; l < L; l++) {
      wantLabel[f]![l]! -= units[i]!.counts[l]!;
      remaining[l]! -= units[i]!.counts[l]!;
    }
  };
  for (;;) {
    // The label with the fewest positives still to place; ties broken at random.
    let min = Infinity,
      candidates: number[] = [];
    for (let l = 0; l < L; l++) {
      const r = remaining[l]!;
      if (r <= 0) continue;
      if (r < min) {
        min = r;
        candidates = [l];
      } else if (r === min) candidates.push(l);
    }
    if (!candidates.length) break;
    const l = candidates.length === 1 ? candidates[0]! : rng.pick(candidates);
    for (const i of withLabel[l]!) {
      if (fold[i]! >= 0) continue;
      assign(
        i,
        argmaxRandom(K, (j) => [wantLabel[j]![l]!, want[j]!], rng),
      );
    }
  }
  for (const i of order)
    if (fold[i]! < 0)
      assign(
        i,
        argmaxRandom(K, (j) => [want[j]!], rng),
      );
  return fold;
}

/** Σ over labels of |positives − wanted| in folds a and b if unit i moved from a to b, minus the same now. */
function moveCost(p: Partition, i: number, a: number, b: number, wantLabel: number[][]): number {
  let cost = 0;
  const c = p.units[i]!.counts;
  for (let l = 0; l < p.L; l++) {
    if (!c[l]) continue;
    const ca = p.counts[a]![l]!,
      cb = p.counts[b]![l]!,
      wa = wantLabel[a]![l]!,
      wb = wantLabel[b]![l]!;
    cost += Math.abs(ca - c[l]! - wa) - Math.abs(ca - wa) + Math.abs(cb + c[l]! - wb) - Math.abs(cb - wb);
  }
  return cost;
}

/**
 * Moves units from over-full to under-full folds until sizes meet their targets (as far as patient groups
 * allow), each time the unit whose move disturbs the per-label counts least. `frozen` folds neither give
 * nor take.
 */
export function balanceSizes(
  p: Partition,
  targets: number[],
  wantLabel: number[][],
  rng: Rng,
  frozen = new Set<number>(),
): void {
  const K = targets.length;
  for (let guard = 0; guard < p.units.length * 2; guard++) {
    let a = -1,
      b = -1;
    for (let j = 0; j < K; j++) {
      if (frozen.has(j)) continue;
      const d = p.sizes[j]! - targets[j]!;
      if (d > 0 && (a < 0 || d > p.sizes[a]! - targets[a]!)) a = j;
      if (d < 0 && (b < 0 || -d > targets[b]! - p.sizes[b]!)) b = j;
    }
    if (a < 0 || b < 0) return;
    const gap = Math.min(p.sizes[a]! - targets[a]!, targets[b]! - p.sizes[b]!);
    let best = -1,
      bestCost = Infinity,
      ties = 0;
    for (let i = 0; i < p.units.length; i++) {
      if (p.fold[i] !== a || p.units[i]!.names.length > gap) continue;
      const cost = moveCost(p, i, a, b, wantLabel);
      if (cost < bestCost - 1e-9) {
        best = i;
        bestCost = cost;
        ties = 1;
      } else if (Math.abs(cost - bestCost) <= 1e-9 && rng.next() < 1 / ++ties) best = i;
    }
    if (best < 0) return; // only patient groups larger than the gap are left
    p.move(best, b);
  }
}

/**
 * Makes every prefix (folds 0..k for k in `prefixes`) hold at least one positive of every label that has
 * positives anywhere: a positive unit is taken from the nearest later fold (≤ `lastDonor`) into fold k, and
 * a unit of fold k that no covered label depends on goes back in exchange when one fits, so sizes hold.
 * Prefixes are visited smallest first and only fold k and later folds change, so smaller prefixes keep their
 * members.
 */
export function coverLabels(
  p: Partition,
  prefixes: number[],
  lastDonor: number,
  wantLabel: number[][],
  rng: Rng,
): void {
  const L = p.L;
  const present = Array.from({ length: L }, (_, l) => p.counts.some((c) => c[l]! > 0));
  for (const k of prefixes) {
    const prefixCount = (l: number) => p.counts.slice(0, k + 1).reduce((s, c) => s + c[l]!, 0);
    for (let l = 0; l < L; l++) {
      if (!present[l] || prefixCount(l) > 0) continue;
      const uncovered = Array.from({ length: L }, (_, m) => present[m]! && prefixCount(m) === 0);
      let give = -1,
        giveKey: number[] | undefined;
      for (let i = 0; i < p.units.length; i++) {
        const f = p.fold[i]!;
        if (f <= k || f > lastDonor || !p.units[i]!.counts[l]) continue;
        const key = [
          -f,
          p.units[i]!.counts.filter((c, m) => c > 0 && uncovered[m]).length,
          -p.units[i]!.names.length,
          rng.next(),
        ];
        if (!giveKey || compareKeys(key, giveKey) > 0) {
          give = i;
          giveKey = key;
        }
      }
      if (give < 0) continue; // positives only in folds this prefix may not draw from
      const donor = p.fold[give]!;
      p.move(give, k);
      let back = -1,
        backCost = Infinity;
      const have = Array.from({ length: L }, (_, m) => prefixCount(m));
      for (let i = 0; i < p.units.length; i++) {
        if (i === give || p.fold[i] !== k || p.units[i]!.names.length !== p.units[give]!.names.length) continue;
        const needed = p.units[i]!.counts.some((c, m) => c > 0 && have[m]! - c <= 0);
        if (needed) continue;
        const cost = moveCost(p, i, k, donor, wantLabel) + rng.next() * 1e-6;
        if (cost < backCost) {
          back = i;
          backCost = cost;
        }
      }
      if (back >= 0) p.move(back, donor);
    }
  }
}

export function wantedCounts(units: Unit[], targets: number[], L: number): number[][] {
  const total = targets.reduce((a, b) => a + b, 0);
  const labelTotals = Array.from({ length: L }, (_, l) => units.reduce((s, u) => s + u.counts[l]!, 0));
  return targets.map((t) => labelTotals.map((n) => (total > 0 ? (n * t) / total : 0)));
}
