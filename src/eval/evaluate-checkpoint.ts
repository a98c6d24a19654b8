// One checkpoint through the evaluation suite: its target, the cache to evaluate on (preprocessed from a dataset
// when needed), the records, and the summary and HTML report written beside them.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { readCacheIndex } from '../data/cache.js';
import { assertCachePreset, ensureCacheFrom } from '../data/ensure-cache.js';
import { Progress } from '../util/progress.js';
import { type EvalConfig } from './config.js';
import { evalTarget, type EvalTarget } from './target.js';
import { runSuite } from './suite.js';
import { type EvalRecord } from './task.js';
import { markdownSummary } from './report/headlines.js';
import { targetReportHtml } from './report/html.js';

export interface Evaluated {
  records: EvalRecord[];
  target: EvalTarget;
  cacheDir: string;
  outDir: string;
}

const consoleLog = (msg: string) => console.log(`eval: ${msg}`);

/** Runs (or resumes) `tasks` on one checkpoint; records go to `out` (default <run>/eval or <run>/eval-random-s<N>). */
export async function evaluateCheckpoint(o: {
  checkpoint: string;
  tasks: readonly string[];
  config: EvalConfig;
  init?: 'pretrained' | 'random';
  initSeed?: number;
  out?: string;
  data?: string;
  device?: string;
  log?: (msg: string) => void;
}): Promise<Evaluated> {
  const log = o.log ?? consoleLog;
  const init = o.init ?? 'pretrained';
  const target = evalTarget(o.checkpoint, { init, seed: o.initSeed });
  const runDir = dirname(dirname(target.checkpointDir));
  const outDir = o.out ?? join(runDir, init === 'random' ? `eval-random-s${target.pretrainSeed}` : 'eval');
  mkdirSync(outDir, { recursive: true });
  let progress: Progress | undefined;
  const { cache, preset } = target.loaded.config.data;
  const data = o.data ?? cache;
  if (!data)
    throw new Error(
      `${target.checkpointDir}: an imported model has no training cache; give the data to evaluate on with --data`,
    );
  assertCachePreset(data, preset, target.checkpointDir);
  const cacheDir = await ensureCacheFrom(data, preset, join(outDir, 'cache'), {
    onProgress: (done, total) => (progress ??= new Progress('preprocess', total)).update(done),
    log,
  });
  log(
    `${o.tasks.join(', ')} on ${cacheDir} for ${target.checkpointDir} (${init}, id ${target.checkpointId}), ` +
      `budget '${o.config.name}' → ${outDir}`,
  );
  const records = await runSuite({ target, config: o.config, cacheDir, outDir, device: o.device, log }, o.tasks);
  return { records, target, cacheDir, outDir };
}

/**
 * Writes the markdown summary (summary.md for every task, else summary-<tasks>.md) and, when `report` is given,
 * the HTML report; returns the markdown.
 */
export async function writeEvaluationSummary(
  e: Evaluated,
  o: { all: boolean; tasks: readonly string[]; report?: string },
): Promise<string> {
  const random = e.target.init === 'random' ? ' (random init)' : '';
  const md = markdownSummary(e.records, `Evaluation of ${e.target.checkpointDir}${random}`);
  writeFileSync(join(e.outDir, o.all ? 'summary.md' : `summary-${o.tasks.join('-')}.md`), md);
  if (o.report) {
    const html = await targetReportHtml(e.records, {
      title: `T3D evaluation — ${e.target.checkpointDir}`,
      metricsPath: e.target.metricsPath,
      labelNames: readCacheIndex(e.cacheDir).labelNames,
    });
    writeFileSync(o.report, html);
  }
  return md;
}
