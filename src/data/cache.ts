// The preprocessing cache: each source volume → HU → canonical orientation → clipped → resampled →
// cropped/padded to the preset → int16 in `volumes/<name>.safetensors` (+ uint8 mask), with one JSON
// entry per volume written last (durably), so an entry exists only for a complete file; the entry records the
// file's sha256, which the loader checks on every read. A rerun skips entries whose source hash is unchanged and
// whose file still matches its hash; failures go to quarantine.jsonl with the reason and never stop the run.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import * as torch from '../torch/index.js';
import { readNifti, type NiftiImage } from '../io/nifti.js';
import { WorkerPool } from '../util/pool.js';
import { preprocessImage } from './preprocess-image.js';
import { type ReadResult, type ReadTask, type StoredNifti, type WriteResult, type WriteTask } from './cache-worker.js';
import { type Preset } from './presets.js';
import { type Source, type SourceRecord } from './sources.js';
import { CenterCropOrPad, Orient, Resample, compose, needsRescale } from './transforms.js';
import { type Volume } from './volume.js';
import { hashFile, readJsonFile, removeStaleTemps, tryClaim, writeFileAtomic } from '../util/files.js';

export interface CacheEntry {
  name: string;
  file: string;
  split: string;
  /** (D, H, W) */
  shape: number[];
  /** (x, y, z) mm */
  spacing: number[];
  sourceHash: string;
  /** sha256 (hex) of the data file; absent in caches built before entries carried it */
  sha256?: string;
  labels: number[];
  report: string;
  hasMask: boolean;
  /** how stored values became HU, for the record */
  rescale: string;
  /** the source volume's absolute path (absent in caches built before entries carried it): the viewer shows that
   * scan at its own grid while it exists and still has `sourceHash` */
  sourcePath?: string;
  /** the source's stored (unscaled) values · slope + intercept = HU: the header's scaling and the metadata rescale */
  sourceRescale?: { slope: number; intercept: number };
}
export interface CacheIndex {
  preset: Preset;
  labelNames: string[];
  entries: CacheEntry[];
}

/** A NIfTI file's bytes → volume (HU as stored, after the header's scaling); `path` names it in errors. */
export async function loadVolume(path: string, bytes: Uint8Array, mode: 'image' | 'mask'): Promise<Volume> {
  return niftiVolume(await readNifti(bytes, { name: path, rejectNonFinite: mode === 'image' }), path);
}

/** A NIfTI image as read → volume; `path` names it in errors. */
export function niftiVolume(img: NiftiImage, path: string): Volume {
  const [x, y, z] = img.dataShape as [number, number, number];
  if (img.dataShape.length < 3 || Math.min(x, y, z) < 2)
    throw new Error(`${path}: need a 3D volume with ≥ 2 voxels per axis, got [${img.dataShape.join(', ')}]`);
  return {
    data: torch.tensor(img.data, [z, y, x]),
    spacing: [img.spacing[0]!, img.spacing[1]!, img.spacing[2]!],
    affine: img.affine,
  };
}

/** The header's scaling then the dataset's metadata rescale (when the stored values still need it), as one. */
function storedToHU(
  r: SourceRecord,
  img: StoredNifti,
  minValue: number,
): { slope: number; intercept: number; rescale: string } {
  if (r.rescale && needsRescale(minValue, r.rescale.intercept)) {
    return {
      slope: r.rescale.slope * img.slope,
      intercept: r.rescale.slope * img.intercept + r.rescale.intercept,
      rescale: `metadata slope ${r.rescale.slope}, intercept ${r.rescale.intercept}`,
    };
  }
  const rescale =
    r.rescale && r.rescale.intercept !== 0
      ? `metadata intercept ${r.rescale.intercept} skipped: values already HU (min ${minValue})`
      : 'none (HU in file)';
  return { slope: img.slope, intercept: img.intercept, rescale };
}

type EntryInfo = Omit<CacheEntry, 'name' | 'file' | 'split' | 'sourceHash' | 'labels' | 'report' | 'sha256'>;

/** A decoded source volume (and its mask) → the cache file's contents, as a task for a cache worker. */
async function processRecord(
  r: SourceRecord,
  img: StoredNifti,
  preset: Preset,
  outFile: string,
): Promise<{ info: EntryInfo; write: WriteTask }> {
  const [x, y, z] = img.shape;
  const stored = torch.tensor(img.data, [z, y, x]);
  const tensors = new Map<string, torch.Tensor>();
  let spacing: [number, number, number];
  let rescale: string;
  let sourceRescale: CacheEntry['sourceRescale'];
  try {
    if (stored.dtype.startsWith('float')) {
      const bad = torch.tidy(() => stored.numel - stored.isfinite().to('int64').sum().item());
      if (bad > 0) throw new Error(`${r.path}: ${bad} non-finite voxel${bad === 1 ? '' : 's'} (NaN/Inf)`);
    }
    // the range in the header's units (a negative slope swaps the ends)
    const ends = [stored.min().item(), stored.max().item()].map((v) => v * img.slope + img.intercept);
    const [minValue, maxValue] = [Math.min(...ends), Math.max(...ends)];
    if (maxValue - minValue < 50)
      throw new Error(`${r.path}: intensities span only ${minValue}..${maxValue}: not a CT volume`);
    const hu = storedToHU(r, img, minValue);
    rescale = hu.rescale;
    sourceRescale = { slope: hu.slope, intercept: hu.intercept };
    const image = preprocessImage({ data: stored, spacing: img.spacing, affine: img.affine }, preset, r.path, hu);
    tensors.set('image', image.data);
    spacing = image.spacing;
  } finally {
    stored.dispose();
  }
  try {
    if (r.maskPath) {
      const maskBytes = await readFile(r.maskPath);
      const m = compose(
        new Orient(),
        // a resized image's spacing is its own: the mask follows it onto the same grid
        new Resample(preset.geometry === 'resize' ? spacing : preset.spacing, 'nearest'),
        new CenterCropOrPad(preset.shape, 0),
      ).apply(await loadVolume(r.maskPath, maskBytes, 'mask'));
      tensors.set('mask', m.data.to('uint8'));
      m.data.dispose();
    }
    const list = [...tensors];
    const write: WriteTask = {
      kind: 'write',
      path: outFile,
      metadata: { preset: preset.name, spacing: JSON.stringify(spacing) },
      tensors: list.map(([name, t]) => ({ name, dtype: t.dtype === 'int16' ? 'I16' : 'U8', shape: t.shape })),
      data: list.map(([, t]) => t.toBytes()),
    };
    const source = { sourcePath: resolve(r.path), sourceRescale };
    return { info: { shape: preset.shape, spacing, hasMask: tensors.has('mask'), rescale, ...source }, write };
  } finally {
    torch.dispose([...tensors.values()]);
  }
}

export interface BuildResult {
  done: number;
  skipped: number;
  quarantined: { name: string; path: string; reason: string }[];
  /** records another process sharing the cache folder was working on (claimed) when this one reached them */
  elsewhere: number;
}

/**
 * Builds (or updates) a cache. Several processes may build the same cache folder at once, on one machine or
 * many sharing it: each volume is claimed by one of them (an exclusive `entries/<name>.claim` file), and every
 * process rewrites the index from the entries present when it finishes, so the last one to finish leaves it
 * complete. Reading and inflating the source files runs in `readers` worker threads, ahead of the main thread's
 * resampling by up to `prefetch` volumes.
 */
export async function buildCache(
  source: Source,
  preset: Preset,
  out: string,
  o: { prefetch?: number; readers?: number; onProgress?: (done: number, total: number, name: string) => void } = {},
): Promise<BuildResult> {
  const volDir = join(out, 'volumes');
  const entryDir = join(out, 'entries');
  mkdirSync(volDir, { recursive: true });
  mkdirSync(entryDir, { recursive: true });
  for (const d of [out, volDir, entryDir]) removeStaleTemps(d);
  const names = new Set<string>();
  for (const r of source.records) {
    if (names.has(r.name)) throw new Error(`${r.path}: volume name '${r.name}' appears twice in the source`);
    names.add(r.name);
  }
  const result: BuildResult = { done: 0, skipped: 0, quarantined: [], elsewhere: 0 };
  const quarantine = (r: SourceRecord, err: unknown) => {
    const reason = (err as Error).message;
    result.quarantined.push({
      name: r.name,
      path: r.path,
      reason: reason.startsWith(r.path) ? reason.slice(r.path.length + 2) : reason,
    });
  };
  const prefetch = Math.max(1, o.prefetch ?? 2);
  const script = new URL('./cache-worker.js', import.meta.url);
  const readers = new WorkerPool<ReadTask, ReadResult>(script, Math.min(prefetch, Math.max(1, o.readers ?? 1)));
  const writer = new WorkerPool<WriteTask, WriteResult>(script, 1);
  const paths = (r: SourceRecord) => ({
    entry: join(entryDir, `${r.name}.json`),
    claim: join(entryDir, `${r.name}.claim`),
    file: join('volumes', `${r.name}.safetensors`),
  });
  const previous = (r: SourceRecord): CacheEntry | undefined => {
    const { entry, file } = paths(r);
    return existsSync(entry) && existsSync(join(out, file)) ? readJsonFile<CacheEntry>(entry) : undefined;
  };
  // the last resampled volume's inflated bytes, handed back to a reader to inflate the next one into
  let spare: ArrayBuffer | undefined;
  // claimed and being read, by record index; undefined: another process holds the record
  const reads = new Map<number, Promise<ReadResult | Error> | undefined>();
  const startRead = (i: number) => {
    const r = source.records[i];
    if (!r || reads.has(i)) return;
    if (!tryClaim(paths(r).claim)) return void reads.set(i, undefined);
    // an entry without a data hash (older cache) is rebuilt, so its source is decoded whatever its hash
    const prev = previous(r);
    const task: ReadTask = { kind: 'read', path: r.path, knownHash: prev?.sha256 ? prev.sourceHash : undefined, spare };
    reads.set(
      i,
      readers.submit(task, spare ? [spare] : []).catch((e: Error) => e),
    );
    spare = undefined;
  };
  // one cache file is written (hashed, fsynced) by the writer while the next volume is resampled; its entry
  // follows once the file is durable, and only then is its claim released
  let writing: Promise<void> = Promise.resolve();
  try {
    for (let i = 0; i < source.records.length; i++) {
      for (let k = i; k < i + prefetch; k++) startRead(k);
      const r = source.records[i]!;
      const read = await reads.get(i);
      reads.delete(i);
      if (read === undefined) {
        result.elsewhere += 1;
        o.onProgress?.(i + 1, source.records.length, r.name);
        continue;
      }
      const { entry: entryPath, claim, file } = paths(r);
      let handed = false;
      try {
        if (read instanceof Error) throw read;
        const prev = previous(r);
        if (!read.data && prev?.sha256 && hashFile(join(out, file)).sha256 === prev.sha256) {
          result.skipped += 1;
        } else {
          rmSync(entryPath, { force: true });
          // the source matched its entry but the cache file did not: decode it now
          const img = (read.data ? read : await readers.submit({ kind: 'read', path: r.path })) as StoredNifti;
          const { info, write } = await processRecord(r, img, preset, join(out, file));
          spare = img.data.buffer as ArrayBuffer;
          await writing;
          const entry = (sha256: string): CacheEntry => ({
            name: r.name,
            file,
            split: r.split,
            sourceHash: read.sourceHash,
            labels: r.labels,
            report: r.report,
            ...info,
            sha256,
          });
          writing = writer
            .submit(
              write,
              write.data.map((d) => d.buffer as ArrayBuffer),
            )
            .then((w) => {
              writeFileAtomic(entryPath, JSON.stringify(entry(w.sha256)));
              result.done += 1;
            })
            .catch((err) => quarantine(r, err))
            .finally(() => rmSync(claim, { force: true }));
          handed = true;
        }
      } catch (err) {
        quarantine(r, err);
      } finally {
        if (!handed) rmSync(claim, { force: true });
      }
      o.onProgress?.(i + 1, source.records.length, r.name);
    }
    await writing;
  } finally {
    // claims taken for reads that never ran (an error above) are released with their reads
    for (const [i, p] of reads)
      if (p) {
        await p;
        rmSync(paths(source.records[i]!).claim, { force: true });
      }
    await writing.catch(() => undefined);
    await Promise.all([readers.close(), writer.close()]);
  }
  const entries = readdirSync(entryDir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => readJsonFile<CacheEntry>(join(entryDir, f)))
    .filter((e) => names.has(e.name));
  writeFileAtomic(
    join(out, 'index.jsonl'),
    entries.map((e) => JSON.stringify(e)).join('\n') + (entries.length ? '\n' : ''),
  );
  writeFileAtomic(
    join(out, 'cache.json'),
    JSON.stringify({ preset, labelNames: source.labelNames, count: entries.length }, null, 2) + '\n',
  );
  writeFileAtomic(
    join(out, 'quarantine.jsonl'),
    result.quarantined.map((q) => JSON.stringify(q)).join('\n') + (result.quarantined.length ? '\n' : ''),
  );
  return result;
}

/** Reads a built cache's index. */
export function readCacheIndex(dir: string): CacheIndex {
  const meta = join(dir, 'cache.json');
  if (!existsSync(meta))
    throw new Error(`${dir}: not a preprocessed cache (no cache.json); build one with \`t3d preprocess\``);
  const info = readJsonFile<{ preset: Preset; labelNames: string[] }>(meta);
  const index = join(dir, 'index.jsonl');
  const lines = readFileSync(index, 'utf8')
    .split('\n')
    .filter((l) => l.trim());
  const entries = lines.map((l, i) => {
    try {
      return JSON.parse(l) as CacheEntry;
    } catch (e) {
      throw new Error(`${index}: line ${i + 1} is not valid JSON (${(e as Error).message})`);
    }
  });
  return { preset: info.preset, labelNames: info.labelNames, entries };
}
