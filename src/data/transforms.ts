// Preprocessing transforms: small objects, one idea each, composed into a pipeline (MONAI's style).
// They run on the engine (multi-threaded libtorch) and free what they replace.
import * as torch from '../torch/index.js';
import { F } from '../torch/index.js';
import { type Mat4 } from '../io/nifti.js';
import { type Volume, columnNorm, withData } from './volume.js';

export interface Transform {
  readonly name: string;
  apply(v: Volume): Volume;
}

export function compose(...transforms: Transform[]): Transform {
  return {
    name: transforms.map((t) => t.name).join(' → '),
    apply: (v) => transforms.reduce((acc, t) => t.apply(acc), v),
  };
}

/**
 * Reorients to the canonical array orientation used everywhere downstream: columns run to the patient's
 * left, rows to posterior, slices to superior (nibabel axcodes L, P, S) — radiological display order.
 */
export class Orient implements Transform {
  readonly name = 'Orient(LPS)';
  apply(v: Volume): Volume {
    const plan = orientPlan(v.affine, v.data.shape as [number, number, number]);
    let data = v.data.permute(...plan.permute);
    if (plan.flips.length) {
      const flipped = data.flip(plan.flips);
      data.dispose();
      data = flipped;
    }
    const contiguous = data.contiguous();
    data.dispose();
    return withData(v, contiguous, { affine: plan.affine, spacing: spacingOf(plan.affine) });
  }
}

export const spacingOf = (a: Mat4): [number, number, number] => [columnNorm(a, 0), columnNorm(a, 1), columnNorm(a, 2)];

/**
 * How a (D, H, W) tensor with this affine reaches LPS: the tensor dims to permute to, then the dims (of the
 * permuted tensor) to flip, and the affine afterwards.
 */
export function orientPlan(
  a: Mat4,
  shape: [number, number, number],
): { permute: [number, number, number]; flips: number[]; affine: Mat4 } {
  const want = [
    { axis: 0, sign: -1 },
    { axis: 1, sign: -1 },
    { axis: 2, sign: 1 },
  ]; // i→L, j→P, k→S
  // For each array axis (i, j, k): the world axis it mostly runs along and in which direction.
  const dirs = [0, 1, 2].map((c) => {
    const col = [a[0]![c]!, a[1]![c]!, a[2]![c]!];
    const w = col.map(Math.abs).indexOf(Math.max(...col.map(Math.abs)));
    return { w, sign: Math.sign(col[w]!) };
  });
  if (new Set(dirs.map((d) => d.w)).size !== 3)
    throw new Error('Orient: the affine does not map array axes to distinct world axes');
  const src = want.map((t) => dirs.findIndex((d) => d.w === t.axis)); // array axis feeding target axis t
  const n = [shape[2], shape[1], shape[0]]; // sizes along i, j, k
  // tensor dims are (k, j, i): array axis x lives in tensor dim 2 - x
  const permute: [number, number, number] = [2 - src[2]!, 2 - src[1]!, 2 - src[0]!];
  const flips = want
    .map((t, ax) => (dirs[src[ax]!]!.sign !== t.sign ? 2 - ax : -1))
    .filter((d) => d >= 0)
    .sort();
  const affine: Mat4 = [
    [0, 0, 0, a[0]![3]!],
    [0, 0, 0, a[1]![3]!],
    [0, 0, 0, a[2]![3]!],
    [0, 0, 0, 1],
  ];
  want.forEach((t, ax) => {
    const s = src[ax]!;
    const flip = dirs[s]!.sign !== t.sign;
    for (let r = 0; r < 3; r++) {
      affine[r]![ax] = (flip ? -1 : 1) * a[r]![s]!;
      if (flip) affine[r]![3]! += a[r]![s]! * (n[s]! - 1);
    }
  });
  return { permute, flips, affine };
}

/** HU = slope · stored + intercept. */
export class RescaleHU implements Transform {
  readonly name: string;
  constructor(
    readonly slope: number,
    readonly intercept: number,
  ) {
    this.name = `RescaleHU(${slope}, ${intercept})`;
  }
  apply(v: Volume): Volume {
    if (this.slope === 1 && this.intercept === 0) return v;
    const scaled = v.data.mul(this.slope);
    const out = scaled.add(this.intercept);
    scaled.dispose();
    return withData(v, out);
  }
}

/**
 * Whether stored values still need the metadata rescale. Raw CT storage has air near 0 (stored ≥ 0 with
 * intercept −1024); data already in HU has air near −1000. CT-RATE v2 ships HU while its metadata still
 * lists intercept −1024, so applying it blindly would double-rescale.
 */
export function needsRescale(minStored: number, intercept: number): boolean {
  if (intercept === 0) return false;
  return minStored > -200;
}

/** Clips HU to a window (CT-CLIP: [−1000, 1000]). */
export class ClipHU implements Transform {
  readonly name: string;
  constructor(
    readonly low: number,
    readonly high: number,
  ) {
    this.name = `ClipHU(${low}, ${high})`;
  }
  apply(v: Volume): Volume {
    return withData(v, v.data.clamp(this.low, this.high));
  }
}

/**
 * Resamples to a voxel spacing (x, y, z mm): trilinear for images, nearest for masks (like CT-CLIP's
 * F.interpolate).
 */
export class Resample implements Transform {
  readonly name: string;
  constructor(
    readonly spacing: [number, number, number],
    readonly mode: 'trilinear' | 'nearest' = 'trilinear',
  ) {
    this.name = `Resample(${spacing.join('×')} mm, ${mode})`;
  }
  apply(v: Volume): Volume {
    const [d, h, w] = v.data.shape as [number, number, number];
    const size = resampledSize([d, h, w], v.spacing, this.spacing);
    if (size[0] === d && size[1] === h && size[2] === w) return v;
    const out = torch.tidy(() => {
      const x = v.data.view(1, 1, d, h, w);
      const isFloat = x.dtype.startsWith('float');
      const y = F.interpolate(isFloat ? x : x.to('float32'), size, this.mode);
      return (isFloat ? y : y.round().to(x.dtype)).view(...size);
    });
    const affine = resampledAffine(v.affine, [d, h, w], size);
    return withData(v, out, { affine, spacing: spacingOf(affine) });
  }
}

/** The (D, H, W) size that brings a volume of spacing (x, y, z) mm to the target spacing. */
export function resampledSize(
  shape: [number, number, number],
  spacing: [number, number, number],
  target: [number, number, number],
): [number, number, number] {
  return [2, 1, 0].map((c, dim) => Math.max(1, Math.round((shape[dim]! * spacing[c]!) / target[c]!))) as [
    number,
    number,
    number,
  ];
}

/**
 * The affine after resizing (D, H, W) → size with align_corners=False: new voxel centre 0 sits at old index
 * 0.5·(n/m) − 0.5.
 */
export function resampledAffine(a: Mat4, shape: [number, number, number], size: [number, number, number]): Mat4 {
  const affine = a.map((row) => [...row]) as Mat4;
  for (let c = 0; c < 3; c++) {
    const ratio = shape[2 - c]! / size[2 - c]!;
    for (let r = 0; r < 3; r++) {
      affine[r]![3]! += a[r]![c]! * (0.5 * ratio - 0.5);
      affine[r]![c] = a[r]![c]! * ratio;
    }
  }
  return affine;
}

/** Centre crop and/or pad each axis to a shape (D, H, W) with a constant. */
export class CenterCropOrPad implements Transform {
  readonly name: string;
  constructor(
    readonly shape: [number, number, number],
    readonly padValue: number,
  ) {
    this.name = `CenterCropOrPad(${shape.join('×')}, pad ${padValue})`;
  }
  apply(v: Volume): Volume {
    const cur = v.data.shape as [number, number, number];
    const starts = cropPadStarts(cur, this.shape);
    const out = torch.tidy(() => {
      let x = v.data;
      starts.forEach((s, ax) => {
        if (cur[ax]! > this.shape[ax]!) x = x.narrow(ax, s, this.shape[ax]!);
      });
      const pads: number[] = [];
      for (let ax = 2; ax >= 0; ax--) {
        const need = Math.max(0, this.shape[ax]! - x.size(ax));
        const before = Math.floor(need / 2);
        pads.push(before, need - before);
      }
      return pads.some((p) => p > 0) ? F.pad(x, pads, 'constant', this.padValue) : x.contiguous();
    });
    return withData(v, out, { affine: shiftedAffine(v.affine, starts) });
  }
}

/**
 * Per tensor dim (D, H, W) of a centre crop/pad from `cur` to `target`: > 0 is the crop start, < 0 the padding
 * before.
 */
export function cropPadStarts(
  cur: [number, number, number],
  target: [number, number, number],
): [number, number, number] {
  return cur.map((n, ax) => {
    const t = target[ax]!;
    return n >= t ? Math.floor((n - t) / 2) : -Math.floor((t - n) / 2);
  }) as [number, number, number];
}

/** The affine after moving the origin by per-tensor-dim (D, H, W) voxel offsets. */
export function shiftedAffine(a: Mat4, starts: [number, number, number]): Mat4 {
  const affine = a.map((row) => [...row]) as Mat4;
  starts.forEach((s, ax) => {
    const c = 2 - ax;
    for (let r = 0; r < 3; r++) affine[r]![3]! += a[r]![c]! * s;
  });
  return affine;
}

/**
 * Crops to the bounding box of voxels above a threshold (the body for CT at about −500 HU), plus a margin
 * in mm — MONAI's CropForeground. Leaves the volume as is when nothing is above the threshold.
 */
export class CropForeground implements Transform {
  readonly name: string;
  constructor(
    readonly threshold: number,
    readonly marginMm = 0,
  ) {
    this.name = `CropForeground(> ${threshold}, margin ${marginMm} mm)`;
  }
  apply(v: Volume): Volume {
    const ranges = torch.tidy(() => {
      const fg = v.data.gt(this.threshold);
      // per tensor dim (D, H, W): which slices / rows / columns hold any foreground
      return [0, 1, 2].map((dim) =>
        fg
          .to('uint8')
          .max([0, 1, 2].filter((d) => d !== dim))
          .nonzero()
          .flatten()
          .toArray(),
      );
    });
    if (ranges.some((r) => r.length === 0)) return v;
    const spacingOfDim = [v.spacing[2], v.spacing[1], v.spacing[0]];
    const bounds = ranges.map((r, dim) => {
      const m = Math.ceil(this.marginMm / spacingOfDim[dim]!);
      return [Math.max(0, r[0]! - m), Math.min(v.data.size(dim) - 1, r[r.length - 1]! + m)] as [number, number];
    });
    const out = torch.tidy(() =>
      bounds.reduce((x, [lo, hi], dim) => x.narrow(dim, lo, hi - lo + 1), v.data).contiguous(),
    );
    const affine = v.affine.map((row) => [...row]) as Mat4;
    bounds.forEach(([lo], dim) => {
      for (let r = 0; r < 3; r++) affine[r]![3]! += v.affine[r]![2 - dim]! * lo;
    });
    return withData(v, out, { affine });
  }
}

/** x / scale (CT-CLIP maps clipped HU to [−1, 1] with scale 1000). */
export class ScaleIntensity implements Transform {
  readonly name: string;
  constructor(readonly scale: number) {
    this.name = `ScaleIntensity(1/${scale})`;
  }
  apply(v: Volume): Volume {
    return withData(v, v.data.div(this.scale));
  }
}
