// The text-side arms run end to end on a tiny cache with 'realistic' reports: CLIP + extracted labels, sentence-level
// CLIP, and the labels combined with a TMA formulation; a cache is never reused for another report style.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyOverrides, loadConfig, validateConfig } from '../src/train/config.js';
import { loadRunCheckpoint } from '../src/train/factory.js';
import { ensureCache } from '../src/data/synth-cache.js';
import { readCacheIndex } from '../src/data/cache.js';
import { packageRoot } from '../src/util/paths.js';
import { resolvePreset } from '../src/data/presets.js';
import { generateCase } from '../src/data/synth/generate.js';
import { synthGeometry } from '../src/data/synth/geometry.js';
import { writeSynthDataset } from '../src/data/synth/dataset.js';
import { reportText } from '../src/text/report.js';
import { fixture } from './helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 't3d-text-arms-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const cache = join(tmp, 'cache');
const presetPath = fixture('pretrain', 'tiny-preset.json');
const configPath = fixture('pretrain', 'tiny.json');
const synth = (style: string) => `data.synth={"count":10,"seed":0,"reportStyle":"${style}"}`;
const base = (style = 'realistic') =>
  applyOverrides(loadConfig(configPath), [`data.cache=${cache}`, `data.preset=${presetPath}`, synth(style)]);

/** `t3d pretrain` on the tiny cache for `steps` steps with these `--set`s; its stdout. */
function pretrain(out: string, steps: number, sets: string[]): string {
  const cli = join(packageRoot(), 'dist', 'src', 'app', 'cli.js');
  const args = [cli, 'pretrain', '--config', configPath, '--out', out, '--steps', String(steps)];
  const all = [`data.cache=${cache}`, `data.preset=${presetPath}`, synth('realistic'), 'train.logEvery=1', ...sets];
  const r = spawnSync('node', [...args, ...all.flatMap((s) => ['--set', s])], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

test('setup: a tiny cache with realistic reports; another report style is refused on it', async () => {
  await ensureCache(base());
  const reports = readCacheIndex(cache).entries.map((e) => e.report);
  assert.equal(reports.length, 10);
  assert.deepEqual(JSON.parse(readFileSync(join(cache, 'synth.json'), 'utf8')).reportStyle, 'realistic');
  // the workers wrote the realistic reports: case 0's is generateCase's in that style, not the templated one
  const first = readCacheIndex(cache).entries.find((e) => e.name === 'train_1_a_1')!.report;
  const geo = synthGeometry(resolvePreset(presetPath));
  assert.equal(first, reportText(generateCase(0, 0, geo, 'raw', { reportStyle: 'realistic' }).report));
  assert.notEqual(first, reportText(generateCase(0, 0, geo).report));
  await assert.rejects(
    writeSynthDataset({ out: `${cache}-source`, count: 10, seed: 0, preset: resolvePreset(presetPath) }),
    /made with seed 0, preset .*, storage raw, generator version 1, report style realistic; use another --out/,
  );
  await assert.rejects(
    ensureCache(base('templated')),
    /built with report style 'realistic', generator version 1, but data.synth asks for report style 'templated'/,
  );
  assert.ok(existsSync(join(cache, 'cache.json')));
});

test('CLIP + extracted labels: 3 steps log the labels term, and the checkpoint loads with its label head', () => {
  const out = join(tmp, 'labels');
  const stdout = pretrain(out, 3, ['objective.labels={"weight":1}', 'objective.tma.weight=0', 'data.views.numLocal=0']);
  assert.match(stdout, /labels extracted \(ct-rate-rules-\d+\) from \d+ training reports: [\d.]+ positives per report/);
  const last = /step 3\/3 loss ([\d.]+) \(clip ([\d.]+) labels ([\d.]+)\)/.exec(stdout);
  assert.ok(last, stdout);
  assert.ok(Number(last[3]) > 0 && Number(last[3]) < 1, `BCE ${last[3]}`);
  const { model, config } = loadRunCheckpoint(out);
  assert.equal(config.model.labels, 18);
  assert.deepEqual(model.label_head?.weight.shape, [18, config.model.embedDim]);
  model.dispose();
});

test('sentence-level CLIP: 3 steps to a finite loss with both terms', () => {
  const stdout = pretrain(join(tmp, 'sentence-clip'), 3, [
    'objective.sentenceClip={"weight":1}',
    'objective.tma.weight=0',
    'data.views.numLocal=0',
  ]);
  const last = /step 3\/3 loss ([\d.]+) \(clip ([\d.]+) sentenceClip ([\d.]+)\)/.exec(stdout);
  assert.ok(last, stdout);
  assert.ok(Number.isFinite(Number(last[1])) && Number(last[3]) > 0, last[0]);
});

test("extracted labels combine with a TMA formulation ('sentence'): 2 steps with clip, labels and tma terms", () => {
  const stdout = pretrain(join(tmp, 'labels-tma'), 2, [
    'objective.labels={"weight":0.5}',
    'objective.tma.formulation="sentence"',
    'objective.tma.warmupSteps=0',
  ]);
  assert.match(stdout, /step 2\/2 loss [\d.]+ \(clip [\d.]+ labels [\d.]+ tma [\d.]+\)/);
});

test('the arms’ config files validate and name the realistic reports', () => {
  for (const name of ['cpu-mr-clip-labels', 'cpu-mr-sentence-clip']) {
    const c = loadConfig(name);
    validateConfig(c);
    assert.equal(c.data.synth?.reportStyle, 'realistic', name);
  }
  assert.equal(loadConfig('cpu-mr-clip-labels').objective.labels?.weight, 1);
  assert.equal(loadConfig('cpu-mr-sentence-clip').objective.sentenceClip?.weight, 1);
  assert.throws(
    () => validateConfig(applyOverrides(base(), ['objective.labels={"weight":-1}'])),
    /objective.labels.weight must be ≥ 0/,
  );
});
