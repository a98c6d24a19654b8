// The image half of preprocessing, slab by slab: stored values (any dtype) → HU → LPS → clipped → resampled
// (trilinear, align_corners=False) to the preset's spacing, or straight to its shape for geometry 'resize' → centre
// crop/pad → rounded int16. It equals Orient → ClipHU → Resample →
// CenterCropOrPad (transforms.ts) up to float rounding, but never holds a float copy of the whole source
// volume: trilinear interpolation is separable, so each block of output slices is the lerp of two gathered
// source slices along z (PyTorch's source index and weights) followed by a bilinear resize in-plane. A
// 512×512×300 CT thus needs a few MB of float at a time instead of 300 MB, and the slices that a centre crop
// would drop are never computed.
import * as torch from '../torch/index.js';
import { F } from '../torch/index.js';
import { type Preset } from './presets.js';
import { cropPadStarts, orientPlan, resampledAffine, resampledSize, shiftedAffine, spacingOf } from './transforms.js';
import { type Volume } from './volume.js';

/** Elements per gathered block of source slices (8 MiB of float32): small enough to stay in cache. */
const BLOCK_ELEMENTS = 1 << 21;

/** PyTorch's linear source index for output index o (align_corners=False, clamped at 0), as i0, i1, λ. */
function linearSource(o: number, inSize: number, outSize: number): [number, number, number] {
  const src = Math.max(0, (inSize / outSize) * (o + 0.5) - 0.5);
  const i0 = Math.min(Math.floor(src), inSize - 1);
  return [i0, i0 < inSize - 1 ? i0 + 1 : i0, Math.min(1, src - i0)];
}

/**
 * A volume whose data holds stored values (any dtype; HU = slope · stored + intercept) → the preset's
 * canonical int16 cache grid. The input volume is left as it is; the result's data is a new int16 tensor.
 */
export function preprocessImage(
  vol: Volume,
  preset: Preset,
  name: string,
  rescale = { slope: 1, intercept: 0 },
): Volume {
  const [lo, hi] = preset.huWindow;
  const plan = orientPlan(vol.affine, vol.data.shape as [number, number, number]);
  const oriented = vol.data.permute(...plan.permute); // a view: flips are applied per block
  const shape = oriented.shape as [number, number, number];
  const size: [number, number, number] =
    preset.geometry === 'resize' ? [...preset.shape] : resampledSize(shape, spacingOf(plan.affine), preset.spacing);
  const starts = cropPadStarts(size, preset.shape);
  const affine = shiftedAffine(
    size.join() === shape.join() ? plan.affine : resampledAffine(plan.affine, shape, size),
    starts,
  );
  // per tensor dim: the resampled range kept, and where it lands in the output
  const keep = size.map((n, d) => (n > preset.shape[d]! ? [starts[d]!, preset.shape[d]!] : [0, n])) as [
    number,
    number,
  ][];
  const dst = starts.map((s) => Math.max(0, -s));
  const zFlip = plan.flips.includes(0);
  const planeFlips = plan.flips.filter((d) => d > 0);
  const [D, H, W] = shape;
  const block = Math.max(1, Math.floor(BLOCK_ELEMENTS / (H * W)));
  const out = torch.full(preset.shape, lo, { dtype: 'int16' });
  try {
    for (let z0 = keep[0][0]; z0 < keep[0][0] + keep[0][1]; z0 += block) {
      const n = Math.min(block, keep[0][0] + keep[0][1] - z0);
      const src = Array.from({ length: n }, (_, k) => linearSource(z0 + k, D, size[0]));
      torch.tidy(() => {
        const gather = (i: number) => {
          const index = torch.tensor(new BigInt64Array(src.map((s) => BigInt(zFlip ? D - 1 - s[i]! : s[i]!))));
          let x = oriented.indexSelect(0, index);
          if (planeFlips.length) x = x.flip(planeFlips);
          if (x.dtype !== 'float32') x = x.to('float32');
          // in place from here: fresh blocks, and no allocation (page faults) per step
          if (rescale.slope !== 1) x.mul_(rescale.slope);
          if (rescale.intercept !== 0) x.add_(rescale.intercept);
          return x.clampMin_(lo).clampMax_(hi);
        };
        const t1 = torch.tensor(new Float32Array(src.map((s) => s[2])), [n, 1, 1]);
        const t0 = torch.tensor(new Float32Array(src.map((s) => 1 - s[2])), [n, 1, 1]);
        const mixed = gather(0).mul_(t0).addcmul_(gather(1), t1); // the z-lerp, as PyTorch writes it: t0·v0 + t1·v1
        const slab =
          size[1] !== H || size[2] !== W
            ? F.interpolate(mixed.view(1, n, H, W), [size[1], size[2]], 'bilinear')
            : mixed;
        const kept = slab.view(n, size[1], size[2]).narrow(1, keep[1][0], keep[1][1]).narrow(2, keep[2][0], keep[2][1]);
        out
          .narrow(0, dst[0]! + z0 - keep[0][0], n)
          .narrow(1, dst[1]!, keep[1][1])
          .narrow(2, dst[2]!, keep[2][1])
          .copy_(kept.round());
      });
    }
  } catch (err) {
    out.dispose();
    throw new Error(`${name}: preprocessing failed (${(err as Error).message})`);
  } finally {
    oriented.dispose();
  }
  return { data: out, spacing: spacingOf(affine), affine };
}
