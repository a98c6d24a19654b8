// Version 2 of the synthetic benchmark adds three findings that the global view cannot see (docs/ARCHITECTURE.md §5):
// micronodules, fine reticulation and a tree-in-bud pattern, each a cluster of small elements in one lobe. Every
// element is density-matched: a dense core and a lucent rim around it whose HU excesses sum to exactly zero over the
// lung voxels it touches, so averaging into the global view's 3.75 × 3.75 × 5 mm voxels leaves the lung's mean
// density where it was (no mean-density proxy, unlike emphysema's holes), while the cache's 1.875 mm voxels still
// resolve a core beside its rim. Each is drawn independently of every other finding and latent factor, so that no
// finding the global view can see predicts it.
import { Rng } from '../../util/rng.js';
import { CT_RATE_LABELS } from '../../domain/ct-rate.js';
import { LOCAL_FINDING_LABELS, type LocalFindingLabel } from '../../domain/local-findings.js';
import { type Grid, type Vec3 } from './raster.js';
import { type Body, LUNGS } from './anatomy.js';
import { type Lobe, lobePoint } from './findings.js';

/**
 * 1: the generator the existing results were measured on; 2: version 1 plus the local findings below; 3 and 4: version
 * 2 with the local findings' clusters larger and denser (CLUSTERS).
 */
export type SynthVersion = 1 | 2 | 3 | 4;
export const SYNTH_VERSIONS: readonly SynthVersion[] = [1, 2, 3, 4];

/** The label columns a version writes: CT-RATE's 18 first, unchanged, then version 2's local findings. */
export const synthLabels = (version: SynthVersion): string[] =>
  version === 1 ? [...CT_RATE_LABELS] : [...CT_RATE_LABELS, ...LOCAL_FINDING_LABELS];

export interface LocalFinding {
  label: LocalFindingLabel;
  side: 'right' | 'left';
  lobe: Lobe;
  /** elements drawn (cores that land outside the lung are skipped) */
  count: number;
  /** set when drawn: the cluster's centre and radius (patient mm) and the centres of the elements drawn */
  centreMm?: Vec3;
  radiusMm?: number;
  elementsMm?: Vec3[];
}

/** Prevalence of each local finding, independent of everything else. */
export const LOCAL_PREVALENCE = 0.3;

/**
 * Per version: the radius of the ball a finding's elements fill, and how many elements it draws. Version 2's clusters
 * (20–28 mm) proved unreadable by a supervised network at every scale, the lobe crops included, while emphysema's
 * thousands of holes over both lungs were read from the crops at 0.96 (RESULTS.md, 2026-12-08); version 3 fills a
 * segment-sized ball (30–40 mm) with 2.2–2.4 times as many elements per volume of lung, 7 times as many in all; its
 * crop-scale ceilings rose to 0.59–0.62, short of the plan's 0.60 on two of the three (RESULTS.md, 2026-12-08).
 * Version 4 keeps version 3's density over a lobe-sized ball (40–55 mm), 2.5 times as many elements.
 */
const CLUSTERS: Record<2 | 3 | 4, { radiusMm: [number, number]; counts: Record<LocalFindingLabel, [number, number]> }> =
  {
    2: {
      radiusMm: [20, 28],
      counts: { Micronodules: [50, 90], 'Fine reticulation': [120, 200], 'Tree-in-bud': [20, 35] },
    },
    3: {
      radiusMm: [30, 40],
      counts: { Micronodules: [380, 620], 'Fine reticulation': [900, 1340], 'Tree-in-bud': [150, 250] },
    },
    4: {
      radiusMm: [40, 55],
      counts: { Micronodules: [950, 1550], 'Fine reticulation': [2250, 3350], 'Tree-in-bud': [375, 625] },
    },
  };
const clusterOf = (version: SynthVersion) => CLUSTERS[version === 1 ? 2 : version];

/** Which local findings a patient has, and where: always three draws, then three more per finding present. */
export function sampleLocalFindings(rng: Rng, version: SynthVersion = 2): LocalFinding[] {
  const out: LocalFinding[] = [];
  for (const label of LOCAL_FINDING_LABELS) {
    if (!rng.bool(LOCAL_PREVALENCE)) continue;
    const side = rng.pick(['right', 'left'] as const);
    const lobe =
      side === 'right' ? rng.pick(['upper', 'middle', 'lower'] as const) : rng.pick(['upper', 'lower'] as const);
    out.push({ label, side, lobe, count: rng.int(...clusterOf(version).counts[label]) });
  }
  return out;
}

/** A capsule from a to b of radius r (a sphere when a = b). */
interface Segment {
  a: Vec3;
  b: Vec3;
  r: number;
}

function distanceOutside(x: number, y: number, z: number, s: Segment): number {
  const ab = [s.b[0] - s.a[0], s.b[1] - s.a[1], s.b[2] - s.a[2]];
  const len2 = ab[0]! ** 2 + ab[1]! ** 2 + ab[2]! ** 2;
  const t =
    len2 > 0
      ? Math.max(0, Math.min(1, ((x - s.a[0]) * ab[0]! + (y - s.a[1]) * ab[1]! + (z - s.a[2]) * ab[2]!) / len2))
      : 0;
  return Math.hypot(x - s.a[0] - t * ab[0]!, y - s.a[1] - t * ab[1]!, z - s.a[2] - t * ab[2]!) - s.r;
}

/** The deepest a rim goes below the surrounding lung, HU: keeps rims above −1000 HU in normal lung. */
const RIM_DEPTH = 150;

/**
 * Adds `excess` HU to the lung voxels inside the segments (the core) and subtracts the same total from the lung voxels
 * of a rim around them, widened until its depth is at most RIM_DEPTH: the element's HU sum over the grid is unchanged.
 * Returns false when no core voxel lies in the lung (nothing drawn).
 */
function balancedElement(g: Grid, parts: Segment[], excess: number): boolean {
  let rim = 0.6;
  for (;;) {
    const pad = Math.max(...parts.map((p) => p.r)) + rim;
    const lo: Vec3 = [0, 1, 2].map((i) => Math.min(...parts.map((p) => Math.min(p.a[i]!, p.b[i]!))) - pad) as Vec3;
    const hi: Vec3 = [0, 1, 2].map((i) => Math.max(...parts.map((p) => Math.max(p.a[i]!, p.b[i]!))) + pad) as Vec3;
    const core: number[] = [],
      shell: number[] = [];
    g.forBox(lo, hi, (idx, x, y, z) => {
      if (!LUNGS.has(g.label[idx]!)) return;
      const d = Math.min(...parts.map((p) => distanceOutside(x, y, z, p)));
      if (d <= 0) core.push(idx);
      else if (d <= rim) shell.push(idx);
    });
    if (core.length === 0) return false;
    const depth = (excess * core.length) / Math.max(1, shell.length);
    // (a core in a pocket of lung too small for a shallow rim gets a deeper one; none at all: not drawn)
    if ((shell.length === 0 || depth > RIM_DEPTH) && rim < 4) {
      rim += 0.4;
      continue;
    }
    if (shell.length === 0) return false;
    for (const i of core) g.hu[i]! += excess;
    for (const i of shell) g.hu[i]! -= depth;
    return true;
  }
}

const unit = (rng: Rng): Vec3 => {
  const z = rng.uniform(-1, 1),
    t = rng.uniform(0, 2 * Math.PI),
    s = Math.sqrt(1 - z * z);
  return [s * Math.cos(t), s * Math.sin(t), z];
};
const along = (p: Vec3, d: Vec3, len: number): Vec3 => [p[0] + d[0] * len, p[1] + d[1] * len, p[2] + d[2] * len];

/** One element of a finding, centred at p. */
function elementParts(label: LocalFindingLabel, p: Vec3, rng: Rng): { parts: Segment[]; excess: number } {
  switch (label) {
    case 'Micronodules': // 2.6–3.6 mm nodules, ≈ −100 HU at their core before blurring
      return { parts: [{ a: p, b: p, r: rng.uniform(1.3, 1.8) }], excess: 750 };
    case 'Fine reticulation': {
      // thin interstitial lines of 4–7 mm, 1.8 mm across
      const d = unit(rng),
        half = rng.uniform(2, 3.5);
      return { parts: [{ a: along(p, d, -half), b: along(p, d, half), r: 0.9 }], excess: 600 };
    }
    case 'Tree-in-bud': {
      // a filled centrilobular bronchiole: a 3–5 mm stalk that forks into two 2.5–4 mm twigs ending in buds
      const d = unit(rng);
      const fork = along(p, d, rng.uniform(3, 5));
      const parts: Segment[] = [{ a: p, b: fork, r: 1.0 }];
      for (let k = 0; k < 2; k++) {
        const e = unit(rng);
        const twig: Vec3 = [d[0] + 0.8 * e[0], d[1] + 0.8 * e[1], d[2] + 0.8 * e[2]];
        const n = Math.hypot(...twig) || 1;
        const tip = along(fork, [twig[0] / n, twig[1] / n, twig[2] / n], rng.uniform(2.5, 4));
        parts.push({ a: fork, b: tip, r: 0.9 }, { a: tip, b: tip, r: 1.4 });
      }
      return { parts, excess: 650 };
    }
  }
}

/** Draws a local finding: `count` elements uniformly in a ball (CLUSTERS) around a point of its lobe. */
export function renderLocalFinding(g: Grid, body: Body, f: LocalFinding, rng: Rng, version: SynthVersion = 2): void {
  const centre = lobePoint(body, f.side === 'right' ? 0 : 1, f.lobe, rng);
  const radius = rng.uniform(...clusterOf(version).radiusMm);
  const drawn: Vec3[] = [];
  for (let k = 0; k < f.count; k++) {
    const u = unit(rng),
      r = radius * Math.cbrt(rng.next());
    const p = along(centre, u, r);
    const { parts, excess } = elementParts(f.label, p, rng);
    if (balancedElement(g, parts, excess)) drawn.push(p);
  }
  f.centreMm = centre;
  f.radiusMm = radius;
  f.elementsMm = drawn;
}
