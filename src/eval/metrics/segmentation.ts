// Segmentation metrics on class-index volumes (Uint8Array in (D, H, W) order, index (d·H + h)·W + w), defined as
// MONAI's DiceMetric(ignore_empty=True) and compute_hausdorff_distance(percentile=95) define them.
import { quantileSorted } from './bootstrap.js';

function checkPair(fn: string, pred: Uint8Array, target: Uint8Array, cls: number): void {
  if (pred.length !== target.length)
    throw new Error(`${fn}: pred has ${pred.length} voxels but target has ${target.length}`);
  if (!Number.isInteger(cls) || cls < 0 || cls > 255)
    throw new Error(`${fn}: cls must be an integer class index in 0..255, got ${cls}`);
}

/**
 * Dice of class `cls`: 2|P∩T| / (|P| + |T|). NaN when the target has no voxel of the class, whatever the
 * prediction (MONAI's ignore_empty=True: such a case says nothing about this class and drops out of means).
 */
export function diceScore(pred: Uint8Array, target: Uint8Array, cls: number): number {
  checkPair('diceScore', pred, target, cls);
  let p = 0,
    t = 0,
    both = 0;
  for (let i = 0; i < pred.length; i++) {
    const a = pred[i] === cls,
      b = target[i] === cls;
    if (a) p++;
    if (b) t++;
    if (a && b) both++;
  }
  return t === 0 ? NaN : (2 * both) / (p + t);
}

/**
 * Exact squared Euclidean distance transform (Felzenszwalb & Huttenlocher): each voxel's squared distance in mm²
 * to the nearest voxel with feature[i] = 1, one separable pass per axis with that axis' spacing.
 */
function squaredEdt(
  feature: Uint8Array,
  [D, H, W]: [number, number, number],
  [sd, sh, sw]: [number, number, number],
): Float64Array {
  const sq = new Float64Array(feature.length);
  // along W the features are binary, so the 1-D transform is the distance to the nearest feature in the row
  for (let row = 0; row < D * H; row++) {
    const base = row * W;
    let last = -Infinity;
    for (let w = 0; w < W; w++) {
      if (feature[base + w]) last = w;
      sq[base + w] = w - last;
    }
    last = Infinity;
    for (let w = W - 1; w >= 0; w--) {
      if (feature[base + w]) last = w;
      const d = Math.min(sq[base + w]!, last - w) * sw;
      sq[base + w] = d * d;
    }
  }
  const n = Math.max(D, H);
  const f = new Float64Array(n),
    out = new Float64Array(n),
    z = new Float64Array(n + 1),
    v = new Int32Array(n);
  const pass = (base: number, len: number, stride: number, s: number) => {
    let any = false;
    for (let i = 0; i < len; i++) {
      f[i] = sq[base + i * stride]!;
      any ||= f[i] !== Infinity;
    }
    if (!any) return; // a line without any finite distance stays infinite
    lowerEnvelope(f, len, s, v, z, out);
    for (let i = 0; i < len; i++) sq[base + i * stride] = out[i]!;
  };
  for (let d = 0; d < D; d++) for (let w = 0; w < W; w++) pass(d * H * W + w, H, W, sh);
  for (let h = 0; h < H; h++) for (let w = 0; w < W; w++) pass(h * W + w, D, H * W, sd);
  return sq;
}

/**
 * 1-D pass: out[x] = min over sites q of f[q] + ((x − q)·s)², via the lower envelope of the parabolas.
 * Needs at least one finite f[q] (the caller skips lines without one).
 */
function lowerEnvelope(f: Float64Array, n: number, s: number, v: Int32Array, z: Float64Array, out: Float64Array): void {
  let k = -1;
  for (let q = 0; q < n; q++) {
    if (f[q] === Infinity) continue; // no parabola from an empty site
    let cross = -Infinity;
    while (k >= 0) {
      const p = v[k]!;
      // position (mm) where q's parabola drops below p's
      cross = (f[q]! - f[p]! + (q * q - p * p) * s * s) / (2 * (q - p) * s);
      if (cross <= z[k]!) k--;
      else break;
    }
    k++;
    v[k] = q;
    z[k] = k === 0 ? -Infinity : cross;
  }
  z[k + 1] = Infinity;
  for (let q = 0, j = 0; q < n; q++) {
    while (z[j + 1]! < q * s) j++;
    const d = (q - v[j]!) * s;
    out[q] = d * d + f[v[j]!]!;
  }
}

/** Surface voxels: in the mask with at least one of the 6 face neighbours outside it (or outside the volume). */
function surface(mask: Uint8Array, [D, H, W]: [number, number, number]): Uint8Array {
  const edge = new Uint8Array(mask.length);
  for (let d = 0; d < D; d++)
    for (let h = 0; h < H; h++)
      for (let w = 0; w < W; w++) {
        const i = (d * H + h) * W + w;
        if (!mask[i]) continue;
        const interior =
          d > 0 &&
          d < D - 1 &&
          h > 0 &&
          h < H - 1 &&
          w > 0 &&
          w < W - 1 &&
          mask[i - 1] &&
          mask[i + 1] &&
          mask[i - W] &&
          mask[i + W] &&
          mask[i - H * W] &&
          mask[i + H * W];
        if (!interior) edge[i] = 1;
      }
  return edge;
}

/** 95th percentile (linear interpolation) of the distances from each `from` surface voxel to the `to` surface. */
function directedHd95(
  from: Uint8Array,
  to: Uint8Array,
  dims: [number, number, number],
  spacing: [number, number, number],
): number {
  const sq = squaredEdt(to, dims, spacing);
  const dist: number[] = [];
  for (let i = 0; i < from.length; i++) if (from[i]) dist.push(Math.sqrt(sq[i]!));
  return quantileSorted(Float64Array.from(dist).sort(), 0.95);
}

/**
 * Symmetric 95th-percentile Hausdorff distance (mm) of class `cls`, as MONAI's compute_hausdorff_distance(
 * percentile=95, distance_metric='euclidean', directed=False, spacing) computes it:
 * - surface = mask XOR binary_erosion(mask) with scipy's default structuring element (the 6 face neighbours,
 *   i.e. connectivity 1), voxels outside the volume counting as background, so a mask touching the volume's
 *   border has a surface there;
 * - for each direction (pred → target, target → pred) the distances from each surface voxel to the nearest
 *   surface voxel of the other mask (exact EDT with the given spacing), and their 95th percentile with linear
 *   interpolation (torch.quantile = numpy's default);
 * - the maximum of the two directed values (not the percentile of the pooled distances).
 * Undefined cases: both masks empty → NaN (nothing to measure; drops out of means, as in MONAI); exactly one
 * empty → Infinity, as MONAI documents and returns without a percentile (its percentile path currently
 * interpolates the all-infinite distances into NaN, a known MONAI bug that would drop missed structures).
 * Work is limited to the bounding box of the two masks, which leaves every distance unchanged.
 */
export function hausdorff95(
  pred: Uint8Array,
  target: Uint8Array,
  shape: [number, number, number],
  spacing: [number, number, number],
  cls: number,
): number {
  checkPair('hausdorff95', pred, target, cls);
  if (shape.length !== 3 || shape.some((s) => !Number.isInteger(s) || s < 1))
    throw new Error(`hausdorff95: shape must be three positive integers (D, H, W), got [${shape.join(', ')}]`);
  const [D, H, W] = shape;
  if (pred.length !== D * H * W)
    throw new Error(`hausdorff95: masks have ${pred.length} voxels but shape [${shape.join(', ')}] needs ${D * H * W}`);
  if (spacing.length !== 3 || spacing.some((s) => !(s > 0 && Number.isFinite(s))))
    throw new Error(
      `hausdorff95: spacing must be three positive finite numbers (mm along D, H, W), got [${spacing.join(', ')}]`,
    );
  const lo = [D, H, W],
    hi = [-1, -1, -1];
  let np = 0,
    nt = 0;
  for (let d = 0, i = 0; d < D; d++)
    for (let h = 0; h < H; h++)
      for (let w = 0; w < W; w++, i++) {
        const a = pred[i] === cls,
          b = target[i] === cls;
        if (a) np++;
        if (b) nt++;
        if (a || b) {
          lo[0] = Math.min(lo[0]!, d);
          lo[1] = Math.min(lo[1]!, h);
          lo[2] = Math.min(lo[2]!, w);
          hi[0] = Math.max(hi[0]!, d);
          hi[1] = Math.max(hi[1]!, h);
          hi[2] = Math.max(hi[2]!, w);
        }
      }
  if (np === 0 && nt === 0) return NaN;
  if (np === 0 || nt === 0) return Infinity;
  const dims: [number, number, number] = [hi[0]! - lo[0]! + 1, hi[1]! - lo[1]! + 1, hi[2]! - lo[2]! + 1];
  const cropP = new Uint8Array(dims[0] * dims[1] * dims[2]),
    cropT = new Uint8Array(cropP.length);
  for (let d = 0, j = 0; d < dims[0]; d++)
    for (let h = 0; h < dims[1]; h++) {
      const row = ((d + lo[0]!) * H + h + lo[1]!) * W + lo[2]!;
      for (let w = 0; w < dims[2]; w++, j++) {
        cropP[j] = pred[row + w] === cls ? 1 : 0;
        cropT[j] = target[row + w] === cls ? 1 : 0;
      }
    }
  const edgeP = surface(cropP, dims),
    edgeT = surface(cropT, dims);
  return Math.max(directedHd95(edgeP, edgeT, dims, spacing), directedHd95(edgeT, edgeP, dims, spacing));
}
