// NIfTI-1 / NIfTI-2 single-file (.nii, .nii.gz) reading in pure TypeScript (writing: nifti-write.ts). Voxel data
// is kept in file order (x fastest, "Fortran" order), so index = x + X*(y + Y*(z + Z*t)). Affine semantics follow
// nibabel 5.

import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { constants as zc, gunzipSync as zlibGunzipSync } from 'node:zlib';
import { constants as bufferConstants } from 'node:buffer';
import { GunzipCapacityError, gunzip, gunzipSync } from './gzip.js';
import { bestAffine, fixedPixdim, type AffineSource, type Mat4 } from './nifti-affine.js';
import {
  DATATYPES,
  HOST_LE,
  MAX_VOXELS,
  UNSUPPORTED_DATATYPES,
  byteswap,
  decodeUnits,
  minVoxOffset,
  parseNiftiHeader,
  type DatatypeInfo,
  type NiftiDatatypeName,
  type NiftiHeader,
  type NiftiTypedArray,
  type SpaceUnit,
  type TimeUnit,
} from './nifti-header.js';

export { affineToAxcodes, bestAffine, fallbackAffine, qformAffine, sformAffine } from './nifti-affine.js';
export { parseNiftiHeader, encodeNiftiHeader } from './nifti-header.js';
export type { AffineSource, Mat4 } from './nifti-affine.js';
export type { NiftiDatatypeName, NiftiHeader, NiftiTypedArray, SpaceUnit, TimeUnit } from './nifti-header.js';

export interface NiftiImage<D extends NiftiTypedArray = Float32Array> {
  header: NiftiHeader;
  /** Full image shape from dim[1..dim[0]] (x, y, z[, t, ...]), like nibabel's img.shape. */
  shape: number[];
  /** Shape of `data`: the first x,y,z volume unless allVolumes was requested. */
  dataShape: number[];
  data: D;
  /** nibabel's img.affine: sform if sform_code > 0, else qform if qform_code > 0, else fallback. */
  affine: Mat4;
  affineSource: AffineSource;
  /** pixdim[1..ndim] (nibabel get_zooms, after its load-time fixes). */
  spacing: number[];
  datatype: NiftiDatatypeName;
  units: { xyz: SpaceUnit; t: TimeUnit };
}

export interface ReadNiftiOptions {
  /** Used in error messages; defaults to the path, or "<buffer>" for bytes. */
  name?: string;
  /**
   * Return the stored values unscaled, in their own typed array: a view into the (inflated) bytes when they are
   * aligned and in host byte order (for bytes given uncompressed, that view shares the caller's buffer), else a copy.
   */
  raw?: boolean;
  /** readNiftiSync: a buffer a .nii.gz may inflate into when it is large enough (see io/gzip); the raw data view
   * then shares it. */
  inflateInto?: Uint8Array;
  /** Return every volume of a 4D+ image instead of the first. */
  allVolumes?: boolean;
  /** Throw if any returned voxel is NaN or ±Infinity. */
  rejectNonFinite?: boolean;
}

const GZIP_MAGIC = [0x1f, 0x8b];
const GZIP_SLACK = 16 << 20; // decompressed bytes tolerated past the image before we call it a gzip bomb

type Opts = ReadNiftiOptions;
/** Reads a .nii / .nii.gz (gzip detected by content). Gunzip runs off the main thread (libdeflate or zlib: io/gzip). */
export function readNifti(src: string | Uint8Array, opts: Opts & { raw: true }): Promise<NiftiImage<NiftiTypedArray>>;
export function readNifti(src: string | Uint8Array, opts?: Opts & { raw?: false }): Promise<NiftiImage<Float32Array>>;
export function readNifti(src: string | Uint8Array, opts?: Opts): Promise<NiftiImage<NiftiTypedArray>>;
export async function readNifti(src: string | Uint8Array, opts: Opts = {}): Promise<NiftiImage<NiftiTypedArray>> {
  const name = opts.name ?? (typeof src === 'string' ? src : '<buffer>');
  const file = typeof src === 'string' ? await readFile(src) : src;
  const plan = planRead(file, name);
  const bytes = plan.gz ? await unzip(name, plan, file) : file;
  return decode(bytes, plan.header, name, opts);
}

export function readNiftiSync(src: string | Uint8Array, opts: Opts & { raw: true }): NiftiImage<NiftiTypedArray>;
export function readNiftiSync(src: string | Uint8Array, opts?: Opts & { raw?: false }): NiftiImage<Float32Array>;
export function readNiftiSync(src: string | Uint8Array, opts?: Opts): NiftiImage<NiftiTypedArray>;
export function readNiftiSync(src: string | Uint8Array, opts: Opts = {}): NiftiImage<NiftiTypedArray> {
  const name = opts.name ?? (typeof src === 'string' ? src : '<buffer>');
  const file = typeof src === 'string' ? readFileSync(src) : src;
  const plan = planRead(file, name);
  const bytes = plan.gz ? unzipSync(name, plan, file, opts.inflateInto) : file;
  return decode(bytes, plan.header, name, opts);
}

interface Plan {
  gz: boolean;
  header: NiftiHeader;
  need: number; // bytes the (decompressed) file must have
}
/** Parses and validates the header (from a small gunzipped prefix for .gz) before any big allocation. */
function planRead(file: Uint8Array, name: string): Plan {
  const gz = file.length >= 2 && file[0] === GZIP_MAGIC[0] && file[1] === GZIP_MAGIC[1];
  const header = parseNiftiHeader(gz ? gunzipPrefix(file, name) : file, name);
  const need = validate(header, name);
  if (!gz) checkSize(file.length, header, need, name);
  else if (need > bufferConstants.MAX_LENGTH)
    throw new Error(`${name}: image needs ${need} bytes, more than a Node buffer can hold`);
  return { gz, header, need };
}

/** Decompresses just enough of the stream to hold a header (Z_SYNC_FLUSH tolerates the cut). */
function gunzipPrefix(file: Uint8Array, name: string): Uint8Array {
  for (let n = 4096; ; n *= 2) {
    let out: Uint8Array;
    try {
      out = zlibGunzipSync(file.subarray(0, n), { finishFlush: zc.Z_SYNC_FLUSH });
    } catch (e) {
      throw new Error(`${name}: corrupt gzip stream (${(e as Error).message})`);
    }
    if (out.length >= 544 || n >= file.length) return out;
  }
}

/** The most a .nii.gz may inflate to: more than GZIP_SLACK bytes past what its header describes is a gzip bomb. */
const capacity = (plan: Plan) => Math.min(bufferConstants.MAX_LENGTH, plan.need + GZIP_SLACK);
function gunzipError(name: string, need: number, e: unknown): Error {
  if (e instanceof GunzipCapacityError)
    return new Error(`${name}: gzip stream inflates past the ${need} bytes the header describes`);
  return new Error(`${name}: ${(e as Error).message}`);
}
async function unzip(name: string, plan: Plan, file: Uint8Array): Promise<Uint8Array> {
  let out: Uint8Array;
  try {
    out = await gunzip(file, capacity(plan));
  } catch (e) {
    throw gunzipError(name, plan.need, e);
  }
  checkSize(out.length, plan.header, plan.need, name);
  return out;
}
function unzipSync(name: string, plan: Plan, file: Uint8Array, into?: Uint8Array): Uint8Array {
  let out: Uint8Array;
  try {
    out = gunzipSync(file, capacity(plan), into);
  } catch (e) {
    throw gunzipError(name, plan.need, e);
  }
  checkSize(out.length, plan.header, plan.need, name);
  return out;
}
function checkSize(size: number, h: NiftiHeader, need: number, name: string): void {
  if (size <= h.voxOffset)
    throw new Error(`${name}: vox_offset ${h.voxOffset} is beyond the end of the data (${size} bytes)`);
  if (size < need) throw new Error(`${name}: truncated image data: header needs ${need} bytes, got ${size}`);
}

/**
 * Header semantic checks; returns the file size the image needs (every
 * volume must be present even if only the first is returned). Nothing is
 * allocated before this passes.
 */
function validate(h: NiftiHeader, name: string): number {
  const ndim = h.dim[0]!;
  if (!(ndim >= 1 && ndim <= 7)) throw new Error(`${name}: dim[0] is ${ndim}, must be 1..7`);
  let voxels = 1;
  for (let i = 1; i <= ndim; i++) {
    const d = h.dim[i]!;
    if (!(d >= 1)) throw new Error(`${name}: dim[${i}] is ${d}, every dimension must be >= 1`);
    voxels *= d;
    if (voxels > MAX_VOXELS) throw new Error(`${name}: dims ${h.dim.slice(1, ndim + 1).join('x')} exceed 2^31 voxels`);
  }
  const dt = datatypeOf(h.datatype, name);
  if (h.bitpix !== dt.bytes * 8)
    throw new Error(`${name}: bitpix ${h.bitpix} does not match datatype ${dt.name} (${dt.bytes * 8})`);
  const off = h.voxOffset;
  if (!Number.isInteger(off)) throw new Error(`${name}: vox_offset ${off} is not an integer`);
  if (off < minVoxOffset(h.version))
    throw new Error(`${name}: vox_offset ${off} is inside the header (minimum ${minVoxOffset(h.version)})`);
  // nibabel: a zero or non-finite slope means "no scaling"; only a usable slope needs a finite intercept.
  if (hasScaling(h) && !Number.isFinite(h.sclInter))
    throw new Error(`${name}: scl_inter is ${h.sclInter} with scl_slope ${h.sclSlope}`);
  return off + voxels * dt.bytes;
}

function datatypeOf(code: number, name: string): DatatypeInfo {
  const dt = DATATYPES.get(code);
  if (dt) return dt;
  const known = UNSUPPORTED_DATATYPES[code];
  throw new Error(`${name}: unsupported datatype ${known ? `${known} (code ${code})` : `code ${code}`}`);
}

function decode(bytes: Uint8Array, h: NiftiHeader, name: string, opts: Opts): NiftiImage<NiftiTypedArray> {
  const ndim = h.dim[0]!;
  const shape = h.dim.slice(1, ndim + 1);
  const dataShape = opts.allVolumes ? shape : shape.slice(0, 3);
  const count = dataShape.reduce((a, b) => a * b, 1);
  const dt = datatypeOf(h.datatype, name);
  // The affine is computed before the voxel copy so a bad quaternion fails fast.
  const { affine, source } = bestAffine(h, name);
  if (affine.flat().some((v) => !Number.isFinite(v)))
    throw new Error(`${name}: ${source} affine has non-finite entries`);

  const start = bytes.byteOffset + h.voxOffset;
  let data: NiftiTypedArray;
  if (opts.raw && h.littleEndian === HOST_LE && start % dt.bytes === 0) {
    data = new dt.array(bytes.buffer as ArrayBuffer, start, count);
  } else {
    // Copy into a fresh buffer: the bytes are not aligned for a typed view, or need swapping.
    const copy = new Uint8Array(count * dt.bytes);
    copy.set(bytes.subarray(h.voxOffset, h.voxOffset + copy.length));
    if (h.littleEndian !== HOST_LE) byteswap(copy, dt.bytes);
    const raw = new dt.array(copy.buffer, 0, count);
    data = opts.raw ? raw : scale(raw, h);
  }
  if (opts.rejectNonFinite) {
    let bad = 0;
    for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i]!)) bad++;
    if (bad > 0) throw new Error(`${name}: ${bad} non-finite voxel${bad === 1 ? '' : 's'} (NaN/Inf)`);
  }
  const units = decodeUnits(h.xyztUnits);
  return {
    header: h,
    shape,
    dataShape,
    data,
    affine,
    affineSource: source,
    spacing: fixedPixdim(h).slice(1, ndim + 1),
    datatype: dt.name,
    units,
  };
}

/** nibabel's rule: a zero or non-finite scl_slope means "no scaling". */
export const hasScaling = (h: NiftiHeader): boolean => h.sclSlope !== 0 && Number.isFinite(h.sclSlope);

/** Real-world values: raw*slope + inter in float64 (as nibabel get_fdata), stored as float32. */
function scale(raw: NiftiTypedArray, h: NiftiHeader): Float32Array {
  const scaled = hasScaling(h) && !(h.sclSlope === 1 && h.sclInter === 0);
  if (!scaled && raw instanceof Float32Array) return raw;
  const out = new Float32Array(raw.length);
  if (!scaled) out.set(raw);
  const { sclSlope: m, sclInter: b } = h;
  if (scaled) for (let i = 0; i < raw.length; i++) out[i] = raw[i]! * m + b;
  return out;
}
