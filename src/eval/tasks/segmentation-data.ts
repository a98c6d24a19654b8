// The training data of the segmentation task: cached image + mask pairs (read once, kept in memory up to a
// budget), the seeded subset of training volumes whose masks are used, and the random patches of an epoch.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type CacheEntry } from '../../data/cache.js';
import { readCachedTensors } from '../../data/cache-read.js';
import { intensityMap, rangeOf, type Intensity, type IntensityMap } from '../../data/views.js';
import { Rng } from '../../util/rng.js';
import { readJsonFile } from '../../util/files.js';

export type Triple = [number, number, number];

export interface CaseData {
  image: Int16Array;
  mask: Uint8Array;
  shape: Triple;
  /** the image's smallest and largest HU */
  range: [number, number];
}

/** How cached HU become model inputs: the preset's scale, padding value (HU / scale) and intensity. */
export interface InputSettings {
  scale: number;
  padValue: number;
  intensity: Intensity;
}

/** The case's HU / scale → model inputs, by the transform the pre-training views and the analyzer use. */
function inputMap(c: CaseData, o: InputSettings): IntensityMap {
  return intensityMap(o.intensity, o.scale, () => [c.range[0] / o.scale, c.range[1] / o.scale]);
}

/** A whole case as model input (D, H, W), and the padding value in the same units, for sliding-window inference. */
export function caseInput(c: CaseData, o: InputSettings): { volume: Float32Array; padValue: number } {
  const { sub, div } = inputMap(c, o);
  const volume = new Float32Array(c.image.length);
  for (let v = 0; v < volume.length; v++) volume[v] = (c.image[v]! / o.scale - sub) / div;
  return { volume, padValue: (o.padValue - sub) / div };
}

/** Reads cached image + mask pairs, keeping decoded volumes in memory up to a byte budget. */
export class VolumeReader {
  private readonly kept = new Map<string, CaseData>();
  private bytes = 0;
  constructor(
    private readonly cacheDir: string,
    private readonly budget = 1 << 30,
  ) {}
  read(e: CacheEntry): CaseData {
    const hit = this.kept.get(e.name);
    if (hit) return hit;
    const file = join(this.cacheDir, e.file);
    const t = readCachedTensors(file, e.sha256, ['image', 'mask']);
    const img = t.get('image')!,
      msk = t.get('mask')!;
    if (img.dtype !== 'I16' || msk.dtype !== 'U8' || img.shape.length !== 3 || img.shape.join() !== msk.shape.join()) {
      throw new Error(
        `${file}: expected an int16 image and a uint8 mask of one (D, H, W) shape, ` +
          `found ${img.dtype} [${img.shape.join(', ')}] and ${msk.dtype} [${msk.shape.join(', ')}]`,
      );
    }
    const image = new Int16Array(img.bytes.buffer, img.bytes.byteOffset, img.bytes.byteLength / 2);
    const c: CaseData = { image, mask: msk.bytes, shape: img.shape as Triple, range: rangeOf(image) };
    const size = img.bytes.byteLength + msk.bytes.byteLength;
    if (this.bytes + size <= this.budget) {
      this.kept.set(e.name, c);
      this.bytes += size;
    }
    return c;
  }
}

/**
 * Crops (or pads: image with the padding value, mask with background) a patch starting at `start` (may be
 * negative), as model input.
 */
function cropPatch(
  c: CaseData,
  start: Triple,
  patch: Triple,
  o: InputSettings,
  image: Float32Array,
  mask: Uint8Array,
  offset: number,
): void {
  const { sub, div } = inputMap(c, o);
  const pad = (o.padValue - sub) / div;
  const [D, H, W] = c.shape;
  const [pd, ph, pw] = patch;
  let at = offset;
  for (let z = 0; z < pd; z++) {
    const sz = start[0] + z;
    for (let y = 0; y < ph; y++) {
      const sy = start[1] + y;
      for (let x = 0; x < pw; x++, at++) {
        const sx = start[2] + x;
        if (sz < 0 || sy < 0 || sx < 0 || sz >= D || sy >= H || sx >= W) {
          image[at] = pad;
          mask[at] = 0;
          continue;
        }
        const i = (sz * H + sy) * W + sx;
        image[at] = (c.image[i]! / o.scale - sub) / div;
        mask[at] = c.mask[i]!;
      }
    }
  }
}

/** A random crop corner; an axis shorter than the patch is centred (padded on both sides). */
function randomStart(shape: Triple, patch: Triple, rng: Rng): Triple {
  return shape.map((n, a) => (n >= patch[a]! ? rng.int(0, n - patch[a]!) : -Math.floor((patch[a]! - n) / 2))) as Triple;
}

/** Seeded subset of the training volumes whose masks are used; fixed in outDir/mask-subset.json. */
export function maskSubset(
  train: CacheEntry[],
  o: { maskFraction: number; seed: number; outDir?: string },
): CacheEntry[] {
  const n = Math.max(1, Math.round(o.maskFraction * train.length));
  const order = train.map((e) => e.name).sort();
  new Rng(o.seed, 0x5e9).shuffle(order);
  const names = order.slice(0, n).sort();
  if (o.outDir) {
    const path = join(o.outDir, 'mask-subset.json');
    if (existsSync(path)) {
      const saved = readJsonFile<{ names: string[] }>(path);
      if (saved.names.join('\n') !== names.join('\n')) {
        throw new Error(
          `${path}: the saved mask subset differs from the one maskFraction ${o.maskFraction} and seed ${o.seed} ` +
            'give for this cache; use another outDir',
        );
      }
    } else {
      writeFileSync(
        path,
        JSON.stringify({ maskFraction: o.maskFraction, seed: o.seed, of: train.length, names }, null, 2) + '\n',
      );
    }
  }
  const byName = new Map(train.map((e) => [e.name, e]));
  return names.map((nm) => byName.get(nm)!);
}

/** A training batch: `n` patches, image (model input, see caseInput) and mask, each (n, D, H, W) flat. */
export interface PatchBatch {
  n: number;
  image: Float32Array;
  mask: Uint8Array;
}

/**
 * The batches of one epoch: every volume of `subset` `perVolume` times, in a seeded order, each a random crop
 * whose corner is a function of (seed, epoch, position in the epoch).
 */
export function* patchBatches(
  reader: VolumeReader,
  subset: CacheEntry[],
  o: { seed: number; batchSize: number; patch: Triple; perVolume: number } & InputSettings,
  epoch: number,
): Generator<PatchBatch> {
  const { patch } = o;
  const nPatch = patch[0] * patch[1] * patch[2];
  const rng = new Rng(o.seed, 0xe90c, epoch);
  const order = rng.shuffle(Array.from({ length: subset.length * o.perVolume }, (_, i) => i % subset.length));
  for (let b = 0; b < order.length; b += o.batchSize) {
    const items = order.slice(b, b + o.batchSize);
    const image = new Float32Array(items.length * nPatch);
    const mask = new Uint8Array(items.length * nPatch);
    items.forEach((vi, k) => {
      const c = reader.read(subset[vi]!);
      const start = randomStart(c.shape, patch, new Rng(o.seed, epoch, b + k));
      cropPatch(c, start, patch, o, image, mask, k * nPatch);
    });
    yield { n: items.length, image, mask };
  }
}
