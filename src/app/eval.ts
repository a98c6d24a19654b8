// `t3d eval <task> --checkpoint <run|checkpoint>`: the downstream evaluation suite on one target, and
// `t3d eval compare --runs <study>`: the paper-style table over methods and seeds. Option parsing and printing only.
import { join } from 'node:path';
import { loadEvalConfig, type EvalConfig } from '../eval/config.js';
import { TASK_NAMES } from '../eval/registry.js';
import { evaluateCheckpoint, writeEvaluationSummary } from '../eval/evaluate-checkpoint.js';
import { readLabelSubset, writeStudy, type StudyOptions } from '../eval/report/study.js';
import { UsageError, parseOptions } from './args.js';

export const EVAL_SUMMARY = 'downstream evaluation: zero-shot, retrieval, linear probe, fine-tuning, segmentation, report generation; study tables';
export const EVAL_USAGE = `t3d eval <${[...TASK_NAMES, 'all'].join('|')}>[,<task>...] --checkpoint <run-or-checkpoint> `
  + `[--data <cache|dataset>] [--out dir] [--config default|quick|file.json]
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

function parseCompare(args: string[]): { runs: string } & StudyOptions {
  const o = parseOptions(args, {
    runs: 'string', out: 'string', report: 'string', treatment: 'string', baseline: 'string', resamples: 'number',
    subset: 'string',
  });
  if (!o.runs) throw new UsageError('eval compare: --runs <study-dir> is required');
  return {
    runs: o.runs as string, out: o.out as string | undefined, report: o.report as string | undefined,
    treatment: o.treatment as string | undefined, baseline: o.baseline as string | undefined,
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
    checkpoint: 'string', data: 'string', out: 'string', config: 'string', init: 'string', 'init-seed': 'number',
    seed: 'number', device: 'string', report: 'string', labels: 'string',
  });
  if (!o.checkpoint) throw new UsageError('eval: --checkpoint <run-or-checkpoint> is required');
  const init = (o.init as string | undefined) ?? 'pretrained';
  if (init !== 'pretrained' && init !== 'random') throw new Error(`--init must be 'pretrained' or 'random' (got '${init}')`);
  let config = loadEvalConfig((o.config as string | undefined) ?? 'default');
  if (o.seed !== undefined) config = { ...config, seed: o.seed as number };
  if (o.labels) {
    const labels = (o.labels as string).split(',').map((l) => l.trim()).filter(Boolean);
    config = { ...config, zeroshot: { ...config.zeroshot, labels } };
  }
  return {
    tasks, all: task === 'all', checkpoint: o.checkpoint as string, config, init,
    initSeed: o['init-seed'] as number | undefined,
    out: o.out as string | undefined, data: o.data as string | undefined, device: o.device as string | undefined,
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
