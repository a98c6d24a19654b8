// The one input contract of a model: what a preset says a scan becomes before the encoder sees it. Training (the
// loader's workers, through the same globalView), evaluation, the analyzer and the server all go through it, and a
// loaded checkpoint brings it with its model (train/factory.ts), so a model is never fed an input it was not
// trained on.
//   scan (HU, any orientation and spacing) → toCacheGrid → the preset's int16 cache grid (what a cache stores)
//   cache grid → toInput → the model's input: the global view, normalised, at the preset's global shape
import * as torch from '../torch/index.js';
import { type Tensor } from '../torch/index.js';
import { preprocessImage } from './preprocess-image.js';
import { globalShapeOf, type Preset } from './presets.js';
import { globalView, intensityOf, type Shape3 } from './views.js';
import { type Volume } from './volume.js';

export interface InputTransform {
  readonly preset: Preset;
  /** the model's input shape (D, H, W) */
  readonly inputShape: Shape3;
  /** a scan whose values are HU (slope · stored + intercept with `rescale`) → the preset's cache grid (int16) */
  toCacheGrid(scan: Volume, name: string, rescale?: { slope: number; intercept: number }): Volume;
  /** cache-grid values in (D, H, W) order → the un-augmented model input in (D, H, W) order */
  toInput(grid: ArrayLike<number>): Float32Array;
  /** a scan in HU → the model input as a (1, 1, D, H, W) float32 tensor (the scan is left as it is) */
  fromScan(scan: Volume, name: string, device?: string): Tensor;
}

export function inputTransform(preset: Preset): InputTransform {
  const inputShape = globalShapeOf(preset);
  const toInput = (grid: ArrayLike<number>) =>
    globalView(grid, preset.shape, inputShape, preset.scale, preset.padValue, intensityOf(preset));
  return {
    preset,
    inputShape,
    toInput,
    toCacheGrid: (scan, name, rescale) => preprocessImage(scan, preset, name, rescale),
    fromScan(scan, name, device = 'cpu') {
      const grid = preprocessImage(scan, preset, name);
      let values: ArrayLike<number>;
      try {
        values = grid.data.toTypedArray() as Int16Array;
      } finally {
        grid.data.dispose();
      }
      return torch.tensor(toInput(values), [1, 1, ...inputShape], { device });
    },
  };
}
