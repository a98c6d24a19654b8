// T3D's views of one volume (docs/ARCHITECTURE.md §4): a global view (the whole cached volume, downsampled to the
// global shape when the cache is finer, light intensity augmentation) and V local views, each with its own flips /
// intensity / noise / optional in-plane rotation. Local views are either crops of the global view covering a
// fraction of each axis, resized (single resolution), or crops of the cache at its own resolution (multi-
// resolution: they show detail the global view cannot). Pure TypeScript on typed arrays so it runs in loader
// worker threads; deterministic given the Rng.
import { Rng } from '../util/rng.js';
import { LOBES, type Region } from '../text/regions.js';
import { lobeCentre, lungBoxes } from './lobes.js';

export type Shape3 = [number, number, number];

export interface ViewConfig {
  /** number of local views V */
  numLocal: number;
  /** fraction of each axis a local crop covers, [min, max] */
  localScale: [number, number];
  /** output shape of local views (D, H, W); default half the global shape */
  localShape?: Shape3;
  /**
   * 'global': crops of the global view covering localScale of each axis, resized to localShape (one resolution).
   * 'cache': crops of exactly localShape voxels of the cache at its own resolution (no resampling; localScale unused).
   */
  localSource?: 'global' | 'cache';
  /**
   * Where local crops are centred: 'uniform' (default: anywhere a crop fits) or 'foreground' (on a voxel drawn
   * uniformly from the segmentation mask's organs, class > 0, the crop shifted to fit inside the volume), so that
   * crops show the anatomy findings sit in rather than air, table or body wall. Needs masks in the cache (the
   * synthetic set has them); a volume whose mask is empty falls back to 'uniform'. 'report': each crop centred near
   * a lobe the volume's report names (data/lobes.ts, jittered), one drawn per crop, so that a crop holds the finding
   * a sentence describes; a report that names none falls back to 'foreground'. 'lobes': crop k on the fixed centre
   * of lobe k mod 5 (right upper, middle, lower, left upper, lower), no jitter: the crop-scale readout's crops.
   */
  localAnchor?: 'uniform' | 'foreground' | 'report' | 'lobes';
  /** probability of flipping each axis of a local view (the global view is never flipped: reports name sides) */
  flipProb: number;
  /** multiplicative intensity factor range */
  intensityScale: [number, number];
  /** additive intensity shift range (normalised units) */
  intensityShift: [number, number];
  /** Gaussian noise std (normalised units) */
  noiseStd: number;
  /** max in-plane rotation of local views, degrees (0 = off) */
  rotateDeg: number;
  /** augment the global view's intensity too */
  globalIntensity: boolean;
}

export const DEFAULT_VIEWS: ViewConfig = {
  numLocal: 4,
  localScale: [0.3, 0.7],
  flipProb: 0.5,
  intensityScale: [0.9, 1.1],
  intensityShift: [-0.05, 0.05],
  noiseStd: 0.02,
  rotateDeg: 0,
  globalIntensity: true,
};

/**
 * The crop-scale readout's views: one crop of `shape` voxels at the cache's resolution on the fixed centre of each of
 * the five lobes, without augmentation, so every arm is read out on exactly the same crops.
 */
export const lobeCropViews = (shape: Shape3): Partial<ViewConfig> => ({
  numLocal: LOBES.length,
  localSource: 'cache',
  localShape: shape,
  localAnchor: 'lobes',
  flipProb: 0,
  intensityScale: [1, 1],
  intensityShift: [0, 0],
  noiseStd: 0,
  rotateDeg: 0,
  globalIntensity: false,
});

/** A crop box in source voxels (start and size per axis, D/H/W order) plus in-plane rotation. */
export interface Box {
  start: Shape3;
  size: Shape3;
  rotateRad: number;
  flip: [boolean, boolean, boolean];
}

/**
 * Trilinear resampling of `box` of src (D×H×W, normalised values) onto outShape, with align_corners=False
 * sampling (like F.interpolate) and `pad` outside the source.
 */
export function sampleBox(
  src: ArrayLike<number>,
  shape: Shape3,
  box: Box,
  out: Shape3,
  scale: number,
  pad: number,
): Float32Array {
  const [D, H, W] = shape;
  const [od, oh, ow] = out;
  const f = box.size[0] / od;
  const aligned =
    box.rotateRad === 0 &&
    (f === 1 || f === 2) &&
    [0, 1, 2].every(
      (i) =>
        box.size[i] === f * out[i]! &&
        Number.isInteger(box.start[i]) &&
        box.start[i]! >= 0 &&
        box.start[i]! + box.size[i]! <= shape[i]!,
    );
  if (aligned) return alignedBox(src, shape, box, out, f, scale);
  const res = new Float32Array(od * oh * ow);
  const fz = box.size[0] / od,
    fy = box.size[1] / oh,
    fx = box.size[2] / ow;
  const cy = box.start[1] + box.size[1] / 2 - 0.5,
    cx = box.start[2] + box.size[2] / 2 - 0.5;
  const cos = Math.cos(box.rotateRad),
    sin = Math.sin(box.rotateRad);
  const HW = H * W;
  const at = (z: number, y: number, x: number) =>
    z < 0 || y < 0 || x < 0 || z >= D || y >= H || x >= W ? pad : src[z * HW + y * W + x]! / scale;
  let o = 0;
  for (let a = 0; a < od; a++) {
    const ai = box.flip[0] ? od - 1 - a : a;
    const z = box.start[0] + (ai + 0.5) * fz - 0.5;
    const z0 = Math.floor(z),
      tz = z - z0;
    for (let b = 0; b < oh; b++) {
      const bi = box.flip[1] ? oh - 1 - b : b;
      const yl = box.start[1] + (bi + 0.5) * fy - 0.5;
      for (let c = 0; c < ow; c++) {
        const ci = box.flip[2] ? ow - 1 - c : c;
        const xl = box.start[2] + (ci + 0.5) * fx - 0.5;
        // rotate (y, x) about the crop centre
        const y = cy + (yl - cy) * cos - (xl - cx) * sin;
        const x = cx + (yl - cy) * sin + (xl - cx) * cos;
        const y0 = Math.floor(y),
          x0 = Math.floor(x),
          ty = y - y0,
          tx = x - x0;
        // Inside the volume, clamp to the border like align_corners=False interpolation does.
        const zc0 = Math.min(Math.max(z0, 0), D - 1),
          zc1 = Math.min(Math.max(z0 + 1, 0), D - 1);
        const inPlane = y > -1 && y < H && x > -1 && x < W;
        const yc0 = inPlane ? Math.min(Math.max(y0, 0), H - 1) : y0,
          yc1 = inPlane ? Math.min(Math.max(y0 + 1, 0), H - 1) : y0 + 1;
        const xc0 = inPlane ? Math.min(Math.max(x0, 0), W - 1) : x0,
          xc1 = inPlane ? Math.min(Math.max(x0 + 1, 0), W - 1) : x0 + 1;
        const v00 = at(zc0, yc0, xc0) * (1 - tx) + at(zc0, yc0, xc1) * tx;
        const v01 = at(zc0, yc1, xc0) * (1 - tx) + at(zc0, yc1, xc1) * tx;
        const v10 = at(zc1, yc0, xc0) * (1 - tx) + at(zc1, yc0, xc1) * tx;
        const v11 = at(zc1, yc1, xc0) * (1 - tx) + at(zc1, yc1, xc1) * tx;
        res[o++] = (v00 * (1 - ty) + v01 * ty) * (1 - tz) + (v10 * (1 - ty) + v11 * ty) * tz;
      }
    }
  }
  return res;
}

/**
 * sampleBox for an unrotated box inside the volume at 1 or 2 source voxels per output voxel (native crops and the 2×
 * downsampled global view): the sample points fall on voxels (f = 1) or midway between them (f = 2, the mean of each
 * 2×2×2 block), so the general interpolation reduces to copying or to this arithmetic, in the same order and with the
 * same float results, several times faster.
 */
function alignedBox(
  src: ArrayLike<number>,
  shape: Shape3,
  box: Box,
  out: Shape3,
  f: 1 | 2,
  scale: number,
): Float32Array {
  const [, H, W] = shape;
  const [od, oh, ow] = out;
  const res = new Float32Array(od * oh * ow);
  const HW = H * W;
  const xs = new Int32Array(ow);
  for (let c = 0; c < ow; c++) xs[c] = box.start[2] + f * (box.flip[2] ? ow - 1 - c : c);
  let o = 0;
  for (let a = 0; a < od; a++) {
    const z = box.start[0] + f * (box.flip[0] ? od - 1 - a : a);
    for (let b = 0; b < oh; b++) {
      const row = z * HW + (box.start[1] + f * (box.flip[1] ? oh - 1 - b : b)) * W;
      if (f === 1) {
        for (let c = 0; c < ow; c++) res[o++] = src[row + xs[c]!]! / scale;
        continue;
      }
      for (let c = 0; c < ow; c++) {
        const i = row + xs[c]!;
        const v00 = (src[i]! / scale) * 0.5 + (src[i + 1]! / scale) * 0.5;
        const v01 = (src[i + W]! / scale) * 0.5 + (src[i + W + 1]! / scale) * 0.5;
        const v10 = (src[i + HW]! / scale) * 0.5 + (src[i + HW + 1]! / scale) * 0.5;
        const v11 = (src[i + HW + W]! / scale) * 0.5 + (src[i + HW + W + 1]! / scale) * 0.5;
        res[o++] = (v00 * 0.5 + v01 * 0.5) * 0.5 + (v10 * 0.5 + v11 * 0.5) * 0.5;
      }
    }
  }
  return res;
}

function augmentIntensity(x: Float32Array, cfg: ViewConfig, rng: Rng): void {
  const s = rng.uniform(cfg.intensityScale[0], cfg.intensityScale[1]);
  const t = rng.uniform(cfg.intensityShift[0], cfg.intensityShift[1]);
  for (let i = 0; i < x.length; i++) x[i] = x[i]! * s + t + (cfg.noiseStd > 0 ? rng.normal(0, cfg.noiseStd) : 0);
}

/** A random crop box: `fixed` voxels per axis, or a random fraction (localScale) of each axis; centred on `centre`
 * (voxel coordinates, shifted to fit) when given, else placed uniformly. */
export function localBox(shape: Shape3, cfg: ViewConfig, rng: Rng, fixed?: Shape3, centre?: Shape3): Box {
  const size = fixed
    ? (shape.map((n, i) => Math.min(n, fixed[i]!)) as Shape3)
    : (shape.map((n) => Math.max(2, Math.round(n * rng.uniform(cfg.localScale[0], cfg.localScale[1])))) as Shape3);
  const start = shape.map((n, i) =>
    centre
      ? Math.min(Math.max(Math.round(centre[i]! + 0.5 - size[i]! / 2), 0), n - size[i]!)
      : rng.int(0, n - size[i]!),
  ) as Shape3;
  return {
    start,
    size,
    rotateRad: cfg.rotateDeg > 0 ? (rng.uniform(-cfg.rotateDeg, cfg.rotateDeg) * Math.PI) / 180 : 0,
    flip: [rng.bool(cfg.flipProb), rng.bool(cfg.flipProb), rng.bool(cfg.flipProb)],
  };
}

export interface Views {
  global: Float32Array;
  locals: Float32Array[];
  boxes: Box[];
}

/** `k` voxels (D/H/W coordinates) drawn uniformly, with replacement, from the mask's foreground (class > 0);
 * undefined when the mask has none. */
export function foregroundVoxels(mask: ArrayLike<number>, shape: Shape3, k: number, rng: Rng): Shape3[] | undefined {
  let count = 0;
  for (let i = 0; i < mask.length; i++) if (mask[i]! > 0) count++;
  if (count === 0) return undefined;
  const ranks = Array.from({ length: k }, () => rng.int(0, count - 1));
  const order = ranks.map((r, j) => [r, j] as const).sort((a, b) => a[0] - b[0]);
  const out: Shape3[] = new Array(k);
  const HW = shape[1] * shape[2];
  let seen = -1,
    o = 0;
  for (let i = 0; i < mask.length && o < k; i++) {
    if (!(mask[i]! > 0)) continue;
    seen++;
    while (o < k && order[o]![0] === seen)
      out[order[o++]![1]] = [Math.floor(i / HW), Math.floor((i % HW) / shape[2]), i % shape[2]];
  }
  return out;
}

const half = (s: Shape3): Shape3 => s.map((n) => Math.max(1, Math.round(n / 2))) as Shape3;
const whole = (shape: Shape3): Box => ({ start: [0, 0, 0], size: shape, rotateRad: 0, flip: [false, false, false] });

/**
 * How cached HU become model inputs (a preset's `intensity`): divided by the scale, then min–max to [0, 1], or the
 * HU window (in the same scaled units) mapped linearly onto [0, 1] (`{ window }`), or neither.
 */
export type Intensity = 'scale' | 'minmax' | { window: [number, number] };

/** The preset's intensity as the views apply it ('window' carries the preset's HU window). */
export const intensityOf = (p: { intensity?: 'scale' | 'minmax' | 'window'; huWindow: [number, number] }): Intensity =>
  p.intensity === 'window' ? { window: p.huWindow } : (p.intensity ?? 'scale');

/**
 * The un-augmented global view of a cached volume (int16 HU) of `shape`, normalised by `scale`: the volume
 * itself, or, when `globalShape` is smaller, the whole volume resampled to it (trilinear, align_corners=False,
 * as F.interpolate; at a factor of 2 per axis that is the mean of each 2×2×2 block). With `minmax`, the view
 * is then rescaled from its own minimum and maximum to [0, 1] (all zeros for a constant volume).
 */
export function globalView(
  hu: ArrayLike<number>,
  shape: Shape3,
  globalShape: Shape3,
  scale: number,
  pad: number,
  intensity: Intensity = 'scale',
): Float32Array {
  let g: Float32Array;
  if (globalShape.join() !== shape.join()) g = sampleBox(hu, shape, whole(shape), globalShape, scale, pad);
  else {
    g = new Float32Array(hu.length);
    for (let i = 0; i < hu.length; i++) g[i] = hu[i]! / scale;
  }
  if (intensity !== 'scale') {
    const { sub, div } = intensityMap(intensity, scale, () => rangeOf(g));
    for (let i = 0; i < g.length; i++) g[i] = (g[i]! - sub) / div;
  }
  return g;
}

/** A linear map of values already divided by the preset's `scale` onto model inputs: (v − sub) / div. */
export interface IntensityMap {
  sub: number;
  div: number;
}

/**
 * The preset's intensity as the linear map it is on one volume's values divided by `scale` — the one place every
 * model input (views, analyzer, segmentation patches and windows) takes it from: 'scale' is the identity; a window
 * [lo, hi] HU goes onto [0, 1] (MONAI's ScaleIntensityRange); 'minmax' maps the volume's own range, `range()` (in
 * HU / scale), onto [0, 1] (a constant volume onto 0).
 */
export function intensityMap(intensity: Intensity, scale: number, range: () => [number, number]): IntensityMap {
  if (intensity === 'scale') return { sub: 0, div: 1 };
  if (typeof intensity === 'object') {
    const [lo, hi] = intensity.window;
    return { sub: lo / scale, div: (hi - lo) / scale };
  }
  const [lo, hi] = range();
  return { sub: lo, div: hi > lo ? hi - lo : Infinity };
}

/** The smallest and largest value. */
export function rangeOf(g: ArrayLike<number>): [number, number] {
  let lo = Infinity,
    hi = -Infinity;
  for (let i = 0; i < g.length; i++) {
    const v = g[i]!;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

/** The crops' centres (cache voxels) for an anchored localAnchor; undefined entries are placed uniformly. */
function anchorsOf(
  cfg: ViewConfig,
  shape: Shape3,
  rng: Rng,
  mask: ArrayLike<number> | undefined,
  regions: readonly Region[],
): (Shape3 | undefined)[] | undefined {
  const a = cfg.localAnchor ?? 'uniform';
  if (a === 'uniform' || cfg.numLocal === 0) return undefined;
  if (!mask) throw new Error(`data.views.localAnchor '${a}' needs the cache's segmentation masks`);
  if (a === 'foreground' || (a === 'report' && regions.length === 0))
    return foregroundVoxels(mask, shape, cfg.numLocal, rng);
  const boxes = lungBoxes(mask, shape);
  return Array.from({ length: cfg.numLocal }, (_, k) =>
    a === 'lobes' ? lobeCentre(boxes, LOBES[k % LOBES.length]!) : lobeCentre(boxes, rng.pick(regions), rng),
  );
}

/**
 * Views of a cached volume (int16 HU of `shape`, already clipped/resampled/cropped), normalised by `scale`;
 * the global view has `globalShape` (default: the cache's shape). The boxes are returned (in the coordinates
 * of the array each local view was cut from) so tests and visualisations can see where each view came from.
 * `mask` (class indices at the cache's shape) is needed by an anchored localAnchor; `regions` (the lobes the report
 * names) by 'report'.
 */
export function makeViews(
  hu: ArrayLike<number>,
  shape: Shape3,
  scale: number,
  pad: number,
  cfg: ViewConfig,
  rng: Rng,
  globalShape: Shape3 = shape,
  mask?: ArrayLike<number>,
  regions: readonly Region[] = [],
  intensity: Intensity = 'scale',
): Views {
  const plain = globalView(hu, shape, globalShape, scale, pad, intensity);
  const global = cfg.globalIntensity ? Float32Array.from(plain) : plain;
  if (cfg.globalIntensity) augmentIntensity(global, cfg, rng);
  const native = cfg.localSource === 'cache';
  if (native && intensity !== 'scale')
    throw new Error(
      "data.views.localSource 'cache' reads raw HU; a preset with intensity 'minmax' or 'window' needs 'global'",
    );
  // min–max and window views are crops of the normalised global view, never of the raw cache
  const same = globalShape.join() === shape.join() && intensity === 'scale';
  const localShape = cfg.localShape ?? half(globalShape);
  // anchors in the cache's voxels, mapped onto the global view's grid when crops are cut from it
  const anchors = anchorsOf(cfg, shape, rng, mask, regions);
  const onGlobal = (c: Shape3) => c.map((v, i) => ((v + 0.5) * globalShape[i]!) / shape[i]! - 0.5) as Shape3;
  const boxes: Box[] = [];
  const locals = Array.from({ length: cfg.numLocal }, (_, k) => {
    const centre = anchors?.[k];
    const box = native
      ? localBox(shape, cfg, rng, localShape, centre)
      : localBox(globalShape, cfg, rng, undefined, centre && onGlobal(centre));
    boxes.push(box);
    // crops of the global view read the cache directly when the two are the same grid (exactly as before
    // multi-resolution)
    const v =
      native || same
        ? sampleBox(hu, shape, box, localShape, scale, pad)
        : sampleBox(plain, globalShape, box, localShape, 1, pad);
    augmentIntensity(v, cfg, rng);
    return v;
  });
  return { global, locals, boxes };
}
