// Built-in presets, pre-training and evaluation configs: every one loads and validates, names a preset that exists, and the
// multi-resolution ones are consistent (global view coarser than the cache, local views native crops inside it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { globalShapeOf, loadPreset, presetNames, resolvePreset } from '../src/data/presets.js';
import { configNames, loadConfig, validateConfig } from '../src/train/config.js';
import { loadEvalConfig } from '../src/eval/config.js';
import { packageRoot } from '../src/util/paths.js';

test('every built-in preset loads; a multi-resolution preset downsamples the cache by 2 per axis for its global view', () => {
  const names = presetNames();
  for (const name of ['cpu-96', 'cpu-mr', 't3d-224', 't3d-224-mr', 'ct-rate-480', 'ct-rate-480-mr'])
    assert.ok(names.includes(name), name);
  for (const name of names) {
    const p = loadPreset(name);
    assert.equal(p.name, name);
    if (!p.globalShape) continue;
    assert.deepEqual(
      globalShapeOf(p).map((g, i) => p.shape[i]! / g),
      [2, 2, 2],
      `${name}: cache ${p.shape} vs global ${p.globalShape}`,
    );
  }
});

test('every built-in pre-training config validates; multi-resolution configs cut native local views inside the cache', () => {
  for (const name of configNames()) {
    const c = loadConfig(name);
    assert.doesNotThrow(() => validateConfig(c), name);
    const preset = resolvePreset(c.data.preset);
    if (c.data.views.localSource !== 'cache') continue;
    assert.ok(preset.globalShape, `${name}: native local views need a preset whose global view is downsampled`);
    const local = c.data.views.localShape!;
    assert.ok(
      local.every((n, i) => n <= preset.shape[i]! && n >= globalShapeOf(preset)[i]! / 4),
      `${name}: local views ${local} in cache ${preset.shape}`,
    );
    assert.notEqual(
      c.objective.tma.formulation ?? 'fused',
      'fused',
      `${name}: multi-resolution configs use a leak-free formulation`,
    );
  }
});

test('every built-in evaluation config loads under its own name; the study pair differs only in scale', () => {
  const dir = join(packageRoot(), 'configs', 'eval');
  const names = readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => f.slice(0, -5));
  for (const name of ['default', 'quick', 'tma-study', 'tma-study-full']) assert.ok(names.includes(name), name);
  for (const name of names) assert.equal(loadEvalConfig(name).name, name);
  const [global, full] = [loadEvalConfig('tma-study'), loadEvalConfig('tma-study-full')];
  assert.equal(full.scale, 'full');
  assert.ok(global.transfer.fractions.includes(0.1), 'the study reports the 10 %-label linear probe');
  const { scale: _scale, name: _name, ...rest } = full;
  assert.deepEqual({ ...rest, name: global.name }, global);
});
