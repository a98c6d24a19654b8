// A voxel grid in patient millimetres with painting primitives, used by the phantom generator.
// Array order is (slice k, row j, column i), column fastest — NIfTI's x-fastest order with
// x = i (towards the patient's left), y = j (towards posterior), z = k (towards superior).
import { Rng } from '../../util/rng.js';

export type Vec3 = [number, number, number];

export class Grid {
  readonly hu: Float32Array;
  /** organ / finding label per voxel (see ORGAN_LABELS) */
  readonly label: Uint8Array;
  readonly n: number;

  constructor(
    readonly shape: [d: number, h: number, w: number],
    readonly spacing: Vec3 /* (x, y, z) mm */,
  ) {
    this.n = shape[0] * shape[1] * shape[2];
    this.hu = new Float32Array(this.n).fill(-1000);
    this.label = new Uint8Array(this.n);
  }

  /** Patient mm of voxel centre (i, j, k); the volume is centred on the origin. */
  mm(i: number, j: number, k: number): Vec3 {
    const [d, h, w] = this.shape;
    return [
      (i - (w - 1) / 2) * this.spacing[0],
      (j - (h - 1) / 2) * this.spacing[1],
      (k - (d - 1) / 2) * this.spacing[2],
    ];
  }

  /** Voxel index range [lo, hi] covering mm interval [a, b] along axis 0=x, 1=y, 2=z. */
  private range(axis: 0 | 1 | 2, a: number, b: number): [number, number] {
    const size = axis === 0 ? this.shape[2] : axis === 1 ? this.shape[1] : this.shape[0];
    const s = this.spacing[axis];
    const lo = Math.max(0, Math.floor(a / s + (size - 1) / 2));
    const hi = Math.min(size - 1, Math.ceil(b / s + (size - 1) / 2));
    return [lo, hi];
  }

  /**
   * Calls fn for every voxel whose centre lies in the axis-aligned mm box, with the voxel's flat index
   * and mm position. The shared loop behind every primitive.
   */
  forBox(min: Vec3, max: Vec3, fn: (idx: number, x: number, y: number, z: number) => void): void {
    const [i0, i1] = this.range(0, min[0], max[0]);
    const [j0, j1] = this.range(1, min[1], max[1]);
    const [k0, k1] = this.range(2, min[2], max[2]);
    const [d, h, w] = this.shape;
    const [sx, sy, sz] = this.spacing;
    for (let k = k0; k <= k1; k++) {
      const z = (k - (d - 1) / 2) * sz;
      for (let j = j0; j <= j1; j++) {
        const y = (j - (h - 1) / 2) * sy;
        const row = (k * h + j) * w;
        for (let i = i0; i <= i1; i++) fn(row + i, (i - (w - 1) / 2) * sx, y, z);
      }
    }
  }
}

export interface PaintOptions {
  /** paint only where the current label is one of these */
  within?: ReadonlySet<number>;
  /** label to write (default: keep) */
  setLabel?: number;
  /** blend factor: hu = (1-a)·old + a·value (default 1) */
  alpha?: number;
}

function apply(g: Grid, idx: number, value: number, o: PaintOptions): void {
  if (o.within && !o.within.has(g.label[idx]!)) return;
  const a = o.alpha ?? 1;
  g.hu[idx] = a === 1 ? value : (1 - a) * g.hu[idx]! + a * value;
  if (o.setLabel !== undefined) g.label[idx] = o.setLabel;
}

/** Axis-aligned ellipsoid; `value` may vary with the normalised radius r ∈ [0, 1]. */
export function ellipsoid(
  g: Grid,
  c: Vec3,
  r: Vec3,
  value: number | ((r: number) => number),
  o: PaintOptions = {},
): void {
  g.forBox([c[0] - r[0], c[1] - r[1], c[2] - r[2]], [c[0] + r[0], c[1] + r[1], c[2] + r[2]], (idx, x, y, z) => {
    const q = ((x - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((z - c[2]) / r[2]) ** 2;
    if (q <= 1) apply(g, idx, typeof value === 'number' ? value : value(Math.sqrt(q)), o);
  });
}

/** Capsule (cylinder with round caps) from a to b, radius rad; value may vary with the distance ratio. */
export function capsule(
  g: Grid,
  a: Vec3,
  b: Vec3,
  rad: number,
  value: number | ((r: number) => number),
  o: PaintOptions = {},
): void {
  const ab: Vec3 = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
  const len2 = ab[0] ** 2 + ab[1] ** 2 + ab[2] ** 2 || 1e-9;
  const min: Vec3 = [Math.min(a[0], b[0]) - rad, Math.min(a[1], b[1]) - rad, Math.min(a[2], b[2]) - rad];
  const max: Vec3 = [Math.max(a[0], b[0]) + rad, Math.max(a[1], b[1]) + rad, Math.max(a[2], b[2]) + rad];
  g.forBox(min, max, (idx, x, y, z) => {
    const t = Math.max(0, Math.min(1, ((x - a[0]) * ab[0] + (y - a[1]) * ab[1] + (z - a[2]) * ab[2]) / len2));
    const dx = x - a[0] - t * ab[0],
      dy = y - a[1] - t * ab[1],
      dz = z - a[2] - t * ab[2];
    const d2 = dx * dx + dy * dy + dz * dz;
    if (d2 <= rad * rad) apply(g, idx, typeof value === 'number' ? value : value(Math.sqrt(d2) / rad), o);
  });
}

/** Elliptic cylinder along z (cross-section radii rx, ry) between z0 and z1. */
export function ellipticCylinder(
  g: Grid,
  cx: number,
  cy: number,
  rx: number,
  ry: number,
  z0: number,
  z1: number,
  value: number,
  o: PaintOptions = {},
): void {
  g.forBox([cx - rx, cy - ry, z0], [cx + rx, cy + ry, z1], (idx, x, y) => {
    if (((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1) apply(g, idx, value, o);
  });
}

/** Separable 3-tap smoothing along each axis: partial-volume edges like a real reconstruction kernel. */
export function smooth(g: Grid, passes = 1): void {
  const [d, h, w] = g.shape;
  const tmp = new Float32Array(g.n);
  const strides = [1, w, w * h];
  const sizes = [w, h, d];
  for (let p = 0; p < passes; p++) {
    for (let axis = 0; axis < 3; axis++) {
      const s = strides[axis]!,
        size = sizes[axis]!;
      const src = g.hu;
      for (let idx = 0; idx < g.n; idx++) {
        const pos = Math.floor(idx / s) % size;
        const left = pos > 0 ? src[idx - s]! : src[idx]!;
        const right = pos < size - 1 ? src[idx + s]! : src[idx]!;
        tmp[idx] = 0.25 * left + 0.5 * src[idx]! + 0.25 * right;
      }
      g.hu.set(tmp);
    }
  }
}

/** Additive Gaussian noise (quantum noise), stronger inside the body than in air like real CT. */
export function addNoise(g: Grid, rng: Rng, sigma: number): void {
  for (let idx = 0; idx < g.n; idx++) {
    const inBody = g.label[idx] !== 0;
    g.hu[idx]! += rng.normal(0, inBody ? sigma : sigma * 0.4);
  }
}
