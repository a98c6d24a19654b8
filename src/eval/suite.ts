// The evaluation harness: runs each downstream task on one target (checkpoint or random init), writes one
// JSON record per task and setting (every number with the eval seed, the checkpoint id and the config
// hashes), and skips a record that already exists for the same target and budget, so reruns resume.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../torch/index.js';
import { readCacheIndex } from '../data/cache.js';
import { type EvalConfig, hashJson } from './config.js';
import { type EvalTarget } from './target.js';
import { embedSplit, rows, zeroShotScores, type Embedded } from './tasks/zeroshot.js';
import { classificationReport } from './metrics/classification-report.js';
import { retrievalReport } from './tasks/retrieval.js';
import { evalSplits, type EvalSplits } from './splits.js';
import { runTransfer } from './tasks/transfer.js';
import { runSegmentation } from './tasks/segmentation.js';
import { runReportGeneration } from './tasks/report-generation.js';

export const TASKS = ['zeroshot', 'retrieval', 'probe', 'finetune', 'segmentation', 'reportgen'] as const;
export type TaskName = (typeof TASKS)[number];

export interface RecordMeta {
  task: TaskName;
  /** the setting within a task (label fraction, frozen/fine-tuned), '' when there is one */
  variant: string;
  evalSeed: number;
  pretrainSeed: number;
  init: 'pretrained' | 'random';
  checkpoint: string;
  checkpointId: string;
  configHash: string;
  evalConfig: string;
  evalConfigHash: string;
  data: string;
  seconds: number;
  finishedAt: string;
}
export interface EvalRecord<R = unknown> {
  meta: RecordMeta;
  result: R;
}

export interface SuiteContext {
  target: EvalTarget;
  config: EvalConfig;
  cacheDir: string;
  outDir: string;
  device?: string;
  log: (msg: string) => void;
}

const recordPath = (outDir: string, task: TaskName, variant: string) =>
  join(outDir, `${task}${variant ? `-${variant}` : ''}.json`);
const pct = (f: number) => `${+(f * 100).toFixed(2)}pct`;

/** Reads a record when it belongs to this target and budget (else undefined: it is recomputed). */
function existing(ctx: SuiteContext, task: TaskName, variant: string): EvalRecord | undefined {
  const path = recordPath(ctx.outDir, task, variant);
  if (!existsSync(path)) return undefined;
  let r: EvalRecord;
  try {
    r = JSON.parse(readFileSync(path, 'utf8')) as EvalRecord;
  } catch (e) {
    throw new Error(`${path}: unreadable evaluation record (${(e as Error).message}); delete it to recompute`);
  }
  const m = r.meta;
  return m &&
    m.checkpointId === ctx.target.checkpointId &&
    m.evalConfigHash === hashJson(ctx.config) &&
    m.data === ctx.cacheDir
    ? r
    : undefined;
}

async function record<R>(
  ctx: SuiteContext,
  task: TaskName,
  variant: string,
  run: (workDir: string) => Promise<R>,
): Promise<EvalRecord<R>> {
  const found = existing(ctx, task, variant);
  if (found) {
    ctx.log(`${task}${variant ? ` ${variant}` : ''}: already done (${recordPath(ctx.outDir, task, variant)})`);
    return found as EvalRecord<R>;
  }
  const t0 = Date.now();
  ctx.log(`${task}${variant ? ` ${variant}` : ''}: running`);
  const workDir = join(ctx.outDir, 'work', `${task}${variant ? `-${variant}` : ''}`);
  mkdirSync(workDir, { recursive: true });
  const result = await run(workDir);
  const t = ctx.target;
  const meta: RecordMeta = {
    task,
    variant,
    evalSeed: ctx.config.seed,
    pretrainSeed: t.pretrainSeed,
    init: t.init,
    checkpoint: t.checkpointDir,
    checkpointId: t.checkpointId,
    configHash: t.configHash,
    evalConfig: ctx.config.name,
    evalConfigHash: hashJson(ctx.config),
    data: ctx.cacheDir,
    seconds: (Date.now() - t0) / 1000,
    finishedAt: new Date().toISOString(),
  };
  const path = recordPath(ctx.outDir, task, variant);
  writeFileSync(`${path}.tmp`, JSON.stringify({ meta, result }) + '\n');
  renameSync(`${path}.tmp`, path);
  ctx.log(`${task}${variant ? ` ${variant}` : ''}: done in ${meta.seconds.toFixed(0)} s → ${path}`);
  return { meta, result };
}

const full = (ctx: SuiteContext) => ctx.config.scale === 'full';
/** The record variant: the task's own part, then 'full' for full-resolution evaluation. */
const variantOf = (ctx: SuiteContext, part: string) => [part, full(ctx) ? 'full' : ''].filter(Boolean).join('-');

function splitsOf(ctx: SuiteContext): EvalSplits {
  return evalSplits(ctx.cacheDir, {
    seed: ctx.config.seed,
    valFraction: ctx.config.valFraction,
    trainSplit: ctx.target.loaded.config.data.trainSplit,
    testSplit: ctx.target.loaded.config.data.valSplit,
  });
}

/** Zero-shot classification and retrieval share one embedding pass over the test volumes. */
async function zeroShotAndRetrieval(ctx: SuiteContext, tasks: Set<TaskName>): Promise<EvalRecord[]> {
  const { model, tokenizer, config } = ctx.target.loaded;
  if (ctx.device && ctx.device !== 'cpu') model.to({ device: ctx.device });
  const splits = splitsOf(ctx);
  const all = readCacheIndex(ctx.cacheDir).labelNames;
  const labelNames = ctx.config.zeroshot.labels ?? all;
  const unknown = labelNames.filter((l) => !all.includes(l));
  if (unknown.length)
    throw new Error(
      `zeroshot.labels: ${unknown.map((l) => `'${l}'`).join(', ')} not among the cache's labels (${all.join(', ')})`,
    );
  const columns = labelNames.map((l) => all.indexOf(l));
  const pick = (labels: number[][]) => labels.map((y) => columns.map((c) => y[c]!));
  const o = { device: ctx.device, maxTokens: config.data.maxTokens, fullResolution: full(ctx) };
  const bo = { resamples: ctx.config.bootstrap.resamples, seed: ctx.config.seed };
  let test: Embedded | undefined;
  const embedTest = async () =>
    (test ??= await embedSplit(model, tokenizer, ctx.cacheDir, undefined, { ...o, names: splits.test }));
  const out: EvalRecord[] = [];
  try {
    if (tasks.has('zeroshot')) {
      out.push(
        await record(ctx, 'zeroshot', variantOf(ctx, ''), async () => {
          const val = await embedSplit(model, tokenizer, ctx.cacheDir, undefined, { ...o, names: splits.val });
          try {
            const t = await embedTest();
            const zo = { templates: ctx.config.zeroshot.templates, device: ctx.device };
            const valScores = zeroShotScores(model, tokenizer, val.volumes, labelNames, zo);
            const testScores = zeroShotScores(model, tokenizer, t.volumes, labelNames, zo);
            const report = classificationReport(
              labelNames,
              { scores: testScores, labels: pick(t.labels) },
              { scores: valScores, labels: pick(val.labels) },
              bo,
            );
            return {
              ...report,
              templates: ctx.config.zeroshot.templates,
              test: { names: t.names, scores: testScores, labels: pick(t.labels) },
            };
          } finally {
            torch.dispose([val.volumes, val.reports]);
          }
        }),
      );
    }
    if (tasks.has('retrieval')) {
      out.push(
        await record(ctx, 'retrieval', variantOf(ctx, ''), async () => {
          const t = await embedTest();
          return { names: t.names, ...retrievalReport(rows(t.volumes), rows(t.reports), t.labels, bo) };
        }),
      );
    }
  } finally {
    if (test) torch.dispose([test.volumes, test.reports]);
  }
  return out;
}

async function transfer(ctx: SuiteContext, mode: 'linear' | 'finetune'): Promise<EvalRecord[]> {
  const splits = splitsOf(ctx);
  const labelNames = readCacheIndex(ctx.cacheDir).labelNames;
  const budget = ctx.config.transfer[mode];
  const out: EvalRecord[] = [];
  for (const fraction of ctx.config.transfer.fractions) {
    out.push(
      await record(ctx, mode === 'linear' ? 'probe' : 'finetune', variantOf(ctx, pct(fraction)), async (workDir) => {
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
          fullResolution: full(ctx),
          featureFile:
            mode === 'linear' ? join(ctx.outDir, 'work', `${variantOf(ctx, 'probe-features')}.safetensors`) : undefined,
        });
        const report = classificationReport(
          labelNames,
          { scores: r.testScores, labels: r.testLabels },
          { scores: r.valScores, labels: r.valLabels },
          { resamples: ctx.config.bootstrap.resamples, seed: ctx.config.seed },
        );
        return { ...report, fraction, transfer: r };
      }),
    );
  }
  return out;
}

async function segmentation(ctx: SuiteContext): Promise<EvalRecord[]> {
  const s = ctx.config.segmentation;
  const out: EvalRecord[] = [];
  for (const mode of s.modes) {
    for (const fraction of s.fractions) {
      out.push(
        await record(ctx, 'segmentation', `${mode}-${pct(fraction)}`, async (workDir) => ({
          mode,
          fraction,
          ...(await runSegmentation(ctx.target.makeEncoder, {
            cacheDir: ctx.cacheDir,
            trainSplit: ctx.target.loaded.config.data.trainSplit,
            testSplit: ctx.target.loaded.config.data.valSplit,
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
}

async function reportGeneration(ctx: SuiteContext): Promise<EvalRecord[]> {
  const r = ctx.config.reportgen;
  return [
    await record(ctx, 'reportgen', '', async (workDir) => {
      const encoder = ctx.target.makeEncoder();
      try {
        return await runReportGeneration(encoder, ctx.target.loaded.tokenizer, {
          cacheDir: ctx.cacheDir,
          trainSplit: ctx.target.loaded.config.data.trainSplit,
          testSplit: ctx.target.loaded.config.data.valSplit,
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
}

/** Runs the chosen tasks in order; zero-shot and retrieval are skipped (with a note) without an aligned text tower. */
export async function runSuite(ctx: SuiteContext, tasks: TaskName[]): Promise<EvalRecord[]> {
  mkdirSync(ctx.outDir, { recursive: true });
  const chosen = new Set(tasks);
  const out: EvalRecord[] = [];
  const textTasks = new Set([...chosen].filter((t) => t === 'zeroshot' || t === 'retrieval'));
  if (textTasks.size && !ctx.target.textAligned) {
    ctx.log(
      `${[...textTasks].join(', ')}: skipped: ${ctx.target.init === 'random' ? 'random weights have no aligned text tower' : 'this checkpoint was trained without the CLIP objective (vision-only), so it has no aligned text tower'}`,
    );
  } else if (textTasks.size) out.push(...(await zeroShotAndRetrieval(ctx, textTasks)));
  if (chosen.has('probe')) out.push(...(await transfer(ctx, 'linear')));
  if (chosen.has('finetune')) out.push(...(await transfer(ctx, 'finetune')));
  const oneScale = [...chosen].filter((t) => t === 'segmentation' || t === 'reportgen');
  if (full(ctx) && oneScale.length) {
    ctx.log(
      `${oneScale.join(', ')}: skipped under scale 'full' (segmentation always works on the full-resolution volume, report generation on the global view)`,
    );
    return out;
  }
  if (chosen.has('segmentation')) out.push(...(await segmentation(ctx)));
  if (chosen.has('reportgen')) out.push(...(await reportGeneration(ctx)));
  return out;
}
