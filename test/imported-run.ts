// Shared steps of the imported-model tests (import, colipri-import, merlin-import): the t3d command line, the tiny
// synthetic dataset they evaluate on, and the check that `analyze` reproduces the evaluation's probabilities.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadPreset } from '../src/data/presets.js';
import { writeSynthDataset } from '../src/data/synth/dataset.js';
import { packageRoot } from '../src/util/paths.js';
import { importModel } from '../src/train/import-model.js';
import { fixture } from './helpers.js';

const cli = join(packageRoot(), 'dist', 'src', 'app', 'cli.js');
export const t3d = (...args: string[]) => spawnSync('node', [cli, ...args], { encoding: 'utf8' });

/** 30 synthetic cases on the tiny preset's geometry, 9 held out, written as a CT-RATE-style dataset into `out`. */
export async function tinyDataset(out: string): Promise<string> {
  const preset = loadPreset(fixture('pretrain', 'tiny-preset.json'));
  const synth = await writeSynthDataset({ out, count: 30, seed: 0, validFraction: 0.3, preset });
  assert.equal(synth.failed.length, 0);
  return out;
}

/** The NIfTI file of a synthetic dataset's held-out case (CT-RATE layout: valid/<patient>/<scan>/<name>.nii.gz). */
export function heldOutNifti(data: string, name: string): string {
  const parts = name.split('_');
  const [patient, scan] = [parts.slice(0, 2).join('_'), parts.slice(0, 3).join('_')];
  return join(data, 'dataset', 'valid', patient, scan, `${name}.nii.gz`);
}

export interface ZeroShotRecord {
  meta: { checkpointId: string };
  result: { labelNames: string[]; macro: { auroc: number }; test: { names: string[]; scores: number[][] } };
}

/**
 * `t3d analyze` on the first test volume of `run`'s zero-shot record, read from its NIfTI file in `data`, gives the
 * probabilities the evaluation computed from the cache (≤ 1e-5), under the run's preset. Returns the record.
 */
export function assertAnalyzeAsEvaluated(run: string, data: string, preset: string): ZeroShotRecord {
  const zs = JSON.parse(readFileSync(join(run, 'eval', 'zeroshot.json'), 'utf8')) as ZeroShotRecord;
  const nifti = heldOutNifti(data, zs.result.test.names[0]!);
  const a = t3d('analyze', nifti, '--checkpoint', run, '--intercept', '-1024', '--json');
  assert.equal(a.status, 0, a.stderr);
  const analysis = JSON.parse(a.stdout) as { preset: string; findings: { label: string; probability: number }[] };
  assert.equal(analysis.preset, preset);
  assert.deepEqual(
    analysis.findings.map((f) => f.label),
    zs.result.labelNames,
  );
  analysis.findings.forEach((f, l) =>
    assert.ok(
      Math.abs(f.probability - zs.result.test.scores[0]![l]!) < 1e-5,
      `${f.label}: ${f.probability} vs the evaluation's ${zs.result.test.scores[0]![l]}`,
    ),
  );
  return zs;
}

/**
 * The import-refusal checks of `format`: `bad(name, change)` copies the released folder under `tmp` and changes it;
 * `fails(folder, message, o)` expects the import to throw `message` and, unless `o.out` names an existing run, to
 * write nothing.
 */
export function refusals(format: string, released: string, tmp: string, preset: string) {
  const bad = (name: string, change: (dir: string) => void) => {
    const dir = join(tmp, name);
    cpSync(released, dir, { recursive: true });
    change(dir);
    return dir;
  };
  const fails = (folder: string, message: RegExp, o: { preset?: string; out?: string } = {}) => {
    const out = o.out ?? join(tmp, 'refused');
    assert.throws(() => importModel({ format, folder, out, preset: o.preset ?? preset }), message);
    if (!o.out) assert.equal(existsSync(out), false, 'nothing written');
  };
  return { bad, fails };
}
