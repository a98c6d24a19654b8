// What an evaluation task is, and what every task shares: the context it runs in, its records (one JSON file per
// task and setting, with the eval seed, the checkpoint id and the config hashes) and the resume rule (a record
// that exists for the same target and budget is read back instead of recomputed).
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type EvalConfig, hashJson } from './config.js';
import { type EvalTarget } from './target.js';
import { evalSplits, type EvalSplits } from './splits.js';

export interface RecordMeta {
  task: string;
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
  /** one value per key for the whole suite run (e.g. test embeddings several tasks use), disposed at its end */
  shared<T>(key: string, make: () => Promise<T>, dispose: (value: T) => void): Promise<T>;
}

export interface EvalTask {
  /** the name on the command line and in record file names */
  readonly name: string;
  /** needs a text tower aligned with the volumes (CLIP); skipped without one */
  readonly needsText?: boolean;
  /** needs the checkpoint's tokenizer (an image-only model has none); skipped without one */
  readonly needsTokenizer?: boolean;
  /** set when the task runs at one scale only (skipped under scale 'full' and 'crop'): the reason, for the log */
  readonly oneScale?: string;
  run(ctx: SuiteContext): Promise<EvalRecord[]>;
}

const label = (task: string, variant: string) => `${task}${variant ? `-${variant}` : ''}`;
const recordPath = (outDir: string, task: string, variant: string) => join(outDir, `${label(task, variant)}.json`);
export const pct = (f: number): string => `${+(f * 100).toFixed(2)}pct`;

/** Reads a record when it belongs to this target and budget (else undefined: it is recomputed). */
function existing(ctx: SuiteContext, task: string, variant: string): EvalRecord | undefined {
  const path = recordPath(ctx.outDir, task, variant);
  if (!existsSync(path)) return undefined;
  let r: EvalRecord;
  try {
    r = JSON.parse(readFileSync(path, 'utf8')) as EvalRecord;
  } catch (e) {
    throw new Error(`${path}: unreadable evaluation record (${(e as Error).message}); delete it to recompute`);
  }
  const m = r.meta;
  const same =
    m &&
    m.checkpointId === ctx.target.checkpointId &&
    m.evalConfigHash === hashJson(ctx.config) &&
    m.data === ctx.cacheDir;
  return same ? r : undefined;
}

/** One task setting's record: read back when present, else computed by `run` (in its own work folder) and written. */
export async function record<R>(
  ctx: SuiteContext,
  task: string,
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
  const workDir = join(ctx.outDir, 'work', label(task, variant));
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

export const isFull = (ctx: SuiteContext): boolean => ctx.config.scale === 'full';
/** The crop shape of the crop-scale readout (scale 'crop'), else undefined. */
export const cropOf = (ctx: SuiteContext): [number, number, number] | undefined =>
  ctx.config.scale === 'crop' ? ctx.config.crop!.shape : undefined;
/** The record variant: the task's own part, then 'full' or 'crop' when evaluated at that scale. */
export const variantOf = (ctx: SuiteContext, part: string): string =>
  [part, ctx.config.scale === 'full' || ctx.config.scale === 'crop' ? ctx.config.scale : ''].filter(Boolean).join('-');

export function splitsOf(ctx: SuiteContext): EvalSplits {
  const data = ctx.target.loaded.config.data;
  const { seed, valFraction } = ctx.config;
  return evalSplits(ctx.cacheDir, { seed, valFraction, trainSplit: data.trainSplit, testSplit: data.valSplit });
}
