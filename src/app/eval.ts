// `t3d eval <task> --checkpoint <run|checkpoint>`: the downstream evaluation suite on one target, and
// `t3d eval compare --runs <study>`: the paper-style table over methods and seeds.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { readSource } from '../data/sources.js';
import { buildCache, readCacheIndex } from '../data/cache.js';
import { loadPreset } from '../data/presets.js';
import { loadEvalConfig, type EvalConfig } from '../eval/config.js';
import { evalTarget, type EvalTarget } from '../eval/target.js';
import { runSuite, TASKS, type EvalRecord, type TaskName } from '../eval/suite.js';
import { markdownSummary, type LabelSubset } from '../eval/report/headlines.js';
import { readJsonFile } from '../util/files.js';
import { targetReportHtml, studyReportHtml } from '../eval/report/html.js';
import { collectStudy, studyMarkdown, studyTable } from '../eval/report/compare.js';
import { Progress } from '../util/progress.js';
import { UsageError, parseOptions } from './args.js';

export const EVAL_SUMMARY =
  'downstream evaluation: zero-shot, retrieval, linear probe, fine-tuning, segmentation, report generation; study tables';
export const EVAL_USAGE = `t3d eval <${[...TASKS, 'all'].join('|')}>[,<task>...] --checkpoint <run-or-checkpoint> [--data <cache|dataset>] [--out dir] [--config default|quick|file.json]
                [--init pretrained|random] [--init-seed N] [--seed N] [--labels 'A,B,...'] [--device cpu|cuda] [--report out.html]
t3d eval compare --runs <study-dir> [--out dir] [--report out.html] [--treatment t3d] [--baseline clip-only] [--subset labels.json]

Results: one JSON per task and setting in --out (default <run>/eval, or <run>/eval-random-s<N> with --init random), every number
with the evaluation seed, checkpoint id and config hashes; summary.md; and with --report (default for 'all': <out>/report.html)
a self-contained HTML report. Rerunning skips finished records. --data defaults to the checkpoint's own cache; a dataset folder or
manifest is preprocessed with the checkpoint's preset first. Test volumes = the cache's held-out split; a share of the training split
(valFraction, 20 % by default) is held out for early stopping and thresholds. Zero-shot and retrieval need a text tower trained with CLIP;
--labels restricts zero-shot to some of the cache's labels (every number says how many labels it covers).
'compare' reads <study-dir>/<method>-s<seed>/eval/*.json; --subset (a JSON file {"name", "labels"}, e.g. results/ceiling/fine-grained.json)
adds each classification task's macro AUROC over those labels, with its CI and paired difference.

Examples:
  t3d eval all --checkpoint runs/demo
  t3d eval zeroshot --checkpoint runs/t3d-a --config quick
  t3d eval zeroshot,retrieval,probe --checkpoint runs/t3d-a
  t3d eval probe --checkpoint runs/t3d-a --init random --out runs/t3d-a/eval-random
  t3d eval compare --runs runs/baselines --report runs/baselines/study.html`;

const log = (msg: string) => console.log(`eval: ${msg}`);

/** The cache to evaluate on: an existing cache, or a dataset preprocessed with the checkpoint's preset. */
async function resolveCache(data: string, preset: string, outDir: string): Promise<string> {
  if (existsSync(join(data, 'cache.json'))) return data;
  if (!existsSync(data)) throw new Error(`--data ${data}: no such cache, dataset folder or manifest`);
  const cache = join(outDir, 'cache');
  const src = readSource(data);
  const p = new Progress('preprocess', src.records.length);
  const r = await buildCache(src, loadPreset(preset), cache, { onProgress: (d) => p.update(d) });
  if (r.quarantined.length) log(`${r.quarantined.length} volumes quarantined (see ${join(cache, 'quarantine.jsonl')})`);
  return cache;
}

async function runCompare(args: string[]): Promise<void> {
  const o = parseOptions(args, {
    runs: 'string',
    out: 'string',
    report: 'string',
    treatment: 'string',
    baseline: 'string',
    resamples: 'number',
    subset: 'string',
  });
  if (!o.runs) throw new UsageError('eval compare: --runs <study-dir> is required');
  let subset: LabelSubset | undefined;
  if (o.subset) {
    const s = readJsonFile<{ name?: string; labels?: unknown }>(o.subset as string);
    if (!Array.isArray(s.labels) || !s.labels.every((l) => typeof l === 'string'))
      throw new Error(`--subset ${o.subset}: expected {"name": ..., "labels": ["Lung nodule", ...]}`);
    subset = { name: s.name ?? 'subset', labels: s.labels as string[] };
  }
  const methods = collectStudy(o.runs as string, 'eval', subset);
  if (!methods.length) throw new Error(`${o.runs}: no <method>-s<seed>/eval/*.json records found`);
  const t = studyTable(methods, {
    treatment: o.treatment as string | undefined,
    baseline: o.baseline as string | undefined,
    resamples: o.resamples as number | undefined,
  });
  const out = (o.out as string | undefined) ?? (o.runs as string);
  mkdirSync(out, { recursive: true });
  const md = studyMarkdown(methods, t, `Study: ${methods.map((m) => m.name).join(', ')}`);
  writeFileSync(join(out, 'study.md'), md);
  const report = (o.report as string | undefined) ?? join(out, 'study.html');
  writeFileSync(report, await studyReportHtml(methods, t, { title: 'T3D evaluation study' }));
  console.log(md);
  log(`study table → ${join(out, 'study.md')}, report → ${report}`);
}

export interface Evaluated {
  records: EvalRecord[];
  target: EvalTarget;
  cacheDir: string;
  outDir: string;
}

/** Runs (or resumes) `tasks` on one checkpoint; records go to `out` (default <run>/eval or <run>/eval-random-s<N>). */
export async function evaluateCheckpoint(o: {
  checkpoint: string;
  tasks: TaskName[];
  config: EvalConfig;
  init?: 'pretrained' | 'random';
  initSeed?: number;
  out?: string;
  data?: string;
  device?: string;
}): Promise<Evaluated> {
  const init = o.init ?? 'pretrained';
  const target = evalTarget(o.checkpoint, { init, seed: o.initSeed });
  const runDir = dirname(dirname(target.checkpointDir));
  const outDir = o.out ?? join(runDir, init === 'random' ? `eval-random-s${target.pretrainSeed}` : 'eval');
  mkdirSync(outDir, { recursive: true });
  const cacheDir = await resolveCache(
    o.data ?? target.loaded.config.data.cache,
    target.loaded.config.data.preset,
    outDir,
  );
  log(
    `${o.tasks.join(', ')} on ${cacheDir} for ${target.checkpointDir} (${init}, id ${target.checkpointId}), budget '${o.config.name}' → ${outDir}`,
  );
  const records = await runSuite({ target, config: o.config, cacheDir, outDir, device: o.device, log }, o.tasks);
  return { records, target, cacheDir, outDir };
}

export async function runEval(args: string[]): Promise<void> {
  const [task, ...rest] = args;
  if (task === 'compare') return runCompare(rest);
  const tasks: TaskName[] = task === 'all' ? [...TASKS] : ((task ?? '').split(',') as TaskName[]);
  if (!task || tasks.some((t) => !(TASKS as readonly string[]).includes(t)))
    throw new UsageError(
      `eval: first argument must be one of ${[...TASKS, 'all', 'compare'].join(', ')}, or a comma list of tasks (got '${task ?? ''}')`,
    );
  const o = parseOptions(rest, {
    checkpoint: 'string',
    data: 'string',
    out: 'string',
    config: 'string',
    init: 'string',
    'init-seed': 'number',
    seed: 'number',
    device: 'string',
    report: 'string',
    labels: 'string',
  });
  if (!o.checkpoint) throw new UsageError('eval: --checkpoint <run-or-checkpoint> is required');
  const init = (o.init as string | undefined) ?? 'pretrained';
  if (init !== 'pretrained' && init !== 'random')
    throw new Error(`--init must be 'pretrained' or 'random' (got '${init}')`);
  let config = loadEvalConfig((o.config as string | undefined) ?? 'default');
  if (o.seed !== undefined) config = { ...config, seed: o.seed as number };
  if (o.labels)
    config = {
      ...config,
      zeroshot: {
        ...config.zeroshot,
        labels: (o.labels as string)
          .split(',')
          .map((l) => l.trim())
          .filter(Boolean),
      },
    };
  const { records, target, cacheDir, outDir } = await evaluateCheckpoint({
    checkpoint: o.checkpoint as string,
    tasks,
    config,
    init,
    initSeed: o['init-seed'] as number | undefined,
    out: o.out as string | undefined,
    data: o.data as string | undefined,
    device: o.device as string | undefined,
  });
  const md = markdownSummary(
    records,
    `Evaluation of ${target.checkpointDir}${init === 'random' ? ' (random init)' : ''}`,
  );
  writeFileSync(join(outDir, task === 'all' ? 'summary.md' : `summary-${tasks.join('-')}.md`), md);
  console.log(md);
  const report = (o.report as string | undefined) ?? (task === 'all' ? join(outDir, 'report.html') : undefined);
  if (report) {
    writeFileSync(
      report,
      await targetReportHtml(records, {
        title: `T3D evaluation — ${target.checkpointDir}`,
        metricsPath: target.metricsPath,
        labelNames: readCacheIndex(cacheDir).labelNames,
      }),
    );
    log(`HTML report → ${report}`);
  }
}
