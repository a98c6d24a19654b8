// Preprocessing's file work, off the main thread (no tensor engine here): reading, hashing and inflating the
// next source volumes, and hashing, writing and fsyncing the last cache file, while the main thread resamples.
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { hasScaling, readNiftiSync, type Mat4, type NiftiTypedArray } from '../io/nifti.js';
import { serveTasks } from '../util/pool.js';
import { writeSafetensorsRaw } from '../util/safetensors-file.js';

export interface ReadTask {
  kind: 'read';
  path: string;
  /** the source hash of the cache's current entry: when the file still has it, nothing is decoded */
  knownHash?: string;
  /** an earlier result's inflated bytes, handed back (transferred) once resampled, for the next volume to inflate
   * into: fresh buffers for every volume would be page-faulted in anew */
  spare?: ArrayBuffer;
}
export interface StoredNifti {
  /** stored values in file order (x fastest), unscaled */
  data: NiftiTypedArray;
  /** (x, y, z) */
  shape: [number, number, number];
  spacing: [number, number, number];
  affine: Mat4;
  /** the header's scaling: value = slope · stored + intercept */
  slope: number;
  intercept: number;
}
/** Flat, so the pool transfers `data` instead of copying it. */
export type ReadResult = { sourceHash: string } & Partial<StoredNifti>;

/** A cache file to write; `data` holds each tensor's bytes in `tensors` order (transferred, not copied). */
export interface WriteTask {
  kind: 'write';
  path: string;
  tensors: { name: string; dtype: string; shape: number[] }[];
  data: Uint8Array[];
  metadata: Record<string, string>;
}
export interface WriteResult {
  sha256: string;
}

// Source files are read into one buffer that grows as needed and is reused (hashing and inflating read from it):
// fresh buffers for every volume would be page-faulted in anew.
let fileBuffer = new Uint8Array(0);
function readInto(path: string): Uint8Array {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const size = fstatSync(fd).size;
    if (fileBuffer.length < size) fileBuffer = new Uint8Array(size);
    let n = 0;
    for (let got = 1; n < size && got > 0; n += got) got = readSync(fd, fileBuffer, n, size - n, n);
    return fileBuffer.subarray(0, n);
  } catch (e) {
    throw new Error(`${path}: unreadable (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
let spare: Uint8Array | undefined;

serveTasks<ReadTask | WriteTask, ReadResult | WriteResult>((task) => {
  if (task.kind === 'write') {
    return {
      sha256: writeSafetensorsRaw(
        task.path,
        task.tensors.map((t, i) => ({ ...t, bytes: () => task.data[i]! })),
        task.metadata,
      ).sha256,
    };
  }
  const { path, knownHash } = task;
  if (task.spare) spare = new Uint8Array(task.spare);
  const file = readInto(path);
  const sourceHash = createHash('sha256').update(file).digest('hex').slice(0, 32);
  if (sourceHash === knownHash) return { sourceHash };
  // the result's data is transferred with its buffer (the spare it inflated into, or for an uncompressed .nii the
  // file buffer), which leaves that buffer detached here, of length 0: the next volume then gets a new one
  const img = readNiftiSync(file, { name: path, raw: true, inflateInto: spare });
  const [x, y, z] = img.dataShape as [number, number, number];
  if (img.dataShape.length < 3 || Math.min(x, y, z) < 2)
    throw new Error(`${path}: need a 3D volume with ≥ 2 voxels per axis, got [${img.dataShape.join(', ')}]`);
  const h = img.header;
  const scaled = hasScaling(h);
  return {
    sourceHash,
    data: img.data,
    shape: [x, y, z],
    spacing: [img.spacing[0]!, img.spacing[1]!, img.spacing[2]!],
    affine: img.affine,
    slope: scaled ? h.sclSlope : 1,
    intercept: scaled ? h.sclInter : 0,
  };
});
