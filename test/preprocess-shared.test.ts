// Several processes building one cache folder at once: every volume is processed by exactly one of them, the
// index ends complete and equal to a single process's cache, nothing torn or left behind; claims of dead
// processes are taken over, claims of live ones are left to them.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPreset } from '../src/data/presets.js';
import { writeSynthDataset } from '../src/data/synth/dataset.js';
import { readSource } from '../src/data/sources.js';
import { buildCache, readCacheIndex } from '../src/data/cache.js';
import { tryClaim } from '../src/util/files.js';
import { packageRoot } from '../src/util/paths.js';

const tmp = mkdtempSync(join(tmpdir(), 't3d-shared-cache-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const preset = loadPreset('demo-48');
const synth = join(tmp, 'synth');
const cli = join(packageRoot(), 'dist', 'src', 'app', 'cli.js');
const COUNT = 120; // enough work (≈ 30 ms each) that the two processes overlap whatever their start-up times

function preprocess(out: string): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve) => {
    const p = spawn('node', [cli, 'preprocess', '--data', synth, '--out', out, '--preset', 'demo-48'], {
      env: { ...process.env, T3D_NUM_THREADS: '1' },
    });
    let stdout = '';
    p.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    p.stderr.resume();
    p.on('close', (code) => resolve({ code, stdout }));
  });
}
const hashes = (dir: string) => new Map(readCacheIndex(dir).entries.map((e) => [e.name, e.sha256]));
const leftovers = (dir: string) =>
  ['entries', 'volumes'].flatMap((d) =>
    readdirSync(join(dir, d)).filter((f) => f.endsWith('.claim') || f.includes('.tmp')),
  );

test("two processes build one cache folder: each volume once, a complete index equal to one process's cache", async () => {
  await writeSynthDataset({ out: synth, count: COUNT, seed: 3, preset });
  const single = join(tmp, 'single');
  const one = await buildCache(readSource(synth), preset, single);
  assert.equal(one.done, COUNT);
  const shared = join(tmp, 'shared');
  const runs = await Promise.all([preprocess(shared), preprocess(shared)]);
  for (const r of runs) assert.equal(r.code, 0, r.stdout);
  const processed = runs.map((r) => Number(/preprocess: (\d+) processed/.exec(r.stdout)?.[1]));
  assert.equal(
    processed[0]! + processed[1]!,
    COUNT,
    `each volume processed by exactly one process: ${processed.join(' + ')}`,
  );
  assert.ok(
    processed.every((n) => n > 0),
    `both processes worked: ${processed.join(' + ')}`,
  );
  assert.deepEqual(hashes(shared), hashes(single));
  assert.deepEqual(leftovers(shared), []);
});

test("a claim left by a dead process is taken over; a live process's claim is left to it", async () => {
  const dir = join(tmp, 'claims');
  const names = readSource(synth).records.map((r) => r.name);
  const entries = join(dir, 'entries');
  // a process that claims a volume and exits without releasing it
  const files = join(packageRoot(), 'dist', 'src', 'util', 'files.js');
  const dead = spawnSync('node', [
    '--input-type=module',
    '-e',
    `import { mkdirSync } from 'node:fs'; import { tryClaim } from ${JSON.stringify(files)}; mkdirSync(${JSON.stringify(entries)}, { recursive: true }); if (!tryClaim(${JSON.stringify(join(entries, `${names[0]}.claim`))})) process.exit(3);`,
  ]);
  assert.equal(dead.status, 0, dead.stderr.toString());
  // a live holder: this process
  assert.ok(tryClaim(join(entries, `${names[1]}.claim`)));
  assert.equal(tryClaim(join(entries, `${names[1]}.claim`)), false, 'a held claim cannot be taken twice');
  const r = await buildCache(readSource(synth), preset, dir);
  assert.deepEqual([r.done, r.elsewhere], [COUNT - 1, 1]);
  assert.deepEqual(
    readCacheIndex(dir)
      .entries.map((e) => e.name)
      .includes(names[1]!),
    false,
  );
  rmSync(join(entries, `${names[1]}.claim`));
  const again = await buildCache(readSource(synth), preset, dir);
  assert.deepEqual([again.done, again.skipped, again.elsewhere], [1, COUNT - 1, 0]);
  assert.deepEqual(hashes(dir), hashes(join(tmp, 'single')));
  assert.deepEqual(leftovers(dir), []);
});
