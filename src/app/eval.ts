// `t3d eval <task> --checkpoint <run|checkpoint>`: the downstream evaluation suite on one target, and
// `t3d eval compare --runs <study>`: the paper-style table over methods and seeds. Option parsing and printing only.
import { join } from 'node:path';
import { loadEvalConfig } from '../eval/config.js';
import { TASK_NAMES } from '../eval/registry.js';
import { evaluateCheckpoint, writeEvaluationSummary } from '../eval/evaluate-checkpoint.js';
import { readLabelSubset, writeStudy } from '../eval/report/study.js';
import { UsageError, parseOptions } from './args.js';

const log = (msg: string) => console.log(`eval: ${msg}`);

async function runCompare(args: string[]): Promise<void> {
  const { runs, subset, ...o } = parseOptions(args, {
    string: ['runs', 'out', 'report', 'treatment', 'baseline', 'subset'],
    number: ['resamples'],
  });
  if (!runs) throw new UsageError('eval compare: --runs <study-dir> is required');
  const { md, mdPath, report } = await writeStudy(runs, { ...o, subset: subset ? readLabelSubset(subset) : undefined });
  console.log(md);
  log(`study table → ${mdPath}, report → ${report}`);
}

export async function runEval(args: string[]): Promise<void> {
  const [task, ...rest] = args;
  if (task === 'compare') return runCompare(rest);
  const tasks = task === 'all' ? [...TASK_NAMES] : (task ?? '').split(',');
  if (!task || tasks.some((t) => !TASK_NAMES.includes(t))) {
    const allowed = [...TASK_NAMES, 'all', 'compare'].join(', ');
    throw new UsageError(
      `eval: first argument must be one of ${allowed}, or a comma list of tasks (got '${task ?? ''}')`,
    );
  }
  const { report, labels, seed, ...o } = parseOptions(rest, {
    string: ['checkpoint', 'data', 'out', 'config', 'init', 'device', 'report', 'labels'],
    number: ['init-seed', 'seed'],
  });
  if (!o.checkpoint) throw new UsageError('eval: --checkpoint <run-or-checkpoint> is required');
  const init = o.init ?? 'pretrained';
  if (init !== 'pretrained' && init !== 'random')
    throw new Error(`--init must be 'pretrained' or 'random' (got '${init}')`);
  let config = loadEvalConfig(o.config ?? 'default');
  if (seed !== undefined) config = { ...config, seed };
  if (labels) {
    const names = labels
      .split(',')
      .map((l) => l.trim())
      .filter(Boolean);
    config = { ...config, zeroshot: { ...config.zeroshot, labels: names } };
  }
  const evaluated = await evaluateCheckpoint({
    checkpoint: o.checkpoint,
    tasks,
    config,
    init,
    initSeed: o['init-seed'],
    out: o.out,
    data: o.data,
    device: o.device,
    log,
  });
  const all = task === 'all';
  const reportPath = report ?? (all ? join(evaluated.outDir, 'report.html') : undefined);
  console.log(await writeEvaluationSummary(evaluated, { all, tasks, report: reportPath }));
  if (reportPath) log(`HTML report → ${reportPath}`);
}
