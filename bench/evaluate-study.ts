// `npm run experiment:evaluate`: `t3d eval all` on every run of a study folder (each `<method>-s<seed>` with
// checkpoints), then `t3d eval compare` over them. Resumable: finished evaluation records are skipped.
// Env: OUT (runs/baselines), EVAL_CONFIG (default), TASKS (all, or a comma list such as zeroshot,retrieval,probe).
// Runs that are still pre-training (no checkpoint yet) are skipped; rerun to pick them up.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../src/util/paths.js';

const root = packageRoot();
const out = join(root, process.env.OUT ?? join('runs', 'baselines'));
const config = process.env.EVAL_CONFIG ?? 'default';
const tasks = process.env.TASKS ?? 'all';
const cli = join(root, 'dist', 'src', 'app', 'cli.js');
const node = (args: string[]) => {
  const r = spawnSync('node', [cli, ...args], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`t3d ${args.join(' ')} failed (exit ${r.status})`);
};
// seeds outer, methods inner: every method has a first seed evaluated before any gets a second
const runs = readdirSync(out).filter((d) => /-s\d+$/.test(d) && existsSync(join(out, d, 'checkpoints')))
  .sort((a, b) => Number(a.split('-s').pop()) - Number(b.split('-s').pop()) || a.localeCompare(b));
for (const run of runs) node(['eval', tasks, '--checkpoint', join(out, run), '--config', config]);
node(['eval', 'compare', '--runs', out]);
