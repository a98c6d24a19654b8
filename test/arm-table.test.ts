// The TMA study's arm table on constructed evaluation records (no training): known scores give known means and
// differences whose CIs fall on the known side; missing arms and seeds are shown as missing; the step selection;
// the arms' configs; the per-config task lists of experiment:evaluate.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '../src/util/rng.js';
import { CT_RATE_LABELS } from '../src/domain/ct-rate.js';
import { LOCAL_FINDING_LABELS } from '../src/domain/local-findings.js';
import { applyOverrides, loadConfig, validateConfig } from '../src/train/config.js';
import { TASK_NAMES } from '../src/eval/registry.js';
import { STUDY_ARMS, TMA_ARMS, combinedArm, parseEvalPlan } from '../src/eval/report/arms.js';
import { armCell, armTableMarkdown, collectArms, pairedDifference } from '../src/eval/report/arm-table.js';
import { selectStep, validationCurve } from '../src/eval/report/step-selection.js';
import { leakGate } from '../src/eval/report/gate.js';

const tmp = mkdtempSync(join(tmpdir(), 't3d-arm-table-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const N = 60;
const labelNames = [...CT_RATE_LABELS, ...LOCAL_FINDING_LABELS];
const names = Array.from({ length: N }, (_, i) => `vol-${i}`);
// every label has positives and negatives: volume i is positive for label l when (i + l) % 3 === 0
const truth = names.map((_, i) => labelNames.map((_, l) => ((i + l) % 3 === 0 ? 1 : 0)));

/** Scores of quality q: q·y plus noise in [0, 0.5) (q 1: AUROC 1; q −1: AUROC 0; q 0: noise). */
function scores(q: number, seed: number): number[][] {
  const rng = new Rng(seed, 77);
  return truth.map((row) => row.map((y) => q * y + 0.5 * rng.next()));
}
const classification = (task: string, variant: string, q: number, seed: number, step: number) => ({
  meta: { task, variant, checkpoint: `runs/x/checkpoints/step-${String(step).padStart(8, '0')}` },
  result: {
    labelNames,
    perLabel: labelNames.map(() => ({ threshold: 0.5 })),
    macro: { auroc: NaN, f1: NaN, accuracy: NaN, ap: NaN },
    macroCi: {},
    test: { names, scores: scores(q, seed), labels: truth },
  },
});
const direction = (ranks: number[]) => ({
  recall: { 'R@50': ranks.filter((r) => r <= 50).length / ranks.length },
  recallCi: {},
  ranks,
  medianRank: 1,
});
const retrieval = (good: boolean, step: number) => ({
  meta: { task: 'retrieval', variant: '', checkpoint: `runs/x/checkpoints/step-${String(step).padStart(8, '0')}` },
  result: {
    names,
    // good: every report finds its volume first; else half of them beyond 50
    reportToVolume: direction(names.map((_, i) => (good || i % 2 ? 1 : 55))),
    volumeToReport: direction(names.map(() => 1)),
    volumeToVolumeMap: {},
  },
});

/** A run folder: its records at `step` (quality q) and a validation curve. */
function writeRun(root: string, run: string, q: number, seed: number, step = 300) {
  const dir = join(root, run);
  mkdirSync(join(dir, 'eval'), { recursive: true });
  const put = (f: string, r: unknown) => writeFileSync(join(dir, 'eval', f), JSON.stringify(r));
  put('zeroshot.json', classification('zeroshot', '', q, seed, step));
  put('zeroshot-crop.json', classification('zeroshot', 'crop', q, seed + 100, step));
  put('probe-10pct.json', classification('probe', '10pct', q, seed + 200, step));
  put('retrieval.json', retrieval(q > 0.5, step));
  const curve = [100, 200, 300, 400].map((s) => ({ step: s, validation: { zeroShotAuroc: s === step ? 0.7 : 0.6 } }));
  writeFileSync(join(dir, 'metrics.jsonl'), curve.map((c) => JSON.stringify(c)).join('\n') + '\n');
}

test('step selection: the best validation AUROC, ties within 0.002 to the earlier step; a resumed step keeps its last', () => {
  const text = [
    { step: 50, loss: 1 },
    { step: 100, validation: { zeroShotAuroc: 0.6 } },
    { step: 200, validation: { zeroShotAuroc: 0.7 } },
    { step: 300, validation: { zeroShotAuroc: 0.5 } },
    { step: 300, validation: { zeroShotAuroc: 0.7015 } }, // resumed: logged again
    { step: 400, validation: { zeroShotAuroc: 0.703 } },
  ]
    .map((r) => JSON.stringify(r))
    .join('\n');
  const curve = validationCurve(text);
  assert.deepEqual(
    curve.map((p) => p.step),
    [100, 200, 300, 400],
  );
  assert.equal(curve[2]!.auroc, 0.7015);
  assert.equal(selectStep(curve)!.step, 300, '0.7015 is within 0.002 of 0.703; 0.7 is not');
  assert.equal(selectStep(curve, 0.005)!.step, 200);
  assert.equal(selectStep(curve, 0)!.step, 400);
  assert.equal(selectStep([]), undefined);
  assert.throws(
    () => validationCurve('{"step":1}\nnot json', 'run/metrics.jsonl'),
    /run\/metrics.jsonl:2: not a JSON line/,
  );
});

test('the arm table on constructed records: known means, CIs on the known side, missing arms and seeds shown', () => {
  const root = join(tmp, 'study');
  for (const seed of [0, 1]) {
    writeRun(root, `clip-only-s${seed}`, 0, seed);
    writeRun(root, `clip-only-crops-s${seed}`, 0, seed + 10);
    writeRun(root, `sentence-clip-s${seed}`, 0, seed + 20);
    writeRun(root, `p1-global-s${seed}`, -1, seed + 30, 200);
  }
  writeRun(root, 'p1-pooled-s0', 1, 40); // seed 1 missing; p2 has no runs at all
  const arms = STUDY_ARMS.filter((a) =>
    ['clip-only', 'clip-only-crops', 'sentence-clip', 'p1-global', 'p1-pooled', 'p2'].includes(a.name),
  );
  const collected = collectArms(root, arms, [0, 1]);
  const byName = new Map(collected.map((a) => [a.arm, a]));
  const pooled = byName.get('p1-pooled')!,
    global = byName.get('p1-global')!,
    clip = byName.get('clip-only')!;
  // scores = y + noise < 0.5 separate perfectly: AUROC 1 on every label; reversed: 0
  assert.deepEqual(armCell(pooled, 'primary'), { seeds: [0], missing: [1], mean: 1, sd: NaN });
  const g = armCell(global, 'primary')!;
  assert.equal(g.mean, 0);
  assert.equal(g.sd, 0);
  assert.equal(armCell(pooled, 'r50')!.mean, 1);
  assert.equal(armCell(clip, 'r50')!.mean, 0.5, 'half the reports beyond rank 50');
  assert.equal(armCell(byName.get('p2')!, 'primary'), undefined);
  const noise = armCell(clip, 'primary')!;
  assert.ok(noise.mean > 0.35 && noise.mean < 0.65, `noise scores: ${noise.mean}`);
  assert.equal(noise.seeds.length, 2);
  for (const e of ['primary', 'probe', 'clip-failures', 'local', 'r50']) {
    const up = pairedDifference(pooled, clip, e)!;
    assert.ok(up.lo > 0, `${e}: p1-pooled − clip-only [${up.lo}, ${up.hi}] above 0`);
    if (e !== 'r50') {
      const down = pairedDifference(global, clip, e)!;
      assert.ok(down.hi < 0, `${e}: p1-global − clip-only [${down.lo}, ${down.hi}] below 0`);
    }
  }
  assert.equal(pairedDifference(byName.get('p2')!, clip, 'primary'), undefined);
  const md = armTableMarkdown(collected, { resamples: 200 });
  assert.match(md, /\| P2 \(report clusters, heads 8\/16\/32\) \(p2\) \| missing \(0\/2\) \| — \| — \| — \|/);
  assert.match(
    md,
    /\| P1 pooled over views \(p1-pooled\) \| 1\.000 \(1\/2; missing s1\) \| \+0\.\d+ \[\+0\.\d+, \+0\.\d+\] > 0 \|/,
  );
  assert.match(md, /\| CLIP-only \(clip-only\) \| 0\.\d+ ± 0\.\d+ \(2\/2\) \| \(itself\) \|/);
  assert.match(md, /wins: P1 pooled over views\./);
  assert.match(md, /\| p1-pooled − p1-global \| \+1\.000 \[\+1\.000, \+1\.000\] > 0 \|/);
  assert.match(md, /\| p1-global \| step 200 \(0\.700; best 0\.700\) \| step 200/);
  assert.match(md, /\| p2 \| — \| — \|/);
  // a record that cannot be read names its file
  writeFileSync(join(root, 'clip-only-s0', 'eval', 'retrieval.json'), '{');
  assert.throws(
    () => collectArms(root, arms, [0]),
    /clip-only-s0\/eval\/retrieval\.json: unreadable evaluation record/,
  );
});

test('every arm (and arm 10 on each of 6, 7, 9) is a valid pre-training config; arm 10 takes only those, not the shuffled control', () => {
  const arms = [...STUDY_ARMS, ...TMA_ARMS.map(combinedArm)];
  assert.equal(STUDY_ARMS.length, 9);
  for (const arm of arms) {
    const cfg = applyOverrides(loadConfig(arm.config), arm.sets);
    assert.doesNotThrow(() => validateConfig(cfg), arm.name);
    assert.equal(cfg.data.views.localAnchor, 'report', `${arm.name}: the study's anchored crops`);
  }
  const shuffled = applyOverrides(loadConfig('cpu-mr-v2'), STUDY_ARMS.find((a) => a.name === 'p1-shuffled')!.sets);
  const pooled = applyOverrides(loadConfig('cpu-mr-v2'), STUDY_ARMS.find((a) => a.name === 'p1-pooled')!.sets);
  assert.deepEqual(
    { ...shuffled.objective.tma, shufflePairs: undefined },
    { ...pooled.objective.tma, shufflePairs: undefined },
  );
  const preset = loadConfig('cpu-mr-v2-p1-shuffled');
  assert.deepEqual(
    { ...preset.objective, tma: { ...preset.objective.tma, codeViews: undefined, teacherMomentum: undefined } },
    { ...shuffled.objective, tma: { ...shuffled.objective.tma, codeViews: undefined, teacherMomentum: undefined } },
    'the preset is the arm',
  );
  assert.equal(combinedArm('p2').sets.at(-1), 'objective.labels={"weight":1}');
  assert.throws(() => combinedArm('clip-only'), /arm 10 combines one of p1-global, p1-pooled, p2 /);
  assert.throws(() => combinedArm('p1-shuffled'), /arm 10 combines one of/);
});

test('EVAL_CONFIG: per-config task lists', () => {
  assert.deepEqual(parseEvalPlan('tma-study,tma-study-crop:zeroshot+retrieval+probe', 'all', TASK_NAMES), [
    { config: 'tma-study', tasks: 'all' },
    { config: 'tma-study-crop', tasks: 'zeroshot,retrieval,probe' },
  ]);
  assert.throws(() => parseEvalPlan('tma-study:zeroshot+nope', 'all', TASK_NAMES), /unknown tasks nope/);
  assert.throws(() => parseEvalPlan('tma-study:', 'all', TASK_NAMES), /is not <config> or <config>:<task>/);
});

test('the gate: tmaLeakGap over the steps logged from 200 to 300, its mean above 0 with a 95 % interval excluding 0', () => {
  const log = (gap: (step: number) => number) =>
    Array.from({ length: 15 }, (_, i) => 160 + 10 * i)
      .map((step) => JSON.stringify({ step, loss: 1, tmaLeakGap: gap(step) }))
      .join('\n');
  // outside the window the gaps are huge: they must not count
  const clear = leakGate(log((s) => (s < 200 || s > 300 ? -9 : 0.02 + (s % 20 ? 0.01 : -0.01))))!;
  assert.deepEqual(clear.steps, [200, 210, 220, 230, 240, 250, 260, 270, 280, 290, 300]);
  assert.ok(Math.abs(clear.mean - (6 * 0.01 + 5 * 0.03) / 11) < 1e-12, String(clear.mean));
  assert.ok(clear.pass && clear.lo > 0 && clear.hi < 0.04, JSON.stringify(clear));
  const around = leakGate(log((s) => (s % 20 ? 0.05 : -0.05)))!;
  assert.equal(around.pass, false);
  assert.ok(around.lo < 0 && around.hi > 0);
  assert.equal(leakGate(JSON.stringify({ step: 250, tmaLeakGap: 1 })), undefined, 'one step is no interval');
  assert.match(
    armTableMarkdown([], { gate: clear }),
    /\*\*Gate\*\* .*: mean \+0\.019 \[95 % \+0\.\d+, \+0\.\d+\] over 11 steps: passed\./,
  );
  assert.match(armTableMarkdown([], { gate: around }), /not passed: P1 stops at seed 0/);
  assert.match(armTableMarkdown([], { gate: 'pending' }), /\*\*Gate\*\* .*: not yet/);
});
