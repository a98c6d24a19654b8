// Checkpoints and cache files that defend themselves: the newest checkpoint is damaged in each way a disk or a
// person can damage it, and resuming must continue from the newest intact one and end bitwise equal to an
// uninterrupted run; sealed folders, stale temporary folders and the cache's data hashes are checked directly.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../src/torch/index.js';
import { applyOverrides, loadConfig, type PretrainConfig } from '../src/train/config.js';
import { buildT3dModel, loadT3dCheckpoint } from '../src/train/factory.js';
import { pretrain } from '../src/train/trainer.js';
import { listCheckpoints, resolveCheckpoint } from '../src/train/checkpoint.js';
import { ensureCache, prepareTokenizer } from '../src/app/pretrain.js';
import { Loader } from '../src/data/loader.js';
import { buildCache, readCacheIndex } from '../src/data/cache.js';
import { readSource } from '../src/data/sources.js';
import { loadPreset } from '../src/data/presets.js';
import { readJsonFile, removeStaleTemps, tempName } from '../src/util/files.js';
import { MANIFEST, commitFolder, readManifest, verifyFolder } from '../src/util/manifest.js';
import { fixture } from './helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 't3d-integrity-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const cache = join(tmp, 'cache');
const presetPath = fixture('pretrain', 'tiny-preset.json');
const cfg: PretrainConfig = applyOverrides(loadConfig(fixture('pretrain', 'tiny.json')), [
  `data.cache=${cache}`,
  `data.preset=${presetPath}`,
  'optim.steps=12',
  'train.checkpointEvery=3',
  'train.keepCheckpoints=4',
  'train.logEvery=100',
]);
const sha = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');
/** a pid that belonged to a process of this host that has exited */
const deadPid = () => spawnSync('true').pid!;

test('a sealed folder lists every file with its sha256 (as sha256sum computes it) and catches each kind of damage', () => {
  const dir = join(tmp, 'sealed');
  const work = tempName(dir);
  mkdirSync(work);
  writeFileSync(join(work, 'a.json'), '{"x": 1}\n');
  writeFileSync(join(work, 'b.bin'), Buffer.alloc(10000, 7));
  const m = commitFolder(work, dir);
  assert.ok(!existsSync(work), 'the temporary folder was renamed');
  assert.deepEqual(
    m.files.map((f) => [f.name, f.size, f.sha256]),
    [
      ['a.json', 9, sha(join(dir, 'a.json'))],
      ['b.bin', 10000, sha(join(dir, 'b.bin'))],
    ],
  );
  assert.deepEqual(readManifest(dir), m);
  assert.equal(verifyFolder(dir), undefined);
  const damaged = (name: string, damage: (d: string) => void) => {
    const d = join(tmp, `sealed-${name}`);
    cpSync(dir, d, { recursive: true });
    damage(d);
    return verifyFolder(d);
  };
  assert.equal(
    damaged('trunc', (d) => truncateSync(join(d, 'b.bin'), 5000)),
    'b.bin is 5000 bytes, the manifest says 10000 (truncated)',
  );
  assert.equal(
    damaged('flip', (d) => writeFileSync(join(d, 'b.bin'), Buffer.alloc(10000, 0))),
    `b.bin does not match its sha256 in ${MANIFEST} (corrupted)`,
  );
  assert.equal(
    damaged('missing', (d) => rmSync(join(d, 'a.json'))),
    'a.json is missing',
  );
  assert.equal(
    damaged('emptied', (d) => writeFileSync(join(d, 'a.json'), '')),
    'a.json is 0 bytes, the manifest says 9 (truncated)',
  );
  assert.equal(
    damaged('nomanifest', (d) => rmSync(join(d, MANIFEST))),
    `no ${MANIFEST}`,
  );
  assert.match(
    damaged('badmanifest', (d) => writeFileSync(join(d, MANIFEST), '')) ?? '',
    /manifest\.json: empty file, expected JSON/,
  );
});

test('JSON read errors name the file and say what is wrong', () => {
  const p = join(tmp, 'x.json');
  writeFileSync(p, '');
  assert.throws(() => readJsonFile(p), new RegExp(`${p}: empty file, expected JSON`));
  writeFileSync(p, '{"a": ');
  assert.throws(() => readJsonFile(p), new RegExp(`${p}: not valid JSON`));
  assert.throws(() => readJsonFile(join(tmp, 'none.json')), /none\.json: unreadable \(ENOENT\)/);
});

test("stale temporary folders of dead processes are removed; a live writer's and another host's are left alone", () => {
  const dir = join(tmp, 'temps');
  mkdirSync(dir);
  const dead = tempName(join(dir, 'step-00000005')).replace(/\d+$/, String(deadPid()));
  const live = tempName(join(dir, 'step-00000006')).replace(/\d+$/, String(process.ppid));
  const own = tempName(join(dir, 'step-00000007'));
  const other = join(dir, `step-00000008.tmp-some-other-host-${deadPid()}`);
  for (const d of [dead, live, own, other]) mkdirSync(d);
  const torn = tempName(join(dir, 'v.safetensors')).replace(/\d+$/, String(deadPid())); // files too, not only folders
  writeFileSync(torn, 'partial');
  assert.deepEqual(removeStaleTemps(dir).sort(), [dead, torn].map((p) => p.slice(dir.length + 1)).sort());
  assert.deepEqual(readdirSync(dir).sort(), [live, own, other].map((p) => p.slice(dir.length + 1)).sort());
});

test('setup: the tiny cache and an uninterrupted 12-step run with checkpoints at steps 3, 6, 9 and 12', async () => {
  await ensureCache(cfg);
  await train(join(tmp, 'full'), false);
  assert.deepEqual(listCheckpoints(join(tmp, 'full', 'checkpoints')), [
    'step-00000003',
    'step-00000006',
    'step-00000009',
    'step-00000012',
  ]);
  assert.equal(verifyFolder(join(tmp, 'full', 'checkpoints', 'step-00000012')), undefined);
});

async function train(out: string, resume: boolean): Promise<string[]> {
  const lines: string[] = [];
  torch.manualSeed(0);
  const tokenizer = prepareTokenizer(cfg, out);
  const model = buildT3dModel(cfg.model, loadPreset(presetPath).shape, tokenizer.vocabSize);
  const loader = new Loader({
    cacheDir: cache,
    split: 'train',
    batchSize: cfg.data.batchSize,
    seed: cfg.train.seed,
    workers: 1,
    views: cfg.data.views,
  });
  try {
    await pretrain({ config: cfg, model, tokenizer, loader, outDir: out, resume, log: (l) => lines.push(l) });
  } finally {
    model.dispose();
  }
  return lines;
}

/** The run interrupted after step 9 was saved, with `damage` applied to its newest checkpoint. */
function interrupted(name: string, damage: (step9: string, ckpts: string) => void): string {
  const out = join(tmp, name);
  cpSync(join(tmp, 'full'), out, { recursive: true });
  rmSync(join(out, 'checkpoints', 'step-00000012'), { recursive: true });
  damage(join(out, 'checkpoints', 'step-00000009'), join(out, 'checkpoints'));
  return out;
}

const endState = (run: string) => {
  const m = readManifest(join(run, 'checkpoints', 'step-00000012'));
  return Object.fromEntries(m.files.filter((f) => f.name !== 'config.json').map((f) => [f.name, f.sha256]));
};

const damages: [string, (step9: string) => void, RegExp][] = [
  [
    'truncated',
    (d) => truncateSync(join(d, 'model.safetensors'), Math.floor(statSync(join(d, 'model.safetensors')).size / 2)),
    /model\.safetensors is \d+ bytes, the manifest says \d+ \(truncated\)/,
  ],
  [
    'same-size zeroed tail',
    (d) => {
      const p = join(d, 'model.safetensors');
      const b = readFileSync(p);
      b.fill(0, b.length - 4096);
      writeFileSync(p, b);
    },
    /model\.safetensors does not match its sha256/,
  ],
  ['missing file', (d) => rmSync(join(d, 'optimizer.safetensors')), /optimizer\.safetensors is missing/],
  ['empty JSON', (d) => writeFileSync(join(d, 'trainer_state.json'), ''), /trainer_state\.json is 0 bytes/],
];

for (const [what, damage, reason] of damages) {
  test(`resume skips a newest checkpoint with a ${what}, continues from step 6 and ends bitwise equal to the uninterrupted run`, async () => {
    const run = interrupted(what.replace(/\W+/g, '-'), damage);
    const lines = await train(run, true);
    const log = lines.join('\n');
    assert.match(log, new RegExp(`skipping .*step-00000009: ${reason.source}`));
    assert.match(log, /resumed from .*step-00000006 at step 6/);
    assert.deepEqual(endState(run), endState(join(tmp, 'full')));
  });
}

test('a stale temporary folder of a killed save is removed at the next save, and resume ends bitwise equal', async () => {
  let stale = '';
  const run = interrupted('stale', (_, ckpts) => {
    stale = tempName(join(ckpts, 'step-00000012')).replace(/\d+$/, String(deadPid()));
    mkdirSync(stale);
    writeFileSync(join(stale, 'model.safetensors'), 'torn');
  });
  const log = (await train(run, true)).join('\n');
  assert.match(log, /resumed from .*step-00000009 at step 9/);
  assert.match(log, /removed .*step-00000012\.tmp-.*, left by a save that did not finish/);
  assert.ok(!existsSync(stale));
  assert.deepEqual(endState(run), endState(join(tmp, 'full')));
});

test('loading for inference: a damaged checkpoint given explicitly is an error naming the file; a run folder falls back', () => {
  const run = interrupted('explicit', damages[1]![1]);
  const step9 = join(run, 'checkpoints', 'step-00000009');
  assert.throws(
    () => loadT3dCheckpoint(step9, () => undefined),
    new RegExp(`${step9}: damaged checkpoint, not loaded: model\\.safetensors does not match its sha256`),
  );
  const lines: string[] = [];
  const { model, dir } = loadT3dCheckpoint(run, (l) => lines.push(l));
  model.dispose();
  assert.equal(dir, join(run, 'checkpoints', 'step-00000006'));
  assert.match(lines.join('\n'), /skipping .*step-00000009: model\.safetensors does not match/);
  // every checkpoint damaged: an error listing why, never a silent fresh start
  truncateSync(join(run, 'checkpoints', 'step-00000006', 'tokenizer.json'), 0);
  for (const n of ['step-00000003']) rmSync(join(run, 'checkpoints', n, MANIFEST));
  rmSync(join(run, 'checkpoints', 'step-00000003', 'config.json'));
  assert.throws(
    () => resolveCheckpoint(run, { log: () => undefined }),
    /no intact checkpoint \(step-00000009: .*; step-00000006: tokenizer\.json is 0 bytes.*; step-00000003: config\.json is missing\)/,
  );
});

test('a checkpoint from before manifests loads after a structural check, with a warning; an empty JSON in it names the file', () => {
  const old = join(tmp, 'old-format');
  cpSync(join(tmp, 'full', 'checkpoints', 'step-00000012'), old, { recursive: true });
  rmSync(join(old, MANIFEST));
  const lines: string[] = [];
  loadT3dCheckpoint(old, (l) => lines.push(l)).model.dispose();
  assert.match(lines.join('\n'), /no manifest\.json \(written by an older version\): checked structurally only/);
  writeFileSync(join(old, 'config.json'), '');
  assert.throws(
    () => loadT3dCheckpoint(old, () => undefined),
    /old-format: damaged checkpoint, not loaded: config\.json: empty file, expected JSON/,
  );
  truncateSync(join(tmp, 'full', 'checkpoints', 'step-00000003', 'model.safetensors'), 1000);
  rmSync(join(tmp, 'full', 'checkpoints', 'step-00000003', MANIFEST));
  assert.throws(
    () => loadT3dCheckpoint(join(tmp, 'full', 'checkpoints', 'step-00000003'), () => undefined),
    /model\.safetensors: not a valid safetensors file/,
  );
});

test('cache files carry their sha256: the loader refuses a corrupted one by name, and a preprocessing rerun rebuilds exactly it', async () => {
  const index = readCacheIndex(cache);
  const victim = index.entries.find((e) => e.split === 'train')!;
  const file = join(cache, victim.file);
  assert.equal(victim.sha256, sha(file));
  const good = readFileSync(file);
  const bad = Buffer.from(good);
  bad.fill(0, bad.length - 512);
  writeFileSync(file, bad);
  const loader = new Loader({
    cacheDir: cache,
    split: 'train',
    batchSize: index.entries.length,
    seed: 0,
    workers: 1,
    views: cfg.data.views,
    dropLast: false,
  });
  await assert.rejects(
    async () => {
      for await (const _ of loader.epoch(0)) {
        /* reading is the test */
      }
    },
    new RegExp(`${file}: does not match the sha256 in its cache entry`),
  );
  await loader.close();
  const r = await buildCache(readSource(`${cache}-source`), loadPreset(presetPath), cache);
  assert.equal(r.done, 1, 'only the damaged entry is rebuilt');
  assert.equal(r.skipped, index.entries.length - 1);
  assert.equal(sha(file), victim.sha256, 'preprocessing is deterministic: the rebuilt file equals the original');
});
