// What the web viewer shows and what it accepts: an indexed volume's source (a cache entry, shown as the scan it
// was made from while that scan is unchanged on disk; a NIfTI file; a DICOM series folder) as NIfTI bytes for the
// browser, and an uploaded file (.nii, .nii.gz, or a zipped DICOM series)
// as a scan on disk for the analyzer. A zip is unpacked by a worker thread (zip.ts, unzip-worker.ts) within a
// time budget, never on the event loop.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { setImmediate as yieldToEvents } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { type CacheEntry } from '../data/cache.js';
import { readCachedTensors } from '../data/cache-read.js';
import { type Preset } from '../data/presets.js';
import { readNifti, type Mat4 } from '../io/nifti.js';
import { encodeNifti } from '../io/nifti-write.js';
import { readDicomVolume } from '../io/dicom.js';
import { readJsonFile } from '../util/files.js';
import { ClientError } from './client-error.js';
import type { UnzipAnswer, UnzipJob } from './unzip-worker.js';
import type { UnzipLimits } from './zip.js';

/** A cache entry (int16 HU, LPS: i → left, j → posterior, k → superior) as NIfTI, in RAS+ as NIfTI wants. */
function cacheEntryNifti(file: string): Uint8Array {
  const { preset } = readJsonFile<{ preset: Preset }>(join(dirname(dirname(file)), 'cache.json'));
  const image = readCachedTensors(file, undefined, ['image']).get('image')!;
  const [d, h, w] = image.shape as [number, number, number];
  const [sx, sy, sz] = preset.spacing;
  const affine: Mat4 = [
    [-sx, 0, 0, 0],
    [0, -sy, 0, 0],
    [0, 0, sz, 0],
    [0, 0, 0, 1],
  ];
  const data = new Int16Array(image.bytes.buffer, image.bytes.byteOffset, image.bytes.byteLength / 2);
  return encodeNifti({ data, shape: [w, h, d], affine, datatype: 'int16', description: 't3d cache entry' });
}

/** The cache's hash of a source file (cache-worker), in chunks between which the server answers other requests. */
async function sourceHashOf(bytes: Uint8Array): Promise<string> {
  const hash = createHash('sha256');
  for (let at = 0; at < bytes.length; at += 8 << 20) {
    hash.update(bytes.subarray(at, at + (8 << 20)));
    await yieldToEvents();
  }
  return hash.digest('hex').slice(0, 32);
}

/**
 * The scan a cache entry was made from, as NIfTI in HU at its own grid and affine (its stored values with the
 * entry's rescale as the header's scaling); undefined, with a line to `log` where the entry names no source or its
 * source is gone, changed since or unreadable: the cache grid is shown instead.
 */
async function entrySourceNifti(file: string, log: (line: string) => void): Promise<Uint8Array | undefined> {
  const entryFile = join(dirname(dirname(file)), 'entries', `${basename(file, '.safetensors')}.json`);
  const entry = existsSync(entryFile) ? readJsonFile<CacheEntry>(entryFile) : undefined;
  if (!entry?.sourcePath || !entry.sourceRescale) return undefined;
  const { sourcePath, sourceRescale } = entry;
  const fallBack = (why: string) => {
    log(`${entry.name}: the viewer shows the cache grid: its source ${sourcePath} ${why}`);
    return undefined;
  };
  if (!existsSync(sourcePath)) return fallBack('no longer exists');
  try {
    const bytes = await readFile(sourcePath);
    if ((await sourceHashOf(bytes)) !== entry.sourceHash) return fallBack('has changed since the cache was built');
    const img = await readNifti(bytes, { name: sourcePath, raw: true });
    return encodeNifti({
      data: img.data,
      shape: img.dataShape.slice(0, 3),
      affine: img.affine,
      datatype: img.datatype,
      sclSlope: sourceRescale.slope,
      sclInter: sourceRescale.intercept,
      description: 't3d cache entry source',
    });
  } catch (e) {
    return fallBack(`is unreadable (${(e as Error).message})`);
  }
}

/**
 * NIfTI bytes of an indexed volume's source: a cache entry (relative sources are inside `cacheDir`) as the scan
 * it was made from where that is still on disk, else at the cache grid; a NIfTI file or a DICOM series folder. A
 * source that is not on this machine (a PACS URL) or no longer exists is a 404.
 */
export async function sourceNifti(
  source: string,
  cacheDir: string | undefined,
  log: (line: string) => void = () => {},
): Promise<Uint8Array> {
  if (/^https?:\/\//.test(source))
    throw new ClientError(404, `the volume is stored on the PACS (${source}); the viewer shows local volumes only`);
  const path = isAbsolute(source) || !cacheDir ? source : join(cacheDir, source);
  if (!existsSync(path)) throw new ClientError(404, `the indexed volume's file ${source} no longer exists`);
  if (statSync(path).isDirectory()) return dicomNifti(path);
  if (path.endsWith('.safetensors')) return (await entrySourceNifti(path, log)) ?? cacheEntryNifti(path);
  return readFileSync(path);
}

async function dicomNifti(dir: string): Promise<Uint8Array> {
  const v = await readDicomVolume(dir);
  return encodeNifti({ data: v.data, shape: v.shape, affine: v.affine as Mat4, description: 't3d DICOM series' });
}

export interface UploadLimits extends UnzipLimits {
  /** the most seconds a zip may take to unpack */
  unzipSeconds: number;
}

/**
 * Unpacks `zip` into `dir` in a worker thread, terminated when it runs past the time budget; answers the bytes
 * written. The zip's bytes move to the worker (`zip` is unusable afterwards); on refusal what was written stays
 * for the caller to remove.
 */
async function unzipInWorker(zip: Uint8Array, dir: string, limits: UploadLimits): Promise<number> {
  // a Buffer of a few KiB shares Node's pool, which cannot be transferred: copy those
  const own = zip.byteOffset === 0 && zip.byteLength === zip.buffer.byteLength ? zip : zip.slice();
  const job: UnzipJob = { zip: own, dir, limits };
  const worker = new Worker(new URL('./unzip-worker.js', import.meta.url), {
    workerData: job,
    transferList: [own.buffer as ArrayBuffer],
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    const answer = await new Promise<UnzipAnswer>((resolve, reject) => {
      timer = setTimeout(
        () => reject(new ClientError(413, `the zip takes longer than ${limits.unzipSeconds} s to unpack`)),
        limits.unzipSeconds * 1000,
      );
      worker.once('message', resolve);
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`the unzip worker stopped with exit code ${code}`)));
    });
    if ('status' in answer) throw new ClientError(answer.status, answer.message);
    return answer.bytes;
  } finally {
    clearTimeout(timer);
    // resolves once the thread has stopped: nothing is written into `dir` after this
    await worker.terminate();
  }
}

/**
 * An upload's bytes → a scan in `dir` (a fresh folder the caller removes, also when this throws):
 * `scan.nii`/`scan.nii.gz`, or `series/` with the DICOM members of a zip; `bytes` is what it holds on disk.
 * A zip's bytes move to the unzip worker: `bytes` is unusable afterwards.
 */
export async function writeUpload(
  bytes: Uint8Array,
  dir: string,
  limits: UploadLimits,
): Promise<{ scan: string; kind: 'nifti' | 'dicom'; bytes: number }> {
  const u32 = (at: number) =>
    bytes.length >= at + 4 ? new DataView(bytes.buffer, bytes.byteOffset + at, 4).getUint32(0, true) : -1;
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    writeFileSync(join(dir, 'scan.nii.gz'), bytes);
    return { scan: join(dir, 'scan.nii.gz'), kind: 'nifti', bytes: bytes.length };
  }
  if (u32(0) === 348 || u32(0) === 540) {
    writeFileSync(join(dir, 'scan.nii'), bytes);
    return { scan: join(dir, 'scan.nii'), kind: 'nifti', bytes: bytes.length };
  }
  if (u32(0) !== 0x04034b50)
    throw new ClientError(400, 'the upload is neither a NIfTI file (.nii, .nii.gz) nor a zip of one DICOM series');
  const series = join(dir, 'series');
  mkdirSync(series);
  return { scan: series, kind: 'dicom', bytes: await unzipInWorker(bytes, series, limits) };
}

/** NIfTI bytes of an uploaded scan, for the viewer. */
export async function uploadNifti(u: { scan: string; kind: 'nifti' | 'dicom' }): Promise<Uint8Array> {
  return u.kind === 'nifti' ? readFileSync(u.scan) : dicomNifti(u.scan);
}
