// The TMA study's arms (`ARMS=all npm run experiment:evaluate`; RESULTS.md, "The TMA study that can win: the plan").
// Builds the study's data once (1,600 volumes of generator VERSION with realistic reports, seed 0, 1,000 of them held
// out as the test set; a 200-volume validation cache, seed 1), then runs each (seed, arm), seeds outer, PARALLEL at a
// time: pre-train with --resume (validating on the validation cache every VALIDATE_EVERY steps, every checkpoint kept
// until the run ends), evaluate at the selected step (best validation zero-shot macro-AUROC, ties within 0.002 to the
// earlier step) with each EVAL_CONFIG entry, drop the other checkpoints but the last, copy the records and
// metrics.jsonl to KEEP and rewrite KEEP/arms.md and the diagnostics' SVG curves beside it. Rerunning resumes:
// finished runs are skipped, evaluations with the same checkpoint are read back. Arm 10 (best-labels) runs once
// arms 6, 7 and 9 have finished every seed.
// Env: ARMS (all, or a comma list of arm names), SEEDS (0,1,2,3,4), STEPS (2000), VALIDATE_EVERY (100), PARALLEL (2),
// THREADS (per run; 1 by default when PARALLEL > 1), GATE (ignore: run P1's seeds 1–4 without the gate), OUT
// (runs/tma-arms), KEEP (results/tma-arms; not results/tma-study, the first study's, whose run names these share),
// VERSION (the generator's, 4: RESULTS.md, the plan's dated changes), EVAL_CONFIG (the study's: zeroshot, retrieval
// and probe at tma-study and tma-study-crop); COUNT and VAL_COUNT (1600, 200) only to smoke-check the runner on less
// data.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve, sep } from 'node:path';
import { packageRoot } from '../src/util/paths.js';
import { applyOverrides, loadConfig } from '../src/train/config.js';
import { ensureCache } from '../src/data/synth-cache.js';
import { TASK_NAMES } from '../src/eval/registry.js';
import { listCheckpoints } from '../src/train/checkpoint.js';
import {
  COMBINED,
  STUDY_ARMS,
  STUDY_EVAL_PLAN,
  TMA_ARMS,
  type StudyArm,
  combinedArm,
  parseEvalPlan,
} from '../src/eval/report/arms.js';
import { armTableMarkdown, collectArms } from '../src/eval/report/arm-table.js';
import { collectCurves, writeArmCurves } from '../src/eval/report/arm-curves.js';
import { runSelection } from '../src/eval/report/step-selection.js';
import { type GateResult, leakGate } from '../src/eval/report/gate.js';

const root = packageRoot();
const env = process.env;
const out = resolve(root, env.OUT ?? join('runs', 'tma-arms'));
const keep = resolve(root, env.KEEP ?? join('results', 'tma-arms'));
const seeds = (env.SEEDS ?? '0,1,2,3,4').split(',').map(Number);
const steps = Number(env.STEPS ?? 2000);
const every = Number(env.VALIDATE_EVERY ?? 100);
const parallel = Number(env.PARALLEL ?? 2);
const threads = env.THREADS ?? (parallel > 1 ? '1' : undefined);
const plan = parseEvalPlan(env.EVAL_CONFIG ?? STUDY_EVAL_PLAN, 'all', TASK_NAMES);
const cli = join(root, 'dist', 'src', 'app', 'cli.js');
/** the arms the gate holds back beyond seed 0 when P1 pooled's seed 0 fails it (GATE=ignore runs them anyway) */
const P1_ARMS = ['p1-global', 'p1-pooled', 'p1-shuffled'];
// 'all': P1 pooled first (its seed 0 is the gate), then the plan's order
const names =
  env.ARMS === 'all'
    ? ['p1-pooled', ...STUDY_ARMS.map((a) => a.name).filter((n) => n !== 'p1-pooled'), COMBINED]
    : (env.ARMS ?? '').split(',');
for (const n of names)
  if (n !== COMBINED && !STUDY_ARMS.some((a) => a.name === n))
    throw new Error(`ARMS: unknown arm '${n}' (known: ${[...STUDY_ARMS.map((a) => a.name), COMBINED].join(', ')})`);
if (!Number.isInteger(steps / every))
  throw new Error(`STEPS (${steps}) must be a multiple of VALIDATE_EVERY (${every})`);

// COUNT and VAL_COUNT only for smoke checks of the runner itself (the study's are 1,600 and 200)
const data = {
  cache: join(out, 'cache'),
  synth: {
    count: Number(env.COUNT ?? 1600),
    seed: 0,
    validFraction: 0.625,
    version: Number(env.VERSION ?? 4),
    reportStyle: 'realistic',
    keepSource: false,
  },
};
const valCount = Number(env.VAL_COUNT ?? 200);
const val = { cache: join(out, 'val-cache'), synth: { ...data.synth, count: valCount, seed: 1, validFraction: 1 } };
const common = [
  `data.cache=${data.cache}`,
  `data.synth=${JSON.stringify(data.synth)}`,
  `data.valCache=${val.cache}`,
  `train.validateEvery=${every}`,
  `train.checkpointEvery=${every}`,
  `train.keepCheckpoints=${steps / every + 1}`,
  'train.logEvery=10', // the gate averages tmaLeakGap over the steps logged from 200 to 300
];

const stepName = (step: number) => `step-${String(step).padStart(8, '0')}`;
const run = (args: string[]) =>
  new Promise<void>((done, fail) => {
    const child = spawn('node', [cli, ...args], {
      stdio: 'inherit',
      env: { ...env, ...(threads ? { T3D_NUM_THREADS: threads } : {}) },
    });
    child.on('exit', (code) => (code === 0 ? done() : fail(new Error(`t3d ${args.join(' ')} failed (exit ${code})`))));
  });

/** Pre-trains (or resumes) one run, evaluates it at its selected step, prunes its checkpoints and keeps its records. */
async function job(arm: StudyArm, seed: number): Promise<void> {
  const name = `${arm.name}-s${seed}`;
  const dir = join(out, name);
  if (existsSync(join(keep, name, 'complete.json'))) return console.log(`${name}: complete in ${keep}`);
  if (P1_ARMS.includes(arm.name) && seed !== 0 && env.GATE !== 'ignore') {
    const g = gate();
    if (g === undefined || g === 'pending')
      return console.log(`${name}: waits for the gate (P1 pooled, seed 0); rerun`);
    if (!g.pass) return console.log(`${name}: skipped, the gate was not passed (P1 stops at seed 0)`);
  }
  if (runSelection(dir)?.lastStep !== steps) {
    const sets = [...common, ...arm.sets, `train.seed=${seed}`].flatMap((s) => ['--set', s]);
    await run(['pretrain', '--config', arm.config, ...sets, '--steps', String(steps), '--out', dir, '--resume']);
  }
  const chosen = runSelection(dir);
  if (chosen?.lastStep !== steps) throw new Error(`${dir}: no validation at step ${steps} after training`);
  const checkpoint = join(dir, 'checkpoints', stepName(chosen.step));
  if (!existsSync(checkpoint)) throw new Error(`${checkpoint}: the selected step's checkpoint is missing`);
  console.log(
    `${name}: step ${chosen.step} (validation AUROC ${chosen.auroc.toFixed(3)}, best ${chosen.best.toFixed(3)})`,
  );
  for (const e of plan) await run(['eval', e.tasks, '--checkpoint', checkpoint, '--config', e.config]);
  // the selected checkpoint stays, and the last (a later resume reads it); the others go
  for (const c of listCheckpoints(join(dir, 'checkpoints')))
    if (c !== stepName(steps) && c !== stepName(chosen.step)) rmSync(join(dir, 'checkpoints', c), { recursive: true });
  // the kept records name checkpoints and data relative to the package root: no machine paths in the repository
  const relative = (text: string) => text.split(root + sep).join('');
  mkdirSync(join(keep, name, 'eval'), { recursive: true });
  for (const f of readdirSync(join(dir, 'eval')).filter((n) => n.endsWith('.json')))
    writeFileSync(join(keep, name, 'eval', f), relative(readFileSync(join(dir, 'eval', f), 'utf8')));
  writeFileSync(join(keep, name, 'metrics.jsonl'), readFileSync(join(dir, 'metrics.jsonl')));
  const meta = {
    step: chosen.step,
    config: arm.config,
    sets: arm.sets,
    evalConfig: env.EVAL_CONFIG ?? STUDY_EVAL_PLAN,
  };
  writeFileSync(
    join(keep, name, 'complete.json'),
    JSON.stringify({ ...meta, finishedAt: new Date().toISOString() }) + '\n',
  );
  await writeTable();
}

/** Arm 10's base: the arm of 6, 7 and 9 (not the shuffled control) with the best mean validation AUROC at the selected steps, fixed once chosen. */
function bestTmaArm(): string | undefined {
  const path = join(keep, `${COMBINED}.json`);
  if (existsSync(path)) return (JSON.parse(readFileSync(path, 'utf8')) as { chosen: string }).chosen;
  const means = TMA_ARMS.map((a) => {
    const s = seeds.map(
      (seed) => existsSync(join(keep, `${a}-s${seed}`, 'complete.json')) && runSelection(join(keep, `${a}-s${seed}`)),
    );
    return s.every(Boolean) ? s.reduce((sum, x) => sum + (x ? x.auroc : 0), 0) / s.length : undefined;
  });
  if (means.some((m) => m === undefined)) return undefined;
  const chosen = TMA_ARMS[means.indexOf(Math.max(...(means as number[])))]!;
  mkdirSync(keep, { recursive: true });
  writeFileSync(
    path,
    JSON.stringify(
      { chosen, seeds, validationAuroc: Object.fromEntries(TMA_ARMS.map((a, i) => [a, means[i]])) },
      null,
      2,
    ) + '\n',
  );
  return chosen;
}

/** Rewrites KEEP/arms.md and the diagnostics' curves beside it (arm-curves.ts). */
async function writeTable(): Promise<void> {
  const best = existsSync(join(keep, `${COMBINED}.json`)) ? bestTmaArm() : undefined;
  const pending = { name: COMBINED, title: 'best of 6, 7, 9 + extracted labels (pending)' };
  const arms = [...STUDY_ARMS, best ? combinedArm(best) : pending];
  mkdirSync(keep, { recursive: true });
  const curves = await writeArmCurves(keep, collectCurves(keep, arms, seeds));
  writeFileSync(join(keep, 'arms.md'), armTableMarkdown(collectArms(keep, arms, seeds), { gate: gate(), curves }));
}

/** The gate on P1 pooled's seed 0: from the live run while it trains, else from its kept copy. */
function gate(): GateResult | 'pending' | undefined {
  const run = [join(out, 'p1-pooled-s0'), join(keep, 'p1-pooled-s0')].find((d) => existsSync(join(d, 'metrics.jsonl')));
  const metrics = run && join(run, 'metrics.jsonl');
  return metrics ? (leakGate(readFileSync(metrics, 'utf8'), { source: metrics }) ?? 'pending') : undefined;
}

/** Runs the jobs PARALLEL at a time in order; a failed job is reported and the others go on. */
async function pool(jobs: (() => Promise<void>)[]): Promise<string[]> {
  const failed: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const j = jobs[next++]!;
      await j().catch((e: Error) => failed.push(e.message));
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, parallel) }, worker));
  return failed;
}

export async function runArmStudy(): Promise<void> {
  const base = loadConfig('cpu-mr-v2');
  await ensureCache(applyOverrides(base, [`data.cache=${data.cache}`, `data.synth=${JSON.stringify(data.synth)}`]));
  await ensureCache(applyOverrides(base, [`data.cache=${val.cache}`, `data.synth=${JSON.stringify(val.synth)}`]));
  const arms = names.flatMap((n) => STUDY_ARMS.filter((a) => a.name === n));
  const failed = await pool(seeds.flatMap((seed) => arms.map((arm) => () => job(arm, seed))));
  if (names.includes(COMBINED)) {
    const best = bestTmaArm();
    if (best) failed.push(...(await pool(seeds.map((seed) => () => job(combinedArm(best), seed)))));
    else console.log(`${COMBINED}: waits for arms ${TMA_ARMS.join(', ')} to finish seeds ${seeds.join(', ')}`);
  }
  await writeTable();
  console.log(readFileSync(join(keep, 'arms.md'), 'utf8'));
  if (failed.length) throw new Error(`${failed.length} run(s) failed:\n${failed.join('\n')}`);
}
