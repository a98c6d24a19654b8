// The report generation task: a decoder trained on the encoder's visual tokens, one record.
import { record, type EvalTask } from '../task.js';
import { runReportGeneration } from './report-generation.js';

export const reportGenTask: EvalTask = {
  name: 'reportgen',
  oneScale: 'report generation on the global view',
  needsTokenizer: true,
  run: async (ctx) => {
    const r = ctx.config.reportgen;
    const data = ctx.target.loaded.config.data;
    return [
      await record(ctx, 'reportgen', '', async (workDir) => {
        const encoder = ctx.target.makeEncoder();
        try {
          return await runReportGeneration(encoder, ctx.target.loaded.tokenizer!, {
            cacheDir: ctx.cacheDir,
            trainSplit: data.trainSplit,
            testSplit: data.valSplit,
            epochs: r.epochs,
            batchSize: r.batchSize,
            lr: r.lr,
            freezeEncoder: r.freezeEncoder,
            decoder: r.decoder,
            maxLength: r.maxLength,
            beams: r.beams,
            seed: ctx.config.seed,
            limitTest: r.limitTest,
            device: ctx.device,
            onProgress: ctx.log,
            outDir: workDir,
          });
        } finally {
          encoder.dispose();
        }
      }),
    ];
  },
};
