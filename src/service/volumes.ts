// What the web viewer shows and what it accepts: an indexed volume's source (a cache entry, a NIfTI file, a DICOM
// series folder) as NIfTI bytes for the browser, and an uploaded file (.nii, .nii.gz, or a zipped DICOM series)
// as a scan on disk for the analyzer. Archive member names are never used as paths (no zip-slip): members are
// written as numbered files into a fresh temporary folder.
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { unzipSync } from 'fflate';
import { readCachedTensors } from '../data/cache-read.js';
import { type Preset } from '../data/presets.js';
import { type Mat4 } from '../io/nifti.js';
import { encodeNifti } from '../io/nifti-write.js';
import { readDicomVolume } from '../io/dicom.js';
import { readJsonFile } from '../util/files.js';

/** A request the client got wrong: the server answers it with this status and message. */
export class ClientError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

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

/**
 * NIfTI bytes of an indexed volume's source: a cache entry (relative sources are inside `cacheDir`), a NIfTI file
 * or a DICOM series folder. A source that is not on this machine (a PACS URL) or no longer exists is a 404.
 */
export async function sourceNifti(source: string, cacheDir: string | undefined): Promise<Uint8Array> {
  if (/^https?:\/\//.test(source))
    throw new ClientError(404, `the volume is stored on the PACS (${source}); the viewer shows local volumes only`);
  const path = isAbsolute(source) || !cacheDir ? source : join(cacheDir, source);
  if (!existsSync(path)) throw new ClientError(404, `the indexed volume's file ${source} no longer exists`);
  if (statSync(path).isDirectory()) return dicomNifti(path);
  if (path.endsWith('.safetensors')) return cacheEntryNifti(path);
  return readFileSync(path);
}

async function dicomNifti(dir: string): Promise<Uint8Array> {
  const v = await readDicomVolume(dir);
  return encodeNifti({ data: v.data, shape: v.shape, affine: v.affine as Mat4, description: 't3d DICOM series' });
}

/**
 * An upload's bytes → a scan in `dir` (a fresh folder the caller removes): `scan.nii`/`scan.nii.gz`, or
 * `series/` with the DICOM members of a zip. `maxUnzipped` caps the zip's total uncompressed size.
 */
export function writeUpload(
  bytes: Uint8Array,
  dir: string,
  maxUnzipped: number,
): { scan: string; kind: 'nifti' | 'dicom' } {
  const u32 = (at: number) =>
    bytes.length >= at + 4 ? new DataView(bytes.buffer, bytes.byteOffset + at, 4).getUint32(0, true) : -1;
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    writeFileSync(join(dir, 'scan.nii.gz'), bytes);
    return { scan: join(dir, 'scan.nii.gz'), kind: 'nifti' };
  }
  if (u32(0) === 348 || u32(0) === 540) {
    writeFileSync(join(dir, 'scan.nii'), bytes);
    return { scan: join(dir, 'scan.nii'), kind: 'nifti' };
  }
  if (u32(0) !== 0x04034b50)
    throw new ClientError(400, 'the upload is neither a NIfTI file (.nii, .nii.gz) nor a zip of one DICOM series');
  let total = 0;
  let members: Record<string, Uint8Array>;
  try {
    members = unzipSync(bytes, {
      filter: (f) => {
        if (f.name.endsWith('/') || /(^|\/)(__MACOSX|\.)/.test(f.name)) return false;
        total += f.originalSize;
        if (total > maxUnzipped)
          throw new ClientError(413, `the zip unpacks to more than ${Math.round(maxUnzipped / 2 ** 20)} MiB`);
        return true;
      },
    });
  } catch (e) {
    if (e instanceof ClientError) throw e;
    throw new ClientError(400, `the zip cannot be read: ${(e as Error).message}`);
  }
  const files = Object.values(members);
  if (files.length === 0) throw new ClientError(400, 'the zip holds no files');
  const series = join(dir, 'series');
  mkdirSync(series);
  files.forEach((m, i) => writeFileSync(join(series, `${String(i + 1).padStart(5, '0')}.dcm`), m));
  return { scan: series, kind: 'dicom' };
}

/** NIfTI bytes of an uploaded scan, for the viewer. */
export async function uploadNifti(u: { scan: string; kind: 'nifti' | 'dicom' }): Promise<Uint8Array> {
  return u.kind === 'nifti' ? readFileSync(u.scan) : dicomNifti(u.scan);
}
