// The preprocessing cache: each source volume → HU → canonical orientation → clipped → resampled →
// cropped/padded to the preset → int16 in `volumes/<name>.safetensors` (+ uint8 mask), with one JSON
// entry per volume written last (durably), so an entry exists only for a complete file; the entry records the
// file's sha256, which the loader checks on every read. A rerun skips entries whose source hash is unchanged and
// whose file still matches its hash; failures go to quarantine.jsonl with the reason and never stop the run.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as torch from '../torch/index.js';
import { readNifti } from '../io/nifti.js';
import { type Preset } from './presets.js';
import { type Source, type SourceRecord } from './sources.js';
import { CenterCropOrPad, ClipHU, Orient, RescaleHU, Resample, compose, needsRescale } from './transforms.js';
import { type Volume } from './volume.js';
import { hashFile, readJsonFile, removeStaleTemps, writeFileAtomic } from '../util/files.js';

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
}
export interface CacheIndex { preset: Preset; labelNames: string[]; entries: CacheEntry[] }

/** A NIfTI file's bytes → volume (HU as stored, after the header's scaling); `path` names it in errors. */
export async function loadVolume(path: string, bytes: Uint8Array, mode: 'image' | 'mask'): Promise<Volume> {
  const img = await readNifti(bytes, { name: path, rejectNonFinite: mode === 'image' });
  const [x, y, z] = img.dataShape as [number, number, number];
  if (img.dataShape.length < 3 || Math.min(x, y, z) < 2) throw new Error(`${path}: need a 3D volume with ≥ 2 voxels per axis, got [${img.dataShape.join(', ')}]`);
  return { data: torch.tensor(img.data, [z, y, x]), spacing: [img.spacing[0]!, img.spacing[1]!, img.spacing[2]!], affine: img.affine };
}

/** HU volume → the preset's canonical orientation, HU window, spacing and shape (what the cache stores, before int16). */
export function preprocessImage(vol: Volume, preset: Preset, name: string): Volume {
  const [lo, hi] = preset.huWindow;
  const image = compose(new Orient(), new ClipHU(lo, hi), new Resample(preset.spacing), new CenterCropOrPad(preset.shape, lo)).apply(vol);
  if (image.data.shape.join() !== preset.shape.join()) throw new Error(`${name}: internal: preprocessed shape [${image.data.shape.join(', ')}] is not the preset's [${preset.shape.join(', ')}]`);
  return image;
}

async function processRecord(r: SourceRecord, bytes: Uint8Array, preset: Preset, outFile: string): Promise<Omit<CacheEntry, 'name' | 'file' | 'split' | 'sourceHash' | 'labels' | 'report'> & { sha256: string }> {
  let vol = await loadVolume(r.path, bytes, 'image');
  const minStored = vol.data.min().item();
  const maxStored = vol.data.max().item();
  if (maxStored - minStored < 50) throw new Error(`${r.path}: intensities span only ${minStored}..${maxStored}: not a CT volume`);
  let rescale = 'none (HU in file)';
  if (r.rescale && needsRescale(minStored, r.rescale.intercept)) {
    vol = new RescaleHU(r.rescale.slope, r.rescale.intercept).apply(vol);
    rescale = `metadata slope ${r.rescale.slope}, intercept ${r.rescale.intercept}`;
  } else if (r.rescale && r.rescale.intercept !== 0) {
    rescale = `metadata intercept ${r.rescale.intercept} skipped: values already HU (min ${minStored})`;
  }
  const image = preprocessImage(vol, preset, r.path);
  const tensors = new Map<string, torch.Tensor>([['image', torch.tidy(() => image.data.round().to('int16'))]]);
  image.data.dispose();
  if (r.maskPath) {
    const maskBytes = await readFile(r.maskPath);
    const m = compose(new Orient(), new Resample(preset.spacing, 'nearest'), new CenterCropOrPad(preset.shape, 0)).apply(await loadVolume(r.maskPath, maskBytes, 'mask'));
    tensors.set('mask', m.data.to('uint8'));
    m.data.dispose();
  }
  let sha256: string;
  try {
    sha256 = torch.saveSafetensors(outFile, tensors, { preset: preset.name, spacing: JSON.stringify(image.spacing) }).sha256;
  } finally {
    torch.dispose([...tensors.values()]);
  }
  return { shape: preset.shape, spacing: image.spacing, hasMask: tensors.has('mask'), rescale, sha256 };
}

export interface BuildResult { done: number; skipped: number; quarantined: { name: string; path: string; reason: string }[] }

export async function buildCache(
  source: Source, preset: Preset, out: string,
  o: { prefetch?: number; onProgress?: (done: number, total: number, name: string) => void } = {},
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
  const result: BuildResult = { done: 0, skipped: 0, quarantined: [] };
  // Reads (and their async gunzip) run ahead of processing, bounded so RAM holds only a few volumes.
  const prefetch = Math.max(1, o.prefetch ?? 2);
  const reads = new Map<number, Promise<Uint8Array | Error>>();
  const startRead = (i: number) => {
    const r = source.records[i];
    if (r && !reads.has(i)) reads.set(i, readFile(r.path).then((b) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength), (e: Error) => e));
  };
  for (let i = 0; i < source.records.length; i++) {
    for (let k = i; k < i + prefetch; k++) startRead(k);
    const r = source.records[i]!;
    const bytes = await reads.get(i)!;
    reads.delete(i);
    const entryPath = join(entryDir, `${r.name}.json`);
    const file = join('volumes', `${r.name}.safetensors`);
    try {
      if (bytes instanceof Error) throw new Error(`${r.path}: unreadable (${bytes.message})`);
      const sourceHash = createHash('sha256').update(bytes).digest('hex').slice(0, 32);
      if (existsSync(entryPath) && existsSync(join(out, file))) {
        const prev = readJsonFile<CacheEntry>(entryPath);
        // an entry without a data hash (older cache) or whose file no longer matches it is rebuilt
        if (prev.sourceHash === sourceHash && prev.sha256 && hashFile(join(out, file)).sha256 === prev.sha256) {
          result.skipped += 1;
          o.onProgress?.(i + 1, source.records.length, r.name);
          continue;
        }
      }
      rmSync(entryPath, { force: true });
      const info = await processRecord(r, bytes, preset, join(out, file));
      const entry: CacheEntry = { name: r.name, file, split: r.split, sourceHash, labels: r.labels, report: r.report, ...info };
      writeFileAtomic(entryPath, JSON.stringify(entry));
      result.done += 1;
    } catch (err) {
      const reason = (err as Error).message;
      result.quarantined.push({ name: r.name, path: r.path, reason: reason.startsWith(r.path) ? reason.slice(r.path.length + 2) : reason });
    }
    o.onProgress?.(i + 1, source.records.length, r.name);
  }
  const entries = readdirSync(entryDir).filter((f) => f.endsWith('.json')).sort()
    .map((f) => readJsonFile<CacheEntry>(join(entryDir, f)))
    .filter((e) => names.has(e.name));
  writeFileAtomic(join(out, 'index.jsonl'), entries.map((e) => JSON.stringify(e)).join('\n') + (entries.length ? '\n' : ''));
  writeFileAtomic(join(out, 'cache.json'), JSON.stringify({ preset, labelNames: source.labelNames, count: entries.length }, null, 2) + '\n');
  writeFileAtomic(join(out, 'quarantine.jsonl'), result.quarantined.map((q) => JSON.stringify(q)).join('\n') + (result.quarantined.length ? '\n' : ''));
  return result;
}

/** Reads a built cache's index. */
export function readCacheIndex(dir: string): CacheIndex {
  const meta = join(dir, 'cache.json');
  if (!existsSync(meta)) throw new Error(`${dir}: not a preprocessed cache (no cache.json); build one with \`t3d preprocess\``);
  const info = readJsonFile<{ preset: Preset; labelNames: string[] }>(meta);
  const index = join(dir, 'index.jsonl');
  const lines = readFileSync(index, 'utf8').split('\n').filter((l) => l.trim());
  const entries = lines.map((l, i) => {
    try { return JSON.parse(l) as CacheEntry; } catch (e) { throw new Error(`${index}: line ${i + 1} is not valid JSON (${(e as Error).message})`); }
  });
  return { preset: info.preset, labelNames: info.labelNames, entries };
}
