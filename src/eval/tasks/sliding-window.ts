// Sliding-window inference with MONAI's sliding_window_inference semantics:
// - a volume smaller than the roi along an axis is padded symmetrically (constant `padValue`, extra voxel
//   after) up to the roi, and the padding is cropped off the result;
// - window step per axis = floor(roi · (1 − overlap)) (at least 1), or the whole axis when roi equals it;
//   windows start at 0, step, 2·step, … until one reaches the end, and the last is moved back inside the
//   volume (clamped), so every voxel is covered and no window reads outside;
// - each window's prediction is weighted by an importance map — 'constant' (ones) or 'gaussian'
//   (exp(−x²/2σ²) per axis with x measured from the window centre, σ = sigma_scale · roi, default 0.125),
//   floored at max(min, 1e-3) — summed into the output and divided by the summed weights;
// - windows of every case are run sw_batch_size at a time, cases first-major (case 0's windows, then case 1's).
// Inference only: it runs without autograd.
import * as torch from '../../torch/index.js';
import { F, type Tensor } from '../../torch/index.js';

export type Triple = [number, number, number];
export type BlendMode = 'constant' | 'gaussian';

export interface SlidingWindowOptions {
  /** window size (D, H, W); an entry ≤ 0 means the whole axis, as in MONAI */
  roiSize: Triple;
  /** fraction of a window shared with the next along each axis, in [0, 1) (default 0.25) */
  overlap?: number | Triple;
  /** blending of overlapping windows (default 'constant', MONAI's default) */
  mode?: BlendMode;
  /** gaussian σ as a fraction of the roi per axis (default 0.125) */
  sigmaScale?: number | Triple;
  /** windows per predictor call (default 1) */
  swBatchSize?: number;
  /** value of the padding when the volume is smaller than the roi (default 0) */
  padValue?: number;
}

const triple = (v: number | Triple): Triple => (Array.isArray(v) ? v : [v, v, v]);

/** Window step per axis (MONAI's _get_scan_interval). */
export function scanInterval(imageSize: Triple, roiSize: Triple, overlap: number | Triple): Triple {
  const ov = triple(overlap);
  return imageSize.map((n, i) => {
    if (roiSize[i] === n) return roiSize[i]!;
    return Math.max(1, Math.floor(roiSize[i]! * (1 - ov[i]!)));
  }) as Triple;
}

/** Window start corners, row-major over (D, H, W) starts (MONAI's dense_patch_slices). */
export function windowStarts(imageSize: Triple, roiSize: Triple, interval: Triple): Triple[] {
  const perAxis = imageSize.map((n, i) => {
    const roi = roiSize[i]!,
      step = interval[i]!;
    const starts: number[] = [];
    for (let s = 0; ; s += step) {
      starts.push(s - Math.max(s + roi - n, 0));
      if (s + roi >= n) break;
    }
    return starts;
  });
  const out: Triple[] = [];
  for (const a of perAxis[0]!) for (const b of perAxis[1]!) for (const c of perAxis[2]!) out.push([a, b, c]);
  return out;
}

/** The (D, H, W) weight of a window's voxels (MONAI's compute_importance_map, with its floor at max(min, 1e-3)). */
export function importanceMap(
  roiSize: Triple,
  mode: BlendMode = 'constant',
  sigmaScale: number | Triple = 0.125,
  device = 'cpu',
): Tensor {
  if (mode !== 'constant' && mode !== 'gaussian')
    throw new Error(`importanceMap: mode must be 'constant' or 'gaussian', got '${String(mode)}'`);
  const n = roiSize[0] * roiSize[1] * roiSize[2];
  const w = new Float32Array(n).fill(1);
  if (mode === 'gaussian') {
    const ss = triple(sigmaScale);
    const axes = roiSize.map((size, a) => {
      const sigma = size * ss[a]!;
      return Array.from({ length: size }, (_, i) => {
        const x = i - (size - 1) / 2;
        return Math.exp(-(x * x) / (2 * sigma * sigma));
      });
    });
    let o = 0;
    for (let i = 0; i < roiSize[0]; i++)
      for (let j = 0; j < roiSize[1]; j++)
        for (let k = 0; k < roiSize[2]; k++) w[o++] = Math.fround(axes[0]![i]! * axes[1]![j]! * axes[2]![k]!);
    let min = Infinity;
    for (const v of w) if (v !== 0 && v < min) min = v;
    const floor = Math.max(min, 1e-3);
    for (let i = 0; i < n; i++) if (w[i]! < floor) w[i] = floor;
  }
  return torch.tensor(w, [...roiSize], { device });
}

/**
 * Runs `predictor` over windows of `inputs` (B, C, D, H, W) and stitches its outputs (n, K, ...roi) back into
 * a (B, K, D, H, W) float tensor. The predictor must keep the window's spatial size.
 */
export function slidingWindowInference(
  inputs: Tensor,
  predictor: (windows: Tensor) => Tensor,
  o: SlidingWindowOptions,
): Tensor {
  if (inputs.ndim !== 5)
    throw new Error(`slidingWindowInference: inputs must be (B, C, D, H, W), got [${inputs.shape.join(', ')}]`);
  const overlap = triple(o.overlap ?? 0.25);
  if (!overlap.every((v) => v >= 0 && v < 1))
    throw new Error(`slidingWindowInference: overlap must be in [0, 1), got ${JSON.stringify(o.overlap)}`);
  const swBatch = o.swBatchSize ?? 1;
  if (!Number.isInteger(swBatch) || swBatch < 1)
    throw new Error(`slidingWindowInference: swBatchSize must be a positive integer, got ${swBatch}`);
  const given = o.roiSize;
  if (!Array.isArray(given) || given.length !== 3 || !given.every(Number.isInteger)) {
    throw new Error(`slidingWindowInference: roiSize must be 3 integers, got ${JSON.stringify(given)}`);
  }
  const [B] = inputs.shape as [number];
  const spatial = inputs.shape.slice(2) as Triple;
  const roi = given.map((r, i) => (r > 0 ? r : spatial[i]!)) as Triple;
  const imageSize = spatial.map((s, i) => Math.max(s, roi[i]!)) as Triple;
  // F.pad order: last axis first, (before, after) per axis; MONAI puts the odd voxel after.
  const pads: number[] = [];
  for (let a = 2; a >= 0; a--) {
    const diff = imageSize[a]! - spatial[a]!;
    pads.push(Math.floor(diff / 2), diff - Math.floor(diff / 2));
  }
  const padded = pads.some((p) => p > 0);
  const starts = windowStarts(imageSize, roi, scanInterval(imageSize, roi, overlap));
  const total = starts.length * B;

  return torch.noGrad(() => {
    const x = padded ? F.pad(inputs, pads, 'constant', o.padValue ?? 0) : inputs;
    const weight = importanceMap(roi, o.mode ?? 'constant', o.sigmaScale ?? 0.125, inputs.device);
    let output: Tensor | undefined;
    const count = torch.zeros([1, 1, ...imageSize], { device: inputs.device });
    try {
      for (const s of starts) {
        torch.tidy(() => {
          count.narrow(2, s[0], roi[0]).narrow(3, s[1], roi[1]).narrow(4, s[2], roi[2]).add_(weight);
        });
      }
      for (let first = 0; first < total; first += swBatch) {
        const ids = Array.from({ length: Math.min(swBatch, total - first) }, (_, i) => first + i);
        torch.tidy(() => {
          const crop = (t: Tensor, b: number, s: Triple) =>
            t.narrow(0, b, 1).narrow(2, s[0], roi[0]).narrow(3, s[1], roi[1]).narrow(4, s[2], roi[2]);
          const windows = torch.cat(
            ids.map((id) => crop(x, Math.floor(id / starts.length), starts[id % starts.length]!)),
            0,
          );
          const pred = predictor(windows);
          const want = [ids.length, roi[0], roi[1], roi[2]];
          if (pred.ndim !== 5 || [pred.size(0), ...pred.shape.slice(2)].join() !== want.join()) {
            throw new Error(
              `slidingWindowInference: the predictor returned [${pred.shape.join(', ')}] ` +
                `for windows [${windows.shape.join(', ')}]; it must return (n, K, ${roi.join(', ')})`,
            );
          }
          if (!output)
            output = torch
              .zeros([B, pred.size(1), ...imageSize], {
                device: inputs.device,
                dtype: pred.dtype === 'float64' ? 'float64' : 'float32',
              })
              .keep();
          const weighted = pred.mul(weight);
          ids.forEach((id, i) =>
            crop(output!, Math.floor(id / starts.length), starts[id % starts.length]!).add_(weighted.narrow(0, i, 1)),
          );
        });
      }
      return torch.tidy(() => {
        const blended = output!.div(count);
        if (!padded) return blended;
        return blended
          .narrow(2, pads[4]!, spatial[0])
          .narrow(3, pads[2]!, spatial[1])
          .narrow(4, pads[0]!, spatial[2])
          .contiguous();
      });
    } finally {
      output?.dispose();
      count.dispose();
      weight.dispose();
      if (x !== inputs) x.dispose();
    }
  });
}
