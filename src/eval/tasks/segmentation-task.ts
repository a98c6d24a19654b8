// The organ segmentation task: one record per encoder mode and mask fraction.
import { pct, record, type EvalRecord, type EvalTask } from '../task.js';
import { runSegmentation } from './segmentation.js';

export const segmentationTask: EvalTask = {
  name: 'segmentation',
  oneScale: 'segmentation always works on the full-resolution volume',
  run: async (ctx) => {
    const s = ctx.config.segmentation;
    const data = ctx.target.loaded.config.data;
    const out: EvalRecord[] = [];
    for (const mode of s.modes) {
      for (const fraction of s.fractions) {
        out.push(
          await record(ctx, 'segmentation', `${mode}-${pct(fraction)}`, async (workDir) => ({
            mode,
            fraction,
            ...(await runSegmentation(ctx.target.makeEncoder, {
              cacheDir: ctx.cacheDir,
              trainSplit: data.trainSplit,
              testSplit: data.valSplit,
              maskFraction: fraction,
              mode,
              epochs: s.epochs,
              batchSize: s.batchSize,
              lr: s.lr,
              patch: s.patch,
              overlap: s.overlap,
              seed: ctx.config.seed,
              limitTest: s.limitTest,
              device: ctx.device,
              outDir: workDir,
              onProgress: ctx.log,
              overlays: s.overlays,
              classes: s.classes,
            })),
          })),
        );
      }
    }
    return out;
  },
};
