// Where a lobe lies in a cached volume, from the organ mask (which has the two lungs, not their lobes): a point at a
// fixed height and depth of the named lung, as the synthetic generator places lobar findings (synth/findings.ts
// lobePoint). The upper lobe sits high in the lung, the middle lobe low and in front, the lower lobe at the bottom and
// behind. Real data would take lobe masks instead; the anchors only need to land near the region a report names.
import { type Rng } from '../util/rng.js';
import { MASK_CLASSES } from '../domain/ct-rate.js';
import { type Region } from '../text/regions.js';
import { type Shape3 } from './views.js';

/** Fractions of the lung's extent along (D: inferior→superior, H: anterior→posterior) for each lobe's centre. */
const AT: Record<Region['lobe'], [number, number]> = { upper: [0.65, 0.48], middle: [0.3, 0.25], lower: [0.12, 0.63] };

interface LungBox {
  lo: Shape3;
  hi: Shape3;
}

/** Each lung's voxel bounding box (right, left), undefined for a lung the mask does not hold. */
export function lungBoxes(mask: ArrayLike<number>, shape: Shape3): [LungBox | undefined, LungBox | undefined] {
  const classes = [MASK_CLASSES.indexOf('lung_right'), MASK_CLASSES.indexOf('lung_left')];
  const boxes: (LungBox | undefined)[] = [undefined, undefined];
  const [, H, W] = shape;
  for (let i = 0; i < mask.length; i++) {
    const side = classes.indexOf(mask[i]!);
    if (side < 0) continue;
    const p: Shape3 = [Math.floor(i / (H * W)), Math.floor(i / W) % H, i % W];
    const b = (boxes[side] ??= { lo: [...p], hi: [...p] });
    for (let a = 0; a < 3; a++) {
      b.lo[a] = Math.min(b.lo[a]!, p[a]!);
      b.hi[a] = Math.max(b.hi[a]!, p[a]!);
    }
  }
  return boxes as [LungBox | undefined, LungBox | undefined];
}

/**
 * The centre of `region` in voxels (D, H, W), or undefined when the mask has no lung of that side. With `rng`, a point
 * jittered by up to ±`jitter` of the lung's extent per axis (training views); without, the fixed centre (evaluation).
 */
export function lobeCentre(
  boxes: ReturnType<typeof lungBoxes>,
  region: Region,
  rng?: Rng,
  jitter = 0.15,
): Shape3 | undefined {
  const b = boxes[region.side === 'right' ? 0 : 1];
  if (!b) return undefined;
  const [fz, fy] = AT[region.lobe];
  const at = (a: number, f: number) => {
    const t = rng ? f + rng.uniform(-jitter, jitter) : f;
    return Math.round(b.lo[a]! + Math.min(1, Math.max(0, t)) * (b.hi[a]! - b.lo[a]!));
  };
  return [at(0, fz), at(1, fy), at(2, 0.5)];
}
