// BatchNorm statistics recalibrated on another input distribution (the crop-scale readout: every arm's BatchNorm sees
// the same training crops before it is read out on crops, so no arm gains from having seen crops in pre-training).
// Each batch runs forward with the BatchNorm layers in training mode and no gradient; the layer's momentum update is
// undone and replaced by a cumulative average over the batches (PyTorch's momentum=None), so the result does not
// depend on what the statistics were before or on the order of the batches beyond rounding.
import * as torch from '../torch/index.js';
import { nn, type Tensor } from '../torch/index.js';
import { Loader } from '../data/loader.js';
import { lobeCropViews, type Shape3 } from '../data/views.js';

export class BatchNormRecalibration {
  private readonly layers: nn.BatchNorm3d[];
  private seen = 0;

  constructor(module: nn.Module) {
    this.layers = [...module.namedModules()]
      .map(([, m]) => m)
      .filter((m): m is nn.BatchNorm3d => m instanceof nn.BatchNorm3d && m.trackRunningStats);
  }

  /** Layers recalibrated, and batches folded in so far. */
  get count(): { layers: number; batches: number } {
    return { layers: this.layers.length, batches: this.seen };
  }

  /** Runs `forward` (the module's own forward pass on one batch) and folds the batch's statistics in. */
  step(forward: () => void): void {
    this.seen += 1;
    const n = this.seen;
    torch.noGrad(() =>
      torch.tidy(() => {
        const stats = (l: nn.BatchNorm3d) => [l.getBuffer('running_mean')!, l.getBuffer('running_var')!];
        const before = this.layers.map((l) => stats(l).map((t) => t.clone()));
        const modes = this.layers.map((l) => l.training);
        this.layers.forEach((l) => (l.training = true));
        try {
          forward();
        } finally {
          this.layers.forEach((l, i) => (l.training = modes[i]!));
        }
        this.layers.forEach((l, i) => {
          const m = l.momentum;
          stats(l).forEach((now: Tensor, k) => {
            const prev = before[i]![k]!;
            // now = (1 − m)·prev + m·batch  →  batch; then the cumulative mean over n batches
            const batch = now.sub(prev.mul(1 - m)).div(m);
            now.copy_(prev.add(batch.sub(prev).div(n)));
          });
        });
      }),
    );
  }
}

/**
 * Recalibrates `module`'s BatchNorm statistics on the crop-scale readout's crops (data/views.ts lobeCropViews) of the
 * named volumes; `forward` is the module's forward pass on a batch of crops (B, 1, d, h, w). Leaves the module in eval
 * mode.
 */
export async function recalibrateOnCrops(
  module: nn.Module,
  forward: (x: Tensor) => void,
  o: { cacheDir: string; names: string[]; crop: Shape3; device?: string; batchSize?: number; workers?: number },
): Promise<{ layers: number; batches: number }> {
  const loader = new Loader({
    cacheDir: o.cacheDir,
    names: o.names,
    batchSize: o.batchSize ?? 8,
    seed: 0,
    shuffle: false,
    dropLast: false,
    workers: o.workers ?? 1,
    views: lobeCropViews(o.crop),
  });
  const rc = new BatchNormRecalibration(module);
  try {
    for await (const b of loader.epoch(0)) {
      const B = b.indices.length;
      // a one-volume batch has no spread within a crop position; its crops still differ across positions
      const crops = b.locals.map((l) => torch.tensor(l, [B, 1, ...loader.localShape], { device: o.device }));
      try {
        rc.step(() => torch.tidy(() => forward(torch.cat(crops, 0))));
      } finally {
        torch.dispose(crops);
      }
    }
  } finally {
    await loader.close();
  }
  module.eval();
  return rc.count;
}
