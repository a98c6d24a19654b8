// A CT volume on the engine: a (D, H, W) float tensor plus its geometry.
import { type Tensor } from '../torch/index.js';
import { type Mat4 } from '../io/nifti.js';

export interface Volume {
  /** (D, H, W) = (slices, rows, columns); values are HU until a transform says otherwise */
  data: Tensor;
  /** voxel size along (x = W, y = H, z = D) in mm */
  spacing: [number, number, number];
  /** RAS+ affine of array axes (i = W, j = H, k = D), nibabel's convention */
  affine: Mat4;
}

/** Replaces a volume's data, disposing the old tensor (transforms run outside tidy on big tensors). */
export function withData(v: Volume, data: Tensor, geometry: Partial<Omit<Volume, 'data'>> = {}): Volume {
  if (data !== v.data) v.data.dispose();
  return { data, spacing: geometry.spacing ?? v.spacing, affine: geometry.affine ?? v.affine };
}

export const columnNorm = (a: Mat4, c: number): number => Math.hypot(a[0]![c]!, a[1]![c]!, a[2]![c]!);
