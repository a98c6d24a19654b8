// What the scan checks (data/scan-checks.ts) measure on a volume: where air lies on its value scale, how much of it
// is body, how far it extends, how large the body's cross-section is and how much lung-density air the body holds.
// Measured on a ~3 mm sample of the volume in LPS order (slices from feet to head), so that a 512×512×300 CT costs a
// few million voxels; the heuristics and their thresholds are documented where they are used.
import * as torch from '../torch/index.js';
import { orientPlan, spacingOf } from './transforms.js';
import { type Volume } from './volume.js';

/** Sample pitch (mm) and the most voxels a sample holds. */
const SAMPLE_MM = 3;
const MAX_SAMPLE = 1 << 22;
/** Body: denser than −500 HU (soft tissue, bone; not air or lung). */
export const BODY_HU = -500;

export interface Sample {
  /** values in (D, H, W) = (S, P, L) order */
  values: Float32Array;
  shape: [number, number, number];
  /** mm between sampled voxels along (x, y, z) */
  pitch: [number, number, number];
  /** the scan's extent (x, y, z) mm: voxels × spacing along the patient's left, posterior, superior axes */
  extentMm: [number, number, number];
}

/** A strided sample of the volume, reoriented to LPS (any axis order when the affine is too oblique to tell). */
export function sampleVolume(vol: Volume): Sample {
  const shape = vol.data.shape as [number, number, number];
  let permute: [number, number, number] = [0, 1, 2],
    affine = vol.affine;
  try {
    ({ permute, affine } = orientPlan(vol.affine, shape));
  } catch {
    // two voxel axes run along one patient axis: measure in array order
  }
  const [sx, sy, sz] = spacingOf(affine);
  const oriented = permute.map((p) => shape[p]!) as [number, number, number];
  const mm = [sz, sy, sx];
  let steps = oriented.map((n, d) => Math.min(Math.max(1, Math.round(SAMPLE_MM / mm[d]!)), Math.max(1, n >> 4)));
  const count = (s: number[]) => oriented.reduce((p, n, d) => p * Math.ceil(n / s[d]!), 1);
  while (count(steps) > MAX_SAMPLE) steps = steps.map((s) => s + 1);
  const values = torch.tidy(
    () =>
      vol.data
        .permute(...permute)
        .slice(0, 0, oriented[0], steps[0])
        .slice(1, 0, oriented[1], steps[1])
        .slice(2, 0, oriented[2], steps[2])
        .to('float32')
        .toTypedArray() as Float32Array,
  );
  return {
    values,
    shape: oriented.map((n, d) => Math.ceil(n / steps[d]!)) as [number, number, number],
    pitch: [sx * steps[2]!, sy * steps[1]!, sz * steps[0]!],
    extentMm: [oriented[2] * sx, oriented[1] * sy, oriented[0] * sz],
  };
}

export interface Levels {
  min: number;
  max: number;
  /** the lowest value when it fills ≥ 1 % of the volume below −1100 (outside the reconstruction circle), or null */
  padding: number | null;
  /** where air lies: the 1st percentile of the values other than padding (≈ −1000 in HU) */
  air: number;
}

/** The value scale: extremes, padding and air (a 1-unit histogram, values clamped to ±65536). */
export function levels(values: Float32Array): Levels {
  let min = Infinity,
    max = -Infinity;
  for (const v of values) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  let atMin = 0;
  for (const v of values) if (v === min) atMin++;
  const padding = min < -1100 && atMin >= 0.01 * values.length ? min : null;
  const R = 65536;
  const hist = new Uint32Array(2 * R + 1);
  let n = 0;
  for (const v of values) {
    if (v === padding) continue;
    hist[Math.max(0, Math.min(2 * R, Math.round(v) + R))]! += 1;
    n++;
  }
  let air = padding ?? min;
  for (let b = 0, seen = 0; b < hist.length && n > 0; b++) {
    seen += hist[b]!;
    if (seen >= 0.01 * n) {
      air = b - R;
      break;
    }
  }
  return { min, max, padding, air };
}

/** Fraction of the values strictly inside (lo, hi): what a model with that HU window sees other than its edges. */
export function fractionInside(values: Float32Array, lo: number, hi: number, shift = 0): number {
  let k = 0;
  for (const v of values) if (v + shift > lo && v + shift < hi) k++;
  return values.length ? k / values.length : 0;
}

export interface Body {
  /** fraction of voxels denser than −500 HU */
  fraction: number;
  /** the largest axial cross-section of the body (with what it encloses), cm² */
  maxCrossSectionCm2: number;
  /** lung-density air (≤ −500 HU) enclosed by the body, as a fraction of the enclosed area over all slices */
  enclosedAir: number;
}

/**
 * Per axial slice: the body is what is denser than −500 HU together with everything it encloses (the low-density
 * pixels not connected to the slice's border: lungs, airways, sinuses, bowel gas). `shift` is added to every value
 * first (a correction of the value scale).
 */
export function bodyMeasures(s: Sample, shift = 0): Body {
  const [D, H, W] = s.shape;
  const plane = H * W;
  const outside = new Uint8Array(plane);
  const stack = new Int32Array(plane);
  let body = 0,
    enclosed = 0,
    inside = 0,
    maxInside = 0;
  for (let d = 0; d < D; d++) {
    const off = d * plane;
    const low = (p: number) => s.values[off + p]! + shift <= BODY_HU;
    outside.fill(0);
    let top = 0;
    const push = (p: number) => {
      if (!outside[p] && low(p)) {
        outside[p] = 1;
        stack[top++] = p;
      }
    };
    for (let x = 0; x < W; x++) (push(x), push((H - 1) * W + x));
    for (let y = 0; y < H; y++) (push(y * W), push(y * W + W - 1));
    while (top > 0) {
      const p = stack[--top]!;
      const x = p % W;
      if (x > 0) push(p - 1);
      if (x < W - 1) push(p + 1);
      if (p >= W) push(p - W);
      if (p < plane - W) push(p + W);
    }
    let sliceInside = 0;
    for (let p = 0; p < plane; p++) {
      if (outside[p]) continue;
      sliceInside++;
      if (low(p)) enclosed++;
      else body++;
    }
    inside += sliceInside;
    maxInside = Math.max(maxInside, sliceInside);
  }
  return {
    fraction: s.values.length ? body / s.values.length : 0,
    maxCrossSectionCm2: (maxInside * s.pitch[0] * s.pitch[1]) / 100,
    enclosedAir: inside ? enclosed / inside : 0,
  };
}
