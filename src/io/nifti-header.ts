// NIfTI-1/NIfTI-2 header layout, datatype tables and byte order. The header <-> affine math is in nifti-affine.ts.

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
    `${name}: sizeof_hdr is ${view.getInt32(0, true)}, expected 348 (NIfTI-1) or 540 (NIfTI-2) in either byte order; ` +
      'not a NIfTI file',
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
        `${name}: NIfTI-2 EOL check bytes are ${eol.join(',')}, expected 13,10,26,10 ` +
          '(file damaged by text-mode transfer?)',
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

/** Images over 2^31 voxels are refused on read and write. */
export const MAX_VOXELS = 2 ** 31;
export const HOST_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Reverses the byte order of every `width`-byte element in place. */
export function byteswap(b: Uint8Array, width: number): void {
  if (width === 1) return;
  for (let i = 0; i < b.length; i += width) {
    for (let lo = i, hi = i + width - 1; lo < hi; lo++, hi--) {
      const t = b[lo]!;
      b[lo] = b[hi]!;
      b[hi] = t;
    }
  }
}
