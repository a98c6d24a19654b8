// Preprocessing's file work, off the main thread (no tensor engine here): reading, hashing and inflating the
// next source volumes, and hashing, writing and fsyncing the last cache file, while the main thread resamples.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hasScaling, readNiftiSync, type Mat4, type NiftiTypedArray } from '../io/nifti.js';
import { serveTasks } from '../util/pool.js';
import { writeSafetensorsRaw } from '../util/safetensors-file.js';

export interface ReadTask {
  kind: 'read';
  path: string;
  /** the source hash of the cache's current entry: when the file still has it, nothing is decoded */
  knownHash?: string;
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
export interface WriteResult { sha256: string }

serveTasks<ReadTask | WriteTask, ReadResult | WriteResult>((task) => {
  if (task.kind === 'write') {
    return { sha256: writeSafetensorsRaw(task.path, task.tensors.map((t, i) => ({ ...t, bytes: () => task.data[i]! })), task.metadata).sha256 };
  }
  const { path, knownHash } = task;
  let file: Buffer;
  try {
    file = readFileSync(path);
  } catch (e) {
    throw new Error(`${path}: unreadable (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const sourceHash = createHash('sha256').update(file).digest('hex').slice(0, 32);
  if (sourceHash === knownHash) return { sourceHash };
  const img = readNiftiSync(file, { name: path, raw: true });
  const [x, y, z] = img.dataShape as [number, number, number];
  if (img.dataShape.length < 3 || Math.min(x, y, z) < 2) throw new Error(`${path}: need a 3D volume with ≥ 2 voxels per axis, got [${img.dataShape.join(', ')}]`);
  const h = img.header;
  const scaled = hasScaling(h);
  return {
    sourceHash, data: img.data, shape: [x, y, z], spacing: [img.spacing[0]!, img.spacing[1]!, img.spacing[2]!], affine: img.affine,
    slope: scaled ? h.sclSlope : 1, intercept: scaled ? h.sclInter : 0,
  };
});
