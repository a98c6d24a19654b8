// The linear-probe and fine-tuning tasks: one transfer protocol in two modes, one record per label fraction.
import { join } from 'node:path';
import { readCacheIndex } from '../../data/cache.js';
import { classificationReport } from '../metrics/classification-report.js';
import { cropOf, isFull, pct, record, splitsOf, variantOf } from '../task.js';
import { type EvalRecord, type EvalTask, type SuiteContext } from '../task.js';
import { runTransfer } from './transfer.js';

async function transfer(ctx: SuiteContext, task: string, mode: 'linear' | 'finetune'): Promise<EvalRecord[]> {
  const splits = splitsOf(ctx);
  const labelNames = readCacheIndex(ctx.cacheDir).labelNames;
  const budget = ctx.config.transfer[mode];
  const bootstrap = { resamples: ctx.config.bootstrap.resamples, seed: ctx.config.seed };
  const out: EvalRecord[] = [];
  for (const fraction of ctx.config.transfer.fractions) {
    out.push(
      await record(ctx, task, variantOf(ctx, pct(fraction)), async (workDir) => {
        const r = await runTransfer(ctx.target.makeEncoder, {
          // beside the cache, so every method and pre-training seed evaluated on it trains on the same labelled volumes
          cacheDir: ctx.cacheDir,
          mode,
          fraction,
          splits,
          subsetFile: join(ctx.cacheDir, 'eval-subsets', `labels-${pct(fraction)}-seed${ctx.config.seed}.json`),
          ...budget,
          seed: ctx.config.seed,
          device: ctx.device,
          outDir: workDir,
          onProgress: ctx.log,
          fullResolution: isFull(ctx),
          crop: cropOf(ctx),
          featureFile:
            mode === 'linear' ? join(ctx.outDir, 'work', `${variantOf(ctx, 'probe-features')}.safetensors`) : undefined,
        });
        const test = { scores: r.testScores, labels: r.testLabels };
        const report = classificationReport(labelNames, test, { scores: r.valScores, labels: r.valLabels }, bootstrap);
        return { ...report, fraction, transfer: r };
      }),
    );
  }
  return out;
}

export const probeTask: EvalTask = { name: 'probe', run: (ctx) => transfer(ctx, 'probe', 'linear') };
export const finetuneTask: EvalTask = {
  name: 'finetune',
  run: (ctx) => transfer(ctx, 'finetune', 'finetune'),
};
