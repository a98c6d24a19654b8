// The zero-shot classification task, and the text-side setup it shares with retrieval: the model on the
// evaluation device, the labels checked against the cache's, and the test volumes embedded once per suite run.
import * as torch from '../../torch/index.js';
import { readCacheIndex } from '../../data/cache.js';
import { embedSplit, type Embedded } from '../../inference/embed.js';
import { classificationReport } from '../metrics/classification-report.js';
import { cropOf, isFull, record, splitsOf, variantOf, type EvalTask, type SuiteContext } from '../task.js';
import { recalibrateOnCrops } from '../../inference/recalibrate.js';
import { zeroShotScores } from './zeroshot.js';

export interface TextSetup {
  labelNames: string[];
  /** the cache's label rows reduced to labelNames' columns */
  pick: (labels: number[][]) => number[][];
  embedOptions: { device?: string; maxTokens: number; fullResolution: boolean; crop?: [number, number, number] };
  bootstrap: { resamples: number; seed: number };
}

/** Moves the model to the evaluation device and checks the zero-shot labels (before any record is read). */
export function textSetup(ctx: SuiteContext): TextSetup {
  const { model, config } = ctx.target.loaded;
  if (ctx.device && ctx.device !== 'cpu') model.to({ device: ctx.device });
  const all = readCacheIndex(ctx.cacheDir).labelNames;
  const labelNames = ctx.config.zeroshot.labels ?? all;
  const unknown = labelNames.filter((l) => !all.includes(l));
  if (unknown.length) {
    const names = unknown.map((l) => `'${l}'`).join(', ');
    throw new Error(`zeroshot.labels: ${names} not among the cache's labels (${all.join(', ')})`);
  }
  const columns = labelNames.map((l) => all.indexOf(l));
  return {
    labelNames,
    pick: (labels) => labels.map((y) => columns.map((c) => y[c]!)),
    embedOptions: {
      device: ctx.device,
      maxTokens: config.data.maxTokens,
      fullResolution: isFull(ctx),
      crop: cropOf(ctx),
    },
    bootstrap: { resamples: ctx.config.bootstrap.resamples, seed: ctx.config.seed },
  };
}

/**
 * Under the crop-scale readout, the model's BatchNorm statistics recalibrated on the evaluation-train volumes' crops,
 * once per suite run, before any crop is embedded (otherwise nothing to do).
 */
export async function cropReady(ctx: SuiteContext): Promise<void> {
  const crop = cropOf(ctx);
  if (!crop) return;
  const { model } = ctx.target.loaded;
  const names = splitsOf(ctx).train;
  await ctx.shared(
    'crop-batchnorm',
    async () => {
      const r = await recalibrateOnCrops(model.visual, (x) => model.visual.encode(x), {
        cacheDir: ctx.cacheDir,
        names,
        crop,
        device: ctx.device,
      });
      ctx.log(`crop readout: BatchNorm recalibrated on ${names.length} volumes' lobe crops (${r.layers} layers)`);
    },
    () => undefined,
  );
}

/** The test volumes and their reports, embedded once per suite run. */
export function testEmbeddings(ctx: SuiteContext, s: TextSetup): Promise<Embedded> {
  const { model, tokenizer } = ctx.target.loaded;
  return ctx.shared(
    'test-embeddings',
    async () => {
      await cropReady(ctx);
      return embedSplit(model, tokenizer, ctx.cacheDir, undefined, { ...s.embedOptions, names: splitsOf(ctx).test });
    },
    (e) => torch.dispose([e.volumes, e.reports]),
  );
}

export const zeroShotTask: EvalTask = {
  name: 'zeroshot',
  needsText: true,
  run: async (ctx) => {
    const s = textSetup(ctx);
    const { model, tokenizer } = ctx.target.loaded;
    return [
      await record(ctx, 'zeroshot', variantOf(ctx, ''), async () => {
        const valNames = splitsOf(ctx).val;
        await cropReady(ctx);
        const val = await embedSplit(model, tokenizer, ctx.cacheDir, undefined, { ...s.embedOptions, names: valNames });
        try {
          const t = await testEmbeddings(ctx, s);
          const zo = { templates: ctx.config.zeroshot.templates, device: ctx.device };
          const valScores = zeroShotScores(model, tokenizer, val.volumes, s.labelNames, zo);
          const testScores = zeroShotScores(model, tokenizer, t.volumes, s.labelNames, zo);
          const test = { scores: testScores, labels: s.pick(t.labels) };
          const valSet = { scores: valScores, labels: s.pick(val.labels) };
          const report = classificationReport(s.labelNames, test, valSet, s.bootstrap);
          // both score sets are kept: the analyzer chooses other operating points on validation and rates them on test
          const templates = ctx.config.zeroshot.templates;
          return {
            ...report,
            templates,
            test: { names: t.names, ...test },
            validation: { names: val.names, ...valSet },
          };
        } finally {
          torch.dispose([val.volumes, val.reports]);
        }
      }),
    ];
  },
};
