// One series → a checked, sorted slice list and its geometry (affine, spacing, gaps), before any decoding.

import { basename } from 'node:path';
import { DicomError } from './errors.js';
import type { DicomHeader } from './parse.js';
import { pixelFormat, type PixelFormat } from './pixels.js';

export interface SliceInfo {
  path: string;
  header: DicomHeader;
}

/** An irregular step between sorted slices `index` and `index + 1`. */
export interface SliceGap {
  index: number;
  /** Distance along the slice normal, mm. */
  distance: number;
  /** The median step of the series, mm. */
  expected: number;
}

export interface VolumePlan {
  /** Sorted by position along the slice normal (row × column direction), ascending. */
  slices: SliceInfo[];
  format: PixelFormat;
  /** Voxel (column, row, slice) → RAS mm. */
  affine: number[][];
  spacing: [number, number, number];
  warnings: string[];
  gaps: SliceGap[];
}

export interface PlanOptions {
  /** Throw instead of warning when slices are unevenly spaced (missing slices, mixed spacing). */
  rejectGaps?: boolean;
}

type Vec3 = [number, number, number];
const ORIENTATION_TOL = 1e-3; // direction cosines, ~0.06°
const SPACING_TOL = 1e-3; // mm
const DUPLICATE_TOL = 1e-3; // mm along the normal
const SHEAR_WARN_DEG = 0.5;
const MAX_VOXELS = 2 ** 31; // as NIfTI writing; also bounds the allocation a hostile header could ask for

const dot = (a: number[], b: number[]): number => a[0]! * b[0]! + a[1]! * b[1]! + a[2]! * b[2]!;
const cross = (a: number[], b: number[]): Vec3 => [
  a[1]! * b[2]! - a[2]! * b[1]!,
  a[2]! * b[0]! - a[0]! * b[2]!,
  a[0]! * b[1]! - a[1]! * b[0]!,
];
const norm = (a: number[]): number => Math.sqrt(dot(a, a));
const close = (a: number[], b: number[], tol: number): boolean =>
  a.length === b.length && a.every((v, i) => Math.abs(v - b[i]!) <= tol);
const fmt = (v: number[]): string => `[${v.map((x) => +x.toFixed(6)).join(', ')}]`;

export function seriesLabel(uid: string, h: DicomHeader): string {
  return `series ${uid || '(no SeriesInstanceUID)'}${h.description ? ` "${h.description}"` : ''}`;
}

/** Checks that the slices form one volume, sorts them and derives the geometry. `where` names the input. */
export function planVolume(where: string, uid: string, slices: SliceInfo[], opts: PlanOptions = {}): VolumePlan {
  const first = slices[0]!;
  const label = seriesLabel(uid, first.header);
  const format = checkFormats(slices);
  const voxels = format.rows * format.columns * slices.length;
  if (voxels > MAX_VOXELS)
    throw new DicomError(
      where,
      `${label}: ${format.columns}x${format.rows}x${slices.length} voxels is more than the 2^31 a volume may hold`,
    );
  const { row, col } = checkOrientation(slices);
  const ps = checkPixelSpacing(slices);
  const warnings: string[] = [];
  if (!first.header.pixelSpacing) warnings.push(`${label}: no PixelSpacing; assuming 1 mm`);
  const normal = cross(row, col);
  const sorted = slices
    .map((s) => {
      if (!s.header.position)
        throw new DicomError(s.path, 'missing ImagePositionPatient (0020,0032), needed to place the slice');
      return { s, d: dot(s.header.position, normal) };
    })
    .sort((a, b) => a.d - b.d);
  const steps = sorted.slice(1).map((x, k) => x.d - sorted[k]!.d);
  steps.forEach((step, k) => {
    if (step < DUPLICATE_TOL) {
      throw new DicomError(
        sorted[k + 1]!.s.path,
        `${label}: slice at ${sorted[k]!.d.toFixed(3)} mm along the normal has the same position as ` +
          `${sorted[k]!.s.path} (duplicate slice or two acquisitions in one series)`,
      );
    }
  });
  const gaps = findGaps(steps);
  for (const g of gaps) {
    const missing = Math.round(g.distance / g.expected) - 1;
    const msg =
      `${label}: uneven slice spacing, ${+g.distance.toFixed(4)} mm between sorted slices ` +
      `${g.index} (${basename(sorted[g.index]!.s.path)}) and ` +
      `${g.index + 1} (${basename(sorted[g.index + 1]!.s.path)}), ` +
      `expected ${+g.expected.toFixed(4)} mm` +
      `${missing > 0 ? ` (about ${missing} missing slice${missing > 1 ? 's' : ''})` : ''}`;
    if (opts.rejectGaps) throw new DicomError(where, `${msg}; uneven spacing is rejected (allow it to convert anyway)`);
    warnings.push(msg);
  }
  const p0 = sorted[0]!.s.header.position!;
  let step: Vec3;
  if (sorted.length === 1) {
    const dz = first.header.sliceThickness && first.header.sliceThickness > 0 ? first.header.sliceThickness : 1;
    warnings.push(
      `${label}: a single slice; through-plane spacing ${dz} mm taken from ` +
        `${first.header.sliceThickness ? 'SliceThickness' : 'a default'}`,
    );
    step = normal.map((v) => v * dz) as Vec3;
  } else {
    // The mean step between the end slices keeps the volume's true extent (and any gantry-tilt shear).
    const pn = sorted[sorted.length - 1]!.s.header.position!;
    step = [0, 1, 2].map((i) => (pn[i]! - p0[i]!) / (sorted.length - 1)) as Vec3;
    const shear = (Math.asin(Math.min(1, norm(cross(step, normal)) / norm(step))) * 180) / Math.PI;
    if (shear > SHEAR_WARN_DEG)
      warnings.push(
        `${label}: slices are sheared ${shear.toFixed(2)}° from the slice normal (gantry tilt?); ` +
          'the affine keeps the shear',
      );
  }
  // LPS columns, then RAS by negating x and y (DICOM patient axes point left/posterior, NIfTI's right/anterior).
  const columns = [row.map((v) => v * ps[1]), col.map((v) => v * ps[0]), step, p0];
  const affine = [0, 1, 2].map((i) => columns.map((c) => (i < 2 ? -c[i]! : c[i]!) + 0)); // + 0 turns -0 into 0
  affine.push([0, 0, 0, 1]);
  return { slices: sorted.map((x) => x.s), format, affine, spacing: [ps[1], ps[0], norm(step)], warnings, gaps };
}

/** Steps that differ from the median by more than 1 % (at least 0.02 mm, above positions rounded to 0.01 mm). */
function findGaps(steps: number[]): SliceGap[] {
  if (steps.length < 2) return [];
  const s = [...steps].sort((a, b) => a - b);
  const expected = s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  const tol = Math.max(0.02, 0.01 * expected);
  return steps.flatMap((distance, index) =>
    Math.abs(distance - expected) > tol ? [{ index, distance, expected }] : [],
  );
}

function checkFormats(slices: SliceInfo[]): PixelFormat {
  let ref: { path: string; f: PixelFormat } | undefined;
  for (const s of slices) {
    const f = pixelFormat(s.header);
    if (typeof f === 'string') throw new DicomError(s.path, f);
    if (!ref) ref = { path: s.path, f };
    else if (f.rows !== ref.f.rows || f.columns !== ref.f.columns) {
      throw new DicomError(
        s.path,
        `${f.columns}x${f.rows} pixels (columns x rows) differ from ${ref.f.columns}x${ref.f.rows} of ${ref.path} ` +
          'in the same series',
      );
    } else if (
      f.bitsAllocated !== ref.f.bitsAllocated ||
      f.bitsStored !== ref.f.bitsStored ||
      f.signed !== ref.f.signed
    ) {
      throw new DicomError(
        s.path,
        `pixel format ${f.bitsStored}/${f.bitsAllocated} bits ${f.signed ? 'signed' : 'unsigned'} ` +
          `differs from that of ${ref.path} in the same series`,
      );
    }
  }
  return ref!.f;
}

function checkOrientation(slices: SliceInfo[]): { row: Vec3; col: Vec3 } {
  const first = slices[0]!;
  for (const s of slices) {
    const o = s.header.orientation;
    if (!o) throw new DicomError(s.path, 'missing ImageOrientationPatient (0020,0037), needed to place the slice');
    const row = o.slice(0, 3);
    const col = o.slice(3, 6);
    if (Math.abs(norm(row) - 1) > 1e-2 || Math.abs(norm(col) - 1) > 1e-2 || Math.abs(dot(row, col)) > 1e-2) {
      throw new DicomError(s.path, `ImageOrientationPatient ${fmt(o)} is not two orthogonal unit vectors`);
    }
    if (!close(o, first.header.orientation!, ORIENTATION_TOL)) {
      throw new DicomError(
        s.path,
        `orientation ${fmt(o)} differs from ${fmt(first.header.orientation!)} of ${first.path} in the same series`,
      );
    }
  }
  // Re-orthonormalise: cosines written with few digits are not exactly unit or orthogonal.
  const o = first.header.orientation!;
  const row = o.slice(0, 3).map((v) => v / norm(o.slice(0, 3))) as Vec3;
  const c0 = o.slice(3, 6);
  const cr = c0.map((v, i) => v - dot(c0, row) * row[i]!);
  return { row, col: cr.map((v) => v / norm(cr)) as Vec3 };
}

function checkPixelSpacing(slices: SliceInfo[]): [number, number] {
  const first = slices[0]!;
  const ps = first.header.pixelSpacing ?? [1, 1];
  if (!(ps[0]! > 0 && ps[1]! > 0)) throw new DicomError(first.path, `PixelSpacing ${fmt(ps)} must be positive`);
  for (const s of slices) {
    if (!close(s.header.pixelSpacing ?? [1, 1], ps, SPACING_TOL)) {
      throw new DicomError(
        s.path,
        `PixelSpacing ${fmt(s.header.pixelSpacing ?? [])} differs from ${fmt(ps)} of ${first.path} in the same series`,
      );
    }
  }
  return [ps[0]!, ps[1]!];
}
