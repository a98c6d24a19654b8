// NIfTI-1/NIfTI-2 header layout, datatype tables and the header <-> affine
// math. The affine rules mirror nibabel 5 (the reference our fixtures come
// from), including the checks nibabel silently "fixes" on load.

/** Decoded header fields; both versions map onto this one shape. */
export interface NiftiHeader {
  version: 1 | 2;
  littleEndian: boolean;
  sizeofHdr: number;
  magic: string; // "n+1" / "n+2" (NUL and EOL-check bytes stripped)
  dimInfo: number;
  dim: number[]; // 8 entries, dim[0] = number of dimensions
  intentP1: number;
  intentP2: number;
  intentP3: number;
  intentCode: number;
  datatype: number;
  bitpix: number;
  sliceStart: number;
  pixdim: number[]; // 8 entries as stored; pixdim[0] is qfac
  voxOffset: number;
  sclSlope: number;
  sclInter: number;
  sliceEnd: number;
  sliceCode: number;
  xyztUnits: number;
  calMax: number;
  calMin: number;
  sliceDuration: number;
  toffset: number;
  descrip: string;
  auxFile: string;
  qformCode: number;
  sformCode: number;
  quaternB: number;
  quaternC: number;
  quaternD: number;
  qoffsetX: number;
  qoffsetY: number;
  qoffsetZ: number;
  srowX: number[];
  srowY: number[];
  srowZ: number[];
  intentName: string;
}

type Kind = 'u8' | 'i16' | 'i32' | 'i64' | 'f32' | 'f64' | 'str';
type NumKey = { [K in keyof NiftiHeader]: NiftiHeader[K] extends number | number[] ? K : never }[keyof NiftiHeader];
type StrKey = 'descrip' | 'auxFile' | 'intentName';
type Field =
  | [key: NumKey, kind: Exclude<Kind, 'str'>, offset: number, count?: number]
  | [key: StrKey, kind: 'str', offset: number, count: number];

// Byte offsets from nifti1.h / nifti2.h. Legacy Analyze fields are left zero.
const V1_FIELDS: Field[] = [
  ['sizeofHdr', 'i32', 0],
  ['dimInfo', 'u8', 39],
  ['dim', 'i16', 40, 8],
  ['intentP1', 'f32', 56],
  ['intentP2', 'f32', 60],
  ['intentP3', 'f32', 64],
  ['intentCode', 'i16', 68],
  ['datatype', 'i16', 70],
  ['bitpix', 'i16', 72],
  ['sliceStart', 'i16', 74],
  ['pixdim', 'f32', 76, 8],
  ['voxOffset', 'f32', 108],
  ['sclSlope', 'f32', 112],
  ['sclInter', 'f32', 116],
  ['sliceEnd', 'i16', 120],
  ['sliceCode', 'u8', 122],
  ['xyztUnits', 'u8', 123],
  ['calMax', 'f32', 124],
  ['calMin', 'f32', 128],
  ['sliceDuration', 'f32', 132],
  ['toffset', 'f32', 136],
  ['descrip', 'str', 148, 80],
  ['auxFile', 'str', 228, 24],
  ['qformCode', 'i16', 252],
  ['sformCode', 'i16', 254],
  ['quaternB', 'f32', 256],
  ['quaternC', 'f32', 260],
  ['quaternD', 'f32', 264],
  ['qoffsetX', 'f32', 268],
  ['qoffsetY', 'f32', 272],
  ['qoffsetZ', 'f32', 276],
  ['srowX', 'f32', 280, 4],
  ['srowY', 'f32', 296, 4],
  ['srowZ', 'f32', 312, 4],
  ['intentName', 'str', 328, 16],
];
const V2_FIELDS: Field[] = [
  ['sizeofHdr', 'i32', 0],
  ['datatype', 'i16', 12],
  ['bitpix', 'i16', 14],
  ['dim', 'i64', 16, 8],
  ['intentP1', 'f64', 80],
  ['intentP2', 'f64', 88],
  ['intentP3', 'f64', 96],
  ['pixdim', 'f64', 104, 8],
  ['voxOffset', 'i64', 168],
  ['sclSlope', 'f64', 176],
  ['sclInter', 'f64', 184],
  ['calMax', 'f64', 192],
  ['calMin', 'f64', 200],
  ['sliceDuration', 'f64', 208],
  ['toffset', 'f64', 216],
  ['sliceStart', 'i64', 224],
  ['sliceEnd', 'i64', 232],
  ['descrip', 'str', 240, 80],
  ['auxFile', 'str', 320, 24],
  ['qformCode', 'i32', 344],
  ['sformCode', 'i32', 348],
  ['quaternB', 'f64', 352],
  ['quaternC', 'f64', 360],
  ['quaternD', 'f64', 368],
  ['qoffsetX', 'f64', 376],
  ['qoffsetY', 'f64', 384],
  ['qoffsetZ', 'f64', 392],
  ['srowX', 'f64', 400, 4],
  ['srowY', 'f64', 432, 4],
  ['srowZ', 'f64', 464, 4],
  ['sliceCode', 'i32', 496],
  ['xyztUnits', 'i32', 500],
  ['intentCode', 'i32', 504],
  ['intentName', 'str', 508, 16],
  ['dimInfo', 'u8', 524],
];
const SIZE = { 1: 348, 2: 540 } as const;
const WIDTH: Record<Exclude<Kind, 'str'>, number> = { u8: 1, i16: 2, i32: 4, i64: 8, f32: 4, f64: 8 };
const EOL_CHECK = [13, 10, 26, 10]; // NIfTI-2 bytes 8..11: catch text-mode transfer damage

/** Bytes before the image data in a single-file image: header + 4-byte extension flag. */
export const minVoxOffset = (version: 1 | 2): number => SIZE[version] + 4;

export interface DatatypeInfo {
  code: number;
  name: NiftiDatatypeName;
  bytes: number;
  min: number;
  max: number;
  array: new (buf: ArrayBuffer, offset: number, length: number) => NiftiTypedArray;
}
export type NiftiDatatypeName = 'uint8' | 'int8' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'float32' | 'float64';
export type NiftiTypedArray =
  Uint8Array | Int8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | Float32Array | Float64Array;

const F32_MAX = 3.4028234663852886e38;
const DT: [number, NiftiDatatypeName, number, number, number, DatatypeInfo['array']][] = [
  [2, 'uint8', 1, 0, 255, Uint8Array],
  [256, 'int8', 1, -128, 127, Int8Array],
  [4, 'int16', 2, -32768, 32767, Int16Array],
  [512, 'uint16', 2, 0, 65535, Uint16Array],
  [8, 'int32', 4, -(2 ** 31), 2 ** 31 - 1, Int32Array],
  [768, 'uint32', 4, 0, 2 ** 32 - 1, Uint32Array],
  [16, 'float32', 4, -F32_MAX, F32_MAX, Float32Array],
  [64, 'float64', 8, -Number.MAX_VALUE, Number.MAX_VALUE, Float64Array],
];
export const DATATYPES: ReadonlyMap<number, DatatypeInfo> = new Map(
  DT.map(([code, name, bytes, min, max, array]) => [code, { code, name, bytes, min, max, array }]),
);
export const datatypeByName = (name: string): DatatypeInfo | undefined =>
  [...DATATYPES.values()].find((d) => d.name === name);
/** Known NIfTI codes we deliberately do not decode; named in error messages. */
export const UNSUPPORTED_DATATYPES: Record<number, string> = {
  0: 'unknown',
  1: 'binary',
  32: 'complex64',
  128: 'RGB24',
  1024: 'int64',
  1280: 'uint64',
  1536: 'float128',
  1792: 'complex128',
  2048: 'complex256',
  2304: 'RGBA32',
};

export const SPACE_UNITS = { 0: 'unknown', 1: 'meter', 2: 'mm', 3: 'micron' } as const;
export const TIME_UNITS = { 0: 'unknown', 8: 'sec', 16: 'msec', 24: 'usec', 32: 'hz', 40: 'ppm', 48: 'rads' } as const;
export type SpaceUnit = (typeof SPACE_UNITS)[keyof typeof SPACE_UNITS];
export type TimeUnit = (typeof TIME_UNITS)[keyof typeof TIME_UNITS];
export function decodeUnits(xyzt: number): { xyz: SpaceUnit; t: TimeUnit } {
  return {
    xyz: SPACE_UNITS[(xyzt & 0x07) as keyof typeof SPACE_UNITS] ?? 'unknown',
    t: TIME_UNITS[(xyzt & 0x38) as keyof typeof TIME_UNITS] ?? 'unknown',
  };
}
export function encodeUnits(xyz: SpaceUnit, t: TimeUnit): number {
  const code = (table: Record<number, string>, v: string) =>
    Number(Object.keys(table).find((k) => table[Number(k)] === v));
  return code(SPACE_UNITS, xyz) | code(TIME_UNITS, t);
}

/** Reads sizeof_hdr to find version and byte order; throws on anything else. */
function sniff(bytes: Uint8Array, name: string): { version: 1 | 2; littleEndian: boolean } {
  if (bytes.length === 0) throw new Error(`${name}: file is empty`);
  if (bytes.length < 4) throw new Error(`${name}: truncated header (${bytes.length} bytes)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, 4);
  for (const littleEndian of [true, false]) {
    const n = view.getInt32(0, littleEndian);
    if (n === SIZE[1]) return { version: 1, littleEndian };
    if (n === SIZE[2]) return { version: 2, littleEndian };
  }
  throw new Error(
    `${name}: sizeof_hdr is ${view.getInt32(0, true)}, expected 348 (NIfTI-1) or 540 (NIfTI-2) in either byte order; not a NIfTI file`,
  );
}

const latin1 = new TextDecoder('latin1');
const cstr = (b: Uint8Array): string => latin1.decode(b.subarray(0, b.indexOf(0) < 0 ? b.length : b.indexOf(0)));

/** Decodes the fixed header (no extensions). Checks only structure: size, magic. */
export function parseNiftiHeader(bytes: Uint8Array, name: string): NiftiHeader {
  const { version, littleEndian } = sniff(bytes, name);
  const size = SIZE[version];
  if (bytes.length < size) throw new Error(`${name}: truncated header (${bytes.length} of ${size} bytes)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, size);
  const magic = bytes.subarray(version === 1 ? 344 : 4, version === 1 ? 348 : 8);
  const m = cstr(magic);
  if (m === `ni${version}`)
    throw new Error(`${name}: magic "ni${version}" marks a .hdr/.img pair; only single-file .nii is supported`);
  if (m !== `n+${version}` || magic[3] !== 0)
    throw new Error(`${name}: bad magic ${JSON.stringify(latin1.decode(magic))}, expected "n+${version}"`);
  if (version === 2) {
    const eol = [...bytes.subarray(8, 12)];
    if (eol.some((b, i) => b !== EOL_CHECK[i]) && eol.some((b) => b !== 0)) {
      throw new Error(
        `${name}: NIfTI-2 EOL check bytes are ${eol.join(',')}, expected 13,10,26,10 (file damaged by text-mode transfer?)`,
      );
    }
  }
  const read = (kind: Exclude<Kind, 'str'>, o: number): number => {
    switch (kind) {
      case 'u8':
        return view.getUint8(o);
      case 'i16':
        return view.getInt16(o, littleEndian);
      case 'i32':
        return view.getInt32(o, littleEndian);
      case 'i64':
        return Number(view.getBigInt64(o, littleEndian)); // >2^53 only in absurd headers, rejected later
      case 'f32':
        return view.getFloat32(o, littleEndian);
      case 'f64':
        return view.getFloat64(o, littleEndian);
    }
  };
  const out: Record<string, unknown> = { version, littleEndian, magic: m };
  for (const [key, kind, offset, count] of version === 1 ? V1_FIELDS : V2_FIELDS) {
    if (kind === 'str') out[key] = cstr(bytes.subarray(offset, offset + count));
    else if (count === undefined) out[key] = read(kind, offset);
    else out[key] = Array.from({ length: count }, (_, i) => read(kind, offset + i * WIDTH[kind]));
  }
  return out as unknown as NiftiHeader;
}

/** Encodes a little-endian header followed by the 4-byte "no extensions" flag. */
export function encodeNiftiHeader(h: NiftiHeader): Uint8Array {
  const size = SIZE[h.version];
  const bytes = new Uint8Array(size + 4);
  const view = new DataView(bytes.buffer);
  const write = (kind: Exclude<Kind, 'str'>, o: number, v: number): void => {
    switch (kind) {
      case 'u8':
        return view.setUint8(o, v);
      case 'i16':
        return view.setInt16(o, v, true);
      case 'i32':
        return view.setInt32(o, v, true);
      case 'i64':
        return view.setBigInt64(o, BigInt(v), true);
      case 'f32':
        return view.setFloat32(o, v, true);
      case 'f64':
        return view.setFloat64(o, v, true);
    }
  };
  for (const [key, kind, offset, count] of h.version === 1 ? V1_FIELDS : V2_FIELDS) {
    if (kind === 'str') {
      const s = h[key];
      if (s.length > count || /[^\x20-\x7e]/.test(s))
        throw new Error(`header ${key} must be printable ASCII of at most ${count} chars`);
      for (let i = 0; i < s.length; i++) bytes[offset + i] = s.charCodeAt(i);
    } else {
      const v = h[key];
      if (Array.isArray(v)) v.forEach((x, i) => write(kind, offset + i * WIDTH[kind], x));
      else write(kind, offset, v);
    }
  }
  view.setInt32(0, size, true);
  const magic = h.version === 1 ? [0x6e, 0x2b, 0x31, 0] : [0x6e, 0x2b, 0x32, 0, ...EOL_CHECK];
  bytes.set(magic, h.version === 1 ? 344 : 4);
  if (h.version === 1) bytes[38] = 0x72; // Analyze "regular" = 'r', as nibabel and FSL write
  return bytes;
}

// ---------------------------------------------------------------- affines

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
