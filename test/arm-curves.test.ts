// The TMA study's diagnostics' curves (src/eval/report/arm-curves.ts) on constructed metrics.jsonl lines (no
// training): the plotted means are the means of the values logged, a metric a seed or an arm never logged is left
// out without error, the SVGs are written beside the table and linked from it, and nothing is written without data.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  VALIDATION_AUROC,
  collectCurves,
  metricRows,
  pairRows,
  writeArmCurves,
} from '../src/eval/report/arm-curves.js';
import { armTableMarkdown, collectArms } from '../src/eval/report/arm-table.js';

const tmp = mkdtempSync(join(tmpdir(), 't3d-arm-curves-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const arms = [
  { name: 'p1-pooled', title: 'P1 pooled over views' },
  { name: 'clip-only', title: 'CLIP-only' },
  { name: 'p2', title: 'P2' },
];
/** seed s of P1 at step t: ce = 3 + s + t/100, chance = 4 + s, leak gap = chance − ce */
const ce = (s: number, t: number) => 3 + s + t / 100;
function writeRun(name: string, lines: object[]): void {
  mkdirSync(join(tmp, name), { recursive: true });
  writeFileSync(join(tmp, name, 'metrics.jsonl'), lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
}
for (const s of [0, 1]) {
  const lines: object[] = [10, 20, 30].map((t) => ({
    step: t,
    loss: 1,
    'ce.global>text': ce(s, t),
    'ce.global>text.oracle': 1,
    'ce.global>text.chance': 4 + s,
    'ce.local>text': ce(s, t) + 0.5,
    // seed 1 has no chance bound for local>text and no leak gap at step 30
    ...(s === 0 ? { 'ce.local>text.chance': 5 } : {}),
    ...(s === 1 && t === 30 ? {} : { tmaLeakGap: 4 + s - ce(s, t) }),
  }));
  lines.push({ step: 20, validation: { zeroShotAuroc: 0.6 + 0.1 * s } });
  // a resumed run logs step 20 again: the last line counts
  if (s === 0) lines.push({ step: 20, 'ce.global>text': 9, validation: { zeroShotAuroc: 0.55 } });
  writeRun(`p1-pooled-s${s}`, lines);
}
// CLIP-only: no TMA term, seed 0 only, one validation; P2: no run at all
writeRun('clip-only-s0', [
  { step: 10, loss: 2 },
  { step: 20, validation: { zeroShotAuroc: 0.7 } },
]);

test('the curves are the means over seeds of the values logged; missing metrics are left out', () => {
  const [p1, clip, p2] = collectCurves(tmp, arms, [0, 1]);
  assert.deepEqual(p1!.seeds, [0, 1]);
  assert.deepEqual(clip!.seeds, [0]);
  assert.deepEqual(p2!.seeds, []);
  assert.equal(p2!.curves.size, 0);
  const global = p1!.curves.get('ce.global>text')!;
  assert.deepEqual(
    global.map((p) => p.step),
    [10, 20, 30],
  );
  assert.equal(global[0]!.mean, (ce(0, 10) + ce(1, 10)) / 2);
  assert.equal(global[1]!.mean, (9 + ce(1, 20)) / 2, 'the resumed step keeps its last value');
  assert.equal(global[2]!.mean, (ce(0, 30) + ce(1, 30)) / 2);
  const gap = p1!.curves.get('tmaLeakGap')!;
  assert.deepEqual(
    gap.map((p) => [p.step, p.seeds]),
    [
      [10, 2],
      [20, 2],
      [30, 1],
    ],
  );
  assert.equal(gap[2]!.mean, 4 - ce(0, 30), 'a step one seed did not log is the other seed alone');
  assert.equal(p1!.curves.get(VALIDATION_AUROC)![0]!.mean, (0.55 + 0.7) / 2);

  const rows = pairRows(p1!);
  const value = (pair: string, line: string, step: number) =>
    rows.filter((r) => r.pair === pair && r.line === line && r.step === step).map((r) => r.value);
  assert.deepEqual(value('global>text', 'cross-entropy', 10), [(ce(0, 10) + ce(1, 10)) / 2]);
  assert.deepEqual(value('global>text', 'chance bound', 30), [4.5]);
  assert.deepEqual(value('local>text', 'chance bound', 20), [5]);
  assert.ok(!rows.some((r) => String(r.pair).includes('.')), 'oracle and chance are no pairs of their own');
  assert.deepEqual(pairRows(clip!), []);
  assert.deepEqual(
    metricRows([p1!, clip!, p2!], VALIDATION_AUROC).map((r) => [r.arm, r.step, r.value]),
    [
      ['p1-pooled', 20, (0.55 + 0.7) / 2],
      ['clip-only', 20, 0.7],
    ],
  );
  assert.deepEqual(metricRows([clip!, p2!], 'tmaLeakGap'), []);
});

test('the SVGs are written beside the table and linked from it; none without data', async () => {
  const out = join(tmp, 'report');
  const files = await writeArmCurves(out, collectCurves(tmp, arms, [0, 1]));
  assert.deepEqual(
    files.map((f) => f.file),
    ['curves-ce-p1-pooled.svg', 'curves-leak-gap.svg', 'curves-validation-auroc.svg'],
  );
  assert.deepEqual(readdirSync(out).sort(), files.map((f) => f.file).sort());
  const svg = (f: string) => readFileSync(join(out, f), 'utf8');
  for (const f of files) assert.match(svg(f.file), /^<svg[\s\S]*<\/svg>$/);
  assert.match(svg('curves-ce-p1-pooled.svg'), /stroke-dasharray/, 'the chance bounds are dashed');
  assert.match(svg('curves-ce-p1-pooled.svg'), /p1-pooled: TMA cross-entropy by pair/);
  assert.doesNotMatch(svg('curves-validation-auroc.svg'), /stroke-dasharray="5/);

  const md = armTableMarkdown(collectArms(tmp, arms, [0, 1]), { curves: files });
  for (const f of files) assert.ok(md.includes(`](${f.file})`), `arms.md links ${f.file}`);
  assert.ok(!armTableMarkdown(collectArms(tmp, arms, [0, 1])).includes("diagnostics' curves"));

  const empty = join(tmp, 'empty');
  assert.deepEqual(await writeArmCurves(empty, collectCurves(join(tmp, 'nowhere'), arms, [0, 1])), []);
  assert.ok(!existsSync(empty), 'nothing is written without data');
});
