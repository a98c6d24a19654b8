// NIfTI header <-> affine math: the sform, qform and fallback affines a header describes, and the qform fields an
// affine is written with. The rules mirror nibabel 5 (the reference our fixtures come from), including the checks
// nibabel silently "fixes" on load.
import type { NiftiHeader } from './nifti-header.js';

export type Mat4 = number[][];
const VALID_XFORM_CODES = new Set([0, 1, 2, 3, 4, 5]);

/** nibabel zeroes unknown xform codes on load, so they never select a transform. */
export const effectiveCode = (code: number): number => (VALID_XFORM_CODES.has(code) ? code : 0);

/** pixdim[1..3] as nibabel fixes them on load: negatives -> abs, zeros -> 1. */
export function fixedPixdim(h: NiftiHeader): number[] {
  return h.pixdim.map((p, i) => (i >= 1 && i <= 3 ? (p === 0 ? 1 : Math.abs(p)) : p));
}

export function sformAffine(h: NiftiHeader): Mat4 {
  return [h.srowX.slice(), h.srowY.slice(), h.srowZ.slice(), [0, 0, 0, 1]];
}

/** qform -> affine (nibabel get_qform). qfac is -1 only if pixdim[0] is exactly -1. */
export function qformAffine(h: NiftiHeader, name = 'header'): Mat4 {
  const [b, c, d] = [h.quaternB, h.quaternC, h.quaternD];
  const w2 = 1 - (b * b + c * c + d * d);
  // Stored b,c,d are rounded, so allow a few eps of negative w^2 (nibabel: -3 eps of the field type).
  const thresh = -3 * (h.version === 1 ? 2 ** -23 : 2 ** -52);
  if (!(w2 >= thresh)) throw new Error(`${name}: invalid qform quaternion (b²+c²+d² = ${1 - w2} > 1)`);
  const R = quatToMat([Math.sqrt(Math.max(w2, 0)), b, c, d]);
  const pix = fixedPixdim(h);
  const qfac = h.pixdim[0] === -1 ? -1 : 1;
  const zooms = [pix[1]!, pix[2]!, pix[3]! * qfac];
  const t = [h.qoffsetX, h.qoffsetY, h.qoffsetZ];
  return [0, 1, 2].map((i) => [...[0, 1, 2].map((j) => R[i]![j]! * zooms[j]!), t[i]!]).concat([[0, 0, 0, 1]]);
}

/**
 * nibabel's fallback when neither code is set (shape_zoom_affine): x flipped
 * (radiological Analyze convention) and the origin at the volume centre.
 */
export function fallbackAffine(h: NiftiHeader): Mat4 {
  const n = h.dim[0]!;
  const pix = fixedPixdim(h);
  const shape = [0, 1, 2].map((i) => (i < n ? h.dim[i + 1]! : 1));
  const zooms = [0, 1, 2].map((i) => (i < n ? pix[i + 1]! : 1));
  zooms[0] = -zooms[0]!;
  const A = identity4();
  for (let i = 0; i < 3; i++) {
    A[i]![i] = zooms[i]!;
    A[i]![3] = (-(shape[i]! - 1) / 2) * zooms[i]!;
  }
  return A;
}

export type AffineSource = 'sform' | 'qform' | 'fallback';
/** nibabel get_best_affine: sform if its code is set, else qform, else fallback. */
export function bestAffine(h: NiftiHeader, name = 'header'): { affine: Mat4; source: AffineSource } {
  if (effectiveCode(h.sformCode) !== 0) return { affine: sformAffine(h), source: 'sform' };
  if (effectiveCode(h.qformCode) !== 0) return { affine: qformAffine(h, name), source: 'qform' };
  return { affine: fallbackAffine(h), source: 'fallback' };
}

/**
 * Quaternion fields for an affine (nibabel set_qform: polar decomposition
 * strips shears). With float32 storage (NIfTI-1) b, c, d are rounded jointly,
 * see roundQuaternion32.
 */
export function affineToQform(
  affine: Mat4,
  name = 'affine',
  float32 = false,
): { quatern: number[]; offset: number[]; qfac: 1 | -1; zooms: number[] } {
  const zooms = [0, 1, 2].map((j) => Math.hypot(affine[0]![j]!, affine[1]![j]!, affine[2]![j]!));
  zooms.forEach((z, j) => {
    if (!(z > 0)) throw new Error(`${name}: affine column ${j} has zero length`);
  });
  const R = [0, 1, 2].map((i) => [0, 1, 2].map((j) => affine[i]![j]! / zooms[j]!));
  const det = det3(R);
  if (Math.abs(det) < 1e-8) throw new Error(`${name}: affine is singular (columns are parallel)`);
  // A left-handed affine has no quaternion; NIfTI stores the z flip as qfac = -1.
  const qfac = det > 0 ? 1 : -1;
  if (qfac < 0) for (const row of R) row[2] = -row[2]!;
  const q = matToQuat(polar(R, 0));
  return {
    quatern: float32 ? roundQuaternion32(q) : q.slice(1),
    offset: [affine[0]![3]!, affine[1]![3]!, affine[2]![3]!],
    qfac,
    zooms,
  };
}

/** Like nibabel.aff2axcodes: the world axis (RAS+ labels) each voxel axis points along. */
export function affineToAxcodes(affine: Mat4): (string | null)[] {
  if (affine.length !== 4 || affine.some((r) => r.length !== 4)) throw new Error('affineToAxcodes: need a 4x4 affine');
  const RS = [0, 1, 2].map((i) => [0, 1, 2].map((j) => affine[i]![j]!));
  for (let j = 0; j < 3; j++) {
    const z = Math.hypot(RS[0]![j]!, RS[1]![j]!, RS[2]![j]!) || 1;
    for (let i = 0; i < 3; i++) RS[i]![j]! /= z;
  }
  const R = polar(RS, 1e-7); // rank-deficient parts dropped, as nibabel's SVD threshold does
  const labels = [
    ['L', 'R'],
    ['P', 'A'],
    ['I', 'S'],
  ] as const;
  const codes: (string | null)[] = [];
  for (let j = 0; j < 3; j++) {
    const col = R.map((r) => r[j]!);
    if (col.every((v) => Math.abs(v) <= 1e-8)) {
      codes.push(null);
      continue;
    }
    let out = 0;
    for (let i = 1; i < 3; i++) if (Math.abs(col[i]!) > Math.abs(col[out]!)) out = i;
    codes.push(labels[out]![col[out]! < 0 ? 0 : 1]);
    R[out] = [0, 0, 0]; // each world axis is used once, ties go to the earlier voxel axis
  }
  return codes;
}

/**
 * Readers rebuild w = sqrt(1 - b² - c² - d²). Near w = 0 (180° rotations,
 * e.g. any oblique left-handed affine after the qfac flip) independent
 * float32 rounding of b, c, d leaves a spurious w ~ 1e-4, i.e. ~1e-3 mm
 * errors. Try the neighbouring float32 values and keep the set whose
 * reconstructed quaternion is closest; w² may go slightly negative within
 * the -3 eps that nibabel (and qformAffine) clamp to 0.
 */
function roundQuaternion32(q: number[]): number[] {
  const f32 = new Float32Array(1);
  const i32 = new Int32Array(f32.buffer);
  const near = (x: number): number[] => {
    f32[0] = x;
    if (f32[0] === 0) return [0];
    const out = [f32[0]!];
    const bits = i32[0]!;
    for (const d of [-1, 1]) {
      i32[0] = bits + d;
      out.push(f32[0]!);
    }
    return out;
  };
  let best = [Math.fround(q[1]!), Math.fround(q[2]!), Math.fround(q[3]!)];
  let bestErr = Infinity;
  for (const b of near(q[1]!))
    for (const c of near(q[2]!))
      for (const d of near(q[3]!)) {
        const w2 = 1 - (b * b + c * c + d * d);
        if (w2 < -3 * 2 ** -23) continue;
        const w = Math.sqrt(Math.max(w2, 0));
        const err = (w - q[0]!) ** 2 + (b - q[1]!) ** 2 + (c - q[2]!) ** 2 + (d - q[3]!) ** 2;
        if (err < bestErr) [best, bestErr] = [[b, c, d], err];
      }
  return best;
}

const identity4 = (): Mat4 => [0, 1, 2, 3].map((i) => [0, 1, 2, 3].map((j) => (i === j ? 1 : 0)));
const det3 = (m: number[][]): number =>
  m[0]![0]! * (m[1]![1]! * m[2]![2]! - m[1]![2]! * m[2]![1]!) -
  m[0]![1]! * (m[1]![0]! * m[2]![2]! - m[1]![2]! * m[2]![0]!) +
  m[0]![2]! * (m[1]![0]! * m[2]![1]! - m[1]![1]! * m[2]![0]!);
const matmul3 = (a: number[][], b: number[][]): number[][] =>
  [0, 1, 2].map((i) => [0, 1, 2].map((j) => a[i]![0]! * b[0]![j]! + a[i]![1]! * b[1]![j]! + a[i]![2]! * b[2]![j]!));
const transpose3 = (a: number[][]): number[][] => [0, 1, 2].map((i) => [0, 1, 2].map((j) => a[j]![i]!));

/** nibabel quat2mat for (w, x, y, z). */
function quatToMat([w, x, y, z]: number[]): number[][] {
  const n = w! * w! + x! * x! + y! * y! + z! * z!;
  if (n < Number.EPSILON)
    return [
      [1, 0, 0],
      [0, 1, 0],
      [0, 0, 1],
    ];
  const s = 2 / n;
  const [X, Y, Z] = [x! * s, y! * s, z! * s];
  return [
    [1 - (y! * Y + z! * Z), x! * Y - w! * Z, x! * Z + w! * Y],
    [x! * Y + w! * Z, 1 - (x! * X + z! * Z), y! * Z - w! * X],
    [x! * Z - w! * Y, y! * Z + w! * X, 1 - (x! * X + y! * Y)],
  ];
}

/** Rotation matrix -> unit quaternion with w >= 0 (Shepperd's method; same rotation as nibabel's mat2quat). */
function matToQuat(m: number[][]): number[] {
  const [a, b, c] = [m[0]!, m[1]!, m[2]!];
  const tr = a[0]! + b[1]! + c[2]!;
  let q: number[];
  if (tr > 0) {
    const s = 2 * Math.sqrt(tr + 1);
    q = [s / 4, (c[1]! - b[2]!) / s, (a[2]! - c[0]!) / s, (b[0]! - a[1]!) / s];
  } else if (a[0]! > b[1]! && a[0]! > c[2]!) {
    const s = 2 * Math.sqrt(1 + a[0]! - b[1]! - c[2]!);
    q = [(c[1]! - b[2]!) / s, s / 4, (a[1]! + b[0]!) / s, (a[2]! + c[0]!) / s];
  } else if (b[1]! > c[2]!) {
    const s = 2 * Math.sqrt(1 + b[1]! - a[0]! - c[2]!);
    q = [(a[2]! - c[0]!) / s, (a[1]! + b[0]!) / s, s / 4, (b[2]! + c[1]!) / s];
  } else {
    const s = 2 * Math.sqrt(1 + c[2]! - a[0]! - b[1]!);
    q = [(b[0]! - a[1]!) / s, (a[2]! + c[0]!) / s, (b[2]! + c[1]!) / s, s / 4];
  }
  const norm = Math.hypot(...q) * (q[0]! < 0 ? -1 : 1);
  return q.map((v) => v / norm);
}

/**
 * Orthogonal polar factor U·Vᵀ of M = U·S·Vᵀ, dropping singular values below
 * relTol·max (nibabel uses numpy's SVD; we get V and S² from a Jacobi
 * eigen-decomposition of MᵀM, which is exact enough for 3x3 affines).
 */
function polar(M: number[][], relTol: number): number[][] {
  const { values, vectors: V } = eigSym3(matmul3(transpose3(M), M));
  const s = values.map((v) => Math.sqrt(Math.max(v, 0)));
  const smax = Math.max(...s);
  const out = [
    [0, 0, 0],
    [0, 0, 0],
    [0, 0, 0],
  ];
  for (let k = 0; k < 3; k++) {
    if (!(s[k]! > relTol * smax) || s[k] === 0) continue;
    const v = [V[0]![k]!, V[1]![k]!, V[2]![k]!];
    const u = M.map((row) => (row[0]! * v[0]! + row[1]! * v[1]! + row[2]! * v[2]!) / s[k]!);
    for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) out[i]![j]! += u[i]! * v[j]!;
  }
  return out;
}

/** Cyclic Jacobi eigen-decomposition of a symmetric 3x3 matrix; eigenvectors are columns. */
function eigSym3(S: number[][]): { values: number[]; vectors: number[][] } {
  let A = S.map((r) => r.slice());
  let V = [
    [1, 0, 0],
    [0, 1, 0],
    [0, 0, 1],
  ];
  for (let sweep = 0; sweep < 50; sweep++) {
    const off = A[0]![1]! ** 2 + A[0]![2]! ** 2 + A[1]![2]! ** 2;
    const diag = A[0]![0]! ** 2 + A[1]![1]! ** 2 + A[2]![2]! ** 2;
    if (off === 0 || off < 1e-36 * diag) break;
    for (const [p, q] of [
      [0, 1],
      [0, 2],
      [1, 2],
    ] as const) {
      const apq = A[p]![q]!;
      if (apq === 0) continue;
      const theta = (A[q]![q]! - A[p]![p]!) / (2 * apq);
      const t = (theta >= 0 ? 1 : -1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
      const c = 1 / Math.sqrt(t * t + 1);
      const J = [
        [1, 0, 0],
        [0, 1, 0],
        [0, 0, 1],
      ];
      J[p]![p] = c;
      J[q]![q] = c;
      J[p]![q] = t * c;
      J[q]![p] = -t * c;
      A = matmul3(transpose3(J), matmul3(A, J));
      A[p]![q] = A[q]![p] = 0; // exact by construction; kill the rounding residue
      V = matmul3(V, J);
    }
  }
  return { values: [A[0]![0]!, A[1]![1]!, A[2]![2]!], vectors: V };
}
