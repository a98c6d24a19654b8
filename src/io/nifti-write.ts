// NIfTI-1 / NIfTI-2 single-file (.nii, .nii.gz) writing in pure TypeScript: the encoder (range-checked values, qform
// and sform from the affine) and atomic writes to disk. Voxel data is in file order, as nifti.ts reads it.

import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { gzip, gzipSync } from 'node:zlib';
import { affineToQform, type Mat4 } from './nifti-affine.js';
import {
  DATATYPES,
  HOST_LE,
  MAX_VOXELS,
  byteswap,
  datatypeByName,
  encodeNiftiHeader,
  encodeUnits,
  minVoxOffset,
  type DatatypeInfo,
  type NiftiDatatypeName,
  type NiftiHeader,
  type NiftiTypedArray,
  type SpaceUnit,
  type TimeUnit,
} from './nifti-header.js';

const ZLIB_CHUNK = 1 << 24; // 16 MiB chunks when compressing: far fewer reallocations on 100+ MB CT volumes
const gzipAsync = promisify(gzip);

export interface NiftiWriteImage {
  /** Stored (raw) values in file order; integer datatypes need integers in range (no silent rounding). */
  data: ArrayLike<number>;
  shape: number[];
  /** Voxel -> world (RAS+ mm) 4x4. Written to sform verbatim and to qform with shears stripped. */
  affine: Mat4;
  /** Defaults to the typed array's own type, float32 for plain arrays. */
  datatype?: NiftiDatatypeName;
  /** Readers compute value = stored*slope + inter. Default 1, 0 (no scaling). */
  sclSlope?: number;
  sclInter?: number;
  /** 1 (default, 348-byte header) or 2 (540-byte header, 64-bit dims and doubles). */
  version?: 1 | 2;
  /** pixdim for dims 4..ndim, e.g. [TR]; default 1. Spatial pixdim comes from the affine. */
  extraPixdim?: number[];
  xyzUnits?: SpaceUnit; // default 'mm'
  tUnits?: TimeUnit; // default 'sec' for 4D+, else 'unknown'
  /** Default 1 (scanner) for both, as dcm2niix and ITK write; 0 hides a transform from readers. */
  qformCode?: number;
  sformCode?: number;
  description?: string;
  /** .nii.gz level 1..9; default 1: ~2.4x faster than zlib's 6 on a noisy int16 phantom, ~2% larger. */
  gzipLevel?: number;
}

/** Encodes a complete uncompressed single-file image (little-endian). */
export function encodeNifti(img: NiftiWriteImage, name = '<image>'): Uint8Array {
  const { shape, data } = img;
  if (!(shape.length >= 1 && shape.length <= 7))
    throw new Error(`${name}: shape must have 1..7 dimensions, got ${shape.length}`);
  if (!shape.every((d) => Number.isInteger(d) && d >= 1))
    throw new Error(`${name}: shape [${shape}] must be positive integers`);
  const voxels = shape.reduce((a, b) => a * b, 1);
  if (voxels > MAX_VOXELS) throw new Error(`${name}: shape [${shape}] exceeds 2^31 voxels`);
  if (data.length !== voxels)
    throw new Error(`${name}: data has ${data.length} values, shape [${shape}] needs ${voxels}`);
  const dtName = img.datatype ?? inferDatatype(data);
  const dt = datatypeByName(dtName);
  if (!dt) throw new Error(`${name}: cannot write datatype ${dtName}`);
  const A = img.affine;
  if (A.length !== 4 || A.some((r) => r.length !== 4) || A.flat().some((v) => !Number.isFinite(v))) {
    throw new Error(`${name}: affine must be a finite 4x4 matrix`);
  }
  if (A[3]!.some((v, i) => v !== (i === 3 ? 1 : 0))) throw new Error(`${name}: affine last row must be [0, 0, 0, 1]`);
  const slope = img.sclSlope ?? 1;
  const inter = img.sclInter ?? 0;
  if (!Number.isFinite(slope) || !Number.isFinite(inter))
    throw new Error(`${name}: scl_slope/scl_inter must be finite`);
  const extra = img.extraPixdim ?? [];
  if (extra.length > shape.length - 3 && extra.length > 0)
    throw new Error(`${name}: ${extra.length} extraPixdim values for ${shape.length} dims`);
  const version = img.version ?? 1;
  for (const code of [img.qformCode, img.sformCode]) {
    if (code !== undefined && !XFORM_CODES.includes(code))
      throw new Error(`${name}: xform code ${code} is not one of ${XFORM_CODES}`);
  }
  const q = affineToQform(A, name, version === 1);
  const pixdim = [q.qfac, ...q.zooms, 1, 1, 1, 1].slice(0, 8);
  extra.forEach((p, i) => (pixdim[4 + i] = p));
  const header: NiftiHeader = {
    version,
    littleEndian: true,
    sizeofHdr: 0,
    magic: '',
    dimInfo: 0,
    dim: [shape.length, ...shape, 1, 1, 1, 1, 1, 1, 1].slice(0, 8),
    intentP1: 0,
    intentP2: 0,
    intentP3: 0,
    intentCode: 0,
    datatype: dt.code,
    bitpix: dt.bytes * 8,
    sliceStart: 0,
    pixdim,
    voxOffset: minVoxOffset(version),
    sclSlope: slope,
    sclInter: inter,
    sliceEnd: 0,
    sliceCode: 0,
    xyztUnits: encodeUnits(img.xyzUnits ?? 'mm', img.tUnits ?? (shape.length > 3 ? 'sec' : 'unknown')),
    calMax: 0,
    calMin: 0,
    sliceDuration: 0,
    toffset: 0,
    descrip: img.description ?? '',
    auxFile: '',
    qformCode: img.qformCode ?? 1,
    sformCode: img.sformCode ?? 1,
    quaternB: q.quatern[0]!,
    quaternC: q.quatern[1]!,
    quaternD: q.quatern[2]!,
    qoffsetX: q.offset[0]!,
    qoffsetY: q.offset[1]!,
    qoffsetZ: q.offset[2]!,
    srowX: A[0]!.slice(),
    srowY: A[1]!.slice(),
    srowZ: A[2]!.slice(),
    intentName: '',
  };
  let head: Uint8Array;
  try {
    head = encodeNiftiHeader(header);
  } catch (e) {
    throw new Error(`${name}: ${(e as Error).message}`);
  }
  const out = new Uint8Array(head.length + voxels * dt.bytes);
  out.set(head);
  // vox_offset (352/544) is a multiple of 8, so the view is aligned for every datatype.
  fillChecked(new dt.array(out.buffer, head.length, voxels), data, dt, name);
  if (!HOST_LE) byteswap(out.subarray(head.length), dt.bytes);
  return out;
}

const XFORM_CODES = [0, 1, 2, 3, 4, 5]; // unknown, scanner, aligned, talairach, mni, template

function inferDatatype(data: ArrayLike<number>): NiftiDatatypeName {
  for (const dt of DATATYPES.values()) if (data instanceof dt.array) return dt.name;
  return 'float32';
}

/** Copies with range checks: typed-array stores would wrap or round silently. */
function fillChecked(dst: NiftiTypedArray, src: ArrayLike<number>, dt: DatatypeInfo, name: string): void {
  const isInt = !(dst instanceof Float32Array || dst instanceof Float64Array);
  let bad = 0;
  let first = -1;
  for (let i = 0; i < src.length; i++) {
    const v = src[i]!;
    dst[i] = v;
    // Floats: only flag finite inputs that overflow (float64 -> float32); NaN/Inf are stored as given.
    const ok = isInt
      ? Number.isInteger(v) && v >= dt.min && v <= dt.max
      : Number.isFinite(dst[i]!) || !Number.isFinite(v);
    if (!ok && bad++ === 0) first = i;
  }
  if (bad > 0) throw new Error(`${name}: ${bad} values do not fit ${dt.name} (first at index ${first}: ${src[first]})`);
}

/** Writes .nii or .nii.gz (by extension) atomically: temp file in the same folder, fsync, rename. */
export async function writeNifti(path: string, img: NiftiWriteImage): Promise<void> {
  const level = gzipLevel(path, img);
  const raw = encodeNifti(img, path);
  const bytes = level === null ? raw : await gzipAsync(raw, { level, chunkSize: ZLIB_CHUNK });
  const tmp = tempPath(path);
  try {
    const fh = await open(tmp, 'wx');
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

export function writeNiftiSync(path: string, img: NiftiWriteImage): void {
  const level = gzipLevel(path, img);
  const raw = encodeNifti(img, path);
  const bytes = level === null ? raw : gzipSync(raw, { level, chunkSize: ZLIB_CHUNK });
  const tmp = tempPath(path);
  try {
    const fd = openSync(tmp, 'wx');
    try {
      for (let off = 0; off < bytes.length;) off += writeSync(fd, bytes, off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

function gzipLevel(path: string, img: NiftiWriteImage): number | null {
  if (path.endsWith('.nii')) return null;
  if (!path.endsWith('.nii.gz')) throw new Error(`${path}: NIfTI file name must end in .nii or .nii.gz`);
  const level = img.gzipLevel ?? 1;
  if (!(Number.isInteger(level) && level >= 1 && level <= 9))
    throw new Error(`${path}: gzipLevel must be 1..9, got ${level}`);
  return level;
}
const tempPath = (path: string): string =>
  join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
