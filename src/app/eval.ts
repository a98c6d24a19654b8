// `t3d eval <task> --checkpoint <run|checkpoint>`: the downstream evaluation suite on one target, and
// `t3d eval compare --runs <study>`: the paper-style table over methods and seeds. Option parsing and printing only.
import { join } from 'node:path';
import { loadEvalConfig, type EvalConfig } from '../eval/config.js';
import { TASK_NAMES } from '../eval/registry.js';
import { evaluateCheckpoint, writeEvaluationSummary } from '../eval/evaluate-checkpoint.js';
import { readLabelSubset, writeStudy, type StudyOptions } from '../eval/report/study.js';
import { UsageError, parseOptions } from './args.js';

const log = (msg: string) => console.log(`eval: ${msg}`);

function parseCompare(args: string[]): { runs: string } & StudyOptions {
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
  return {
    runs: o.runs as string,
    out: o.out as string | undefined,
    report: o.report as string | undefined,
    treatment: o.treatment as string | undefined,
    baseline: o.baseline as string | undefined,
    resamples: o.resamples as number | undefined,
    subset: o.subset ? readLabelSubset(o.subset as string) : undefined,
  };
}

async function runCompare(args: string[]): Promise<void> {
  const { runs, ...o } = parseCompare(args);
  const { md, mdPath, report } = await writeStudy(runs, o);
  console.log(md);
  log(`study table → ${mdPath}, report → ${report}`);
}

interface EvalOptions {
  tasks: string[];
  all: boolean;
  checkpoint: string;
  config: EvalConfig;
  init: 'pretrained' | 'random';
  initSeed?: number;
  out?: string;
  data?: string;
  device?: string;
  report?: string;
}

function parseEval(task: string | undefined, rest: string[]): EvalOptions {
  const tasks = task === 'all' ? [...TASK_NAMES] : (task ?? '').split(',');
  if (!task || tasks.some((t) => !TASK_NAMES.includes(t))) {
    const allowed = [...TASK_NAMES, 'all', 'compare'].join(', ');
    const got = task ?? '';
    throw new UsageError(`eval: first argument must be one of ${allowed}, or a comma list of tasks (got '${got}')`);
  }
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
  if (o.labels) {
    const labels = (o.labels as string)
      .split(',')
      .map((l) => l.trim())
      .filter(Boolean);
    config = { ...config, zeroshot: { ...config.zeroshot, labels } };
  }
  return {
    tasks,
    all: task === 'all',
    checkpoint: o.checkpoint as string,
    config,
    init,
    initSeed: o['init-seed'] as number | undefined,
    out: o.out as string | undefined,
    data: o.data as string | undefined,
    device: o.device as string | undefined,
    report: o.report as string | undefined,
  };
}

export async function runEval(args: string[]): Promise<void> {
  const [task, ...rest] = args;
  if (task === 'compare') return runCompare(rest);
  const { all, report, ...o } = parseEval(task, rest);
  const evaluated = await evaluateCheckpoint({ ...o, log });
  const reportPath = report ?? (all ? join(evaluated.outDir, 'report.html') : undefined);
  console.log(await writeEvaluationSummary(evaluated, { all, tasks: o.tasks, report: reportPath }));
  if (reportPath) log(`HTML report → ${reportPath}`);
}
