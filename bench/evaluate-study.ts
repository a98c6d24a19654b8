// `npm run experiment:evaluate`: `t3d eval all` on every run of a study folder (each `<method>-s<seed>` with
// checkpoints), then `t3d eval compare` over them. Resumable: finished evaluation records are skipped.
// ARMS=all (or a comma list of arms) instead runs the TMA study's arms and writes their table: bench/tma-arms.ts.
// Env: OUT (runs/baselines), EVAL_CONFIG (default; a comma list evaluates with each, e.g. tma-study,tma-study-full for
// both scales; a config may carry its own tasks, e.g. tma-study-crop:zeroshot+retrieval+probe), TASKS (all, or a
// comma list such as zeroshot,retrieval,probe: the tasks of the configs without their own), SUBSET (a labels JSON for compare's
// --subset, e.g. results/ceiling/run-5/fine-grained.json), TREATMENT (compare's --treatment, t3d by default).
// Runs that are still pre-training (no checkpoint yet) are skipped; rerun to pick them up.
// PRETRAIN=<methods> (e.g. random-init,clip-only,t3d,simclr,restoration) with SEEDS (0,1,2) instead goes run by run:
// pre-train it (`experiment:learning`, same settings), evaluate it, then copy its records and metrics.jsonl to KEEP
// (results/evaluation-study) and mark it complete there. KEEP is committed, so a study outlives the machine it ran
// on, and a run complete in KEEP is not pre-trained again; compare then reads KEEP.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import { packageRoot } from '../src/util/paths.js';
import { parseEvalPlan } from '../src/eval/report/arms.js';
import { TASK_NAMES } from '../src/eval/registry.js';
import { runArmStudy } from './tma-arms.js';

const root = packageRoot();
const out = resolve(root, process.env.OUT ?? join('runs', 'baselines'));
const tasks = process.env.TASKS ?? 'all';
const plan = parseEvalPlan(process.env.EVAL_CONFIG ?? 'default', tasks, TASK_NAMES);
const cli = join(root, 'dist', 'src', 'app', 'cli.js');
const spawn = (script: string, args: string[], env: Record<string, string> = {}) => {
  const r = spawnSync('node', [script, ...args], { stdio: 'inherit', env: { ...process.env, ...env } });
  if (r.status !== 0) throw new Error(`${script} ${args.join(' ')} failed (exit ${r.status})`);
};
const node = (args: string[]) => spawn(cli, args);
const compareArgs = [
  ...(process.env.SUBSET ? ['--subset', resolve(root, process.env.SUBSET)] : []),
  ...(process.env.TREATMENT ? ['--treatment', process.env.TREATMENT] : []),
];

const methods = process.env.PRETRAIN?.split(',');
if (process.env.ARMS) {
  await runArmStudy();
} else if (methods) {
  const keep = resolve(root, process.env.KEEP ?? join('results', 'evaluation-study'));
  const seeds = (process.env.SEEDS ?? '0,1,2').split(',');
  for (const seed of seeds) {
    for (const method of methods) {
      const run = `${method}-s${seed}`;
      const kept = join(keep, run);
      if (existsSync(join(kept, 'complete.json'))) {
        console.log(`${run}: complete in ${kept}`);
        continue;
      }
      spawn(join(root, 'dist', 'bench', 'learning.js'), [], { VARIANTS: method, SEEDS: seed, OUT: out });
      for (const e of plan) node(['eval', e.tasks, '--checkpoint', join(out, run), '--config', e.config]);
      mkdirSync(join(kept, 'eval'), { recursive: true });
      // the kept records name checkpoints and data relative to the package root: no machine paths in the repository
      const relative = (text: string) => text.split(root + sep).join('');
      for (const f of readdirSync(join(out, run, 'eval')).filter((n) => n.endsWith('.json'))) {
        writeFileSync(join(kept, 'eval', f), relative(readFileSync(join(out, run, 'eval', f), 'utf8')));
      }
      copyFileSync(join(out, run, 'metrics.jsonl'), join(kept, 'metrics.jsonl'));
      writeFileSync(
        join(kept, 'complete.json'),
        JSON.stringify({
          tasks,
          evalConfig: process.env.EVAL_CONFIG ?? 'default',
          finishedAt: new Date().toISOString(),
        }) + '\n',
      );
    }
  }
  node(['eval', 'compare', '--runs', keep, ...compareArgs]);
} else {
  // seeds outer, methods inner: every method has a first seed evaluated before any gets a second
  const runs = readdirSync(out)
    .filter((d) => /-s\d+$/.test(d) && existsSync(join(out, d, 'checkpoints')))
    .sort((a, b) => Number(a.split('-s').pop()) - Number(b.split('-s').pop()) || a.localeCompare(b));
  for (const run of runs)
    for (const e of plan) node(['eval', e.tasks, '--checkpoint', join(out, run), '--config', e.config]);
  node(['eval', 'compare', '--runs', out, ...compareArgs]);
}
