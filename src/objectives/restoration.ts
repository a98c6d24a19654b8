// Masked-volume restoration (docs/ARCHITECTURE.md §3): a fixed fraction of non-overlapping 3D patches of each
// volume is blanked, the encoder sees the masked volume, and a light decoder restores it; the loss is L1 on the masked
// voxels only (as in MAE, the visible voxels would be a trivial copy task).
import * as torch from '../torch/index.js';
import { F, type Tensor } from '../torch/index.js';

export interface PatchMask {
  /** the input with masked patches set to `fill` */
  masked: Tensor;
  /** (B, 1, D, H, W) float, 1 at masked voxels */
  mask: Tensor;
}

/**
 * Masks round(ratio · n) of the n patches of each volume (exactly that many, chosen uniformly by the
 * default generator). Patches of size `patch` tile the volume from the origin; edge patches may be partial.
 */
export function maskPatches(x: Tensor, ratio: number, patch: number, fill = 0): PatchMask {
  if (!(ratio > 0 && ratio < 1)) throw new Error(`maskPatches: ratio must be in (0, 1), got ${ratio}`);
  if (!(Number.isInteger(patch) && patch >= 1))
    throw new Error(`maskPatches: patch must be a positive integer, got ${patch}`);
  if (x.ndim !== 5) throw new Error(`maskPatches: expected (B, C, D, H, W), got [${x.shape.join(', ')}]`);
  return torch.tidy(() => {
    const [B, , D, H, W] = x.shape as [number, number, number, number, number];
    const grid = [D, H, W].map((s) => Math.ceil(s / patch)) as [number, number, number];
    const n = grid[0] * grid[1] * grid[2];
    const k = Math.min(n - 1, Math.max(1, Math.round(ratio * n)));
    // rank of each patch's noise within its volume; the k lowest ranks are masked
    const rank = torch.rand([B, n], { device: x.device }).sort(1)[1].sort(1)[1];
    const coarse = rank
      .lt(k)
      .to(x.dtype)
      .reshape(B, 1, ...grid);
    const full = F.interpolate(coarse, grid.map((g) => g * patch) as [number, number, number], 'nearest');
    const mask = full.narrow(2, 0, D).narrow(3, 0, H).narrow(4, 0, W).contiguous();
    return { masked: x.mul(mask.neg().add(1)).add(mask.mul(fill)), mask };
  });
}

/** Mean absolute error over the masked voxels. */
export function restorationLoss(pred: Tensor, target: Tensor, mask: Tensor): Tensor {
  return torch.tidy(() => pred.sub(target).abs().mul(mask).sum().div(mask.sum().clampMin(1)));
}
