// Pre-training: objective gradients vs finite differences on a tiny model, overfitting a few pairs,
// non-finite step handling, and exact resume after SIGKILL (torn checkpoints are never loaded).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../src/torch/index.js';
import { applyOverrides, loadConfig, validateConfig, type PretrainConfig } from '../src/train/config.js';
import { buildT3dModel, loadRunCheckpoint } from '../src/train/factory.js';
import { pretrain } from '../src/train/trainer.js';
import { listCheckpoints, resolveCheckpoint } from '../src/train/checkpoint.js';
import { tempName } from '../src/util/files.js';
import { t3dLoss, tmaWeight, type ObjectiveConfig } from '../src/objectives/t3d.js';
import { ensureCache } from '../src/data/synth-cache.js';
import { prepareTokenizer } from '../src/train/tokenizer.js';
import { Loader } from '../src/data/loader.js';
import { readCacheIndex } from '../src/data/cache.js';
import { packageRoot } from '../src/util/paths.js';
import { zeroShotValidation } from '../src/eval/validation.js';
import { assertClose, fixture } from './helpers.js';

type Tma = ObjectiveConfig['tma'];
const tmp = mkdtempSync(join(tmpdir(), 't3d-pretrain-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const cache = join(tmp, 'cache');
const presetPath = fixture('pretrain', 'tiny-preset.json');
const configPath = fixture('pretrain', 'tiny.json');
const base = (extra: string[] = []): PretrainConfig =>
  applyOverrides(loadConfig(configPath), [`data.cache=${cache}`, `data.preset=${presetPath}`, ...extra]);
const cli = join(packageRoot(), 'dist', 'src', 'app', 'cli.js');
const cliArgs = (out: string, ...more: string[]) => [
  cli,
  'pretrain',
  '--config',
  configPath,
  '--set',
  `data.cache=${cache}`,
  '--set',
  `data.preset=${presetPath}`,
  '--out',
  out,
  ...more,
];

test('setup: the tiny synthetic cache', async () => {
  await ensureCache(base());
  assert.ok(existsSync(join(cache, 'cache.json')));
  assert.ok(existsSync(`${cache}-source`), 'the source volumes are kept by default');
});

test('data.synth.keepSource false: the source volumes are deleted once the cache is built, and the cache still trains', async () => {
  const dir = join(tmp, 'no-source');
  const c = applyOverrides(base(), [
    `data.cache=${dir}`,
    'data.synth={"count":4,"seed":1,"validFraction":0.5,"keepSource":false}',
  ]);
  await ensureCache(c);
  assert.equal(existsSync(`${dir}-source`), false);
  assert.equal(readCacheIndex(dir).entries.length, 4);
  await ensureCache(c); // a complete cache is never regenerated, source or not
  assert.equal(existsSync(`${dir}-source`), false);
  assert.throws(
    () => validateConfig(applyOverrides(base(), ['data.synth={"count":4,"seed":1,"keepSource":"no"}'])),
    /data.synth.keepSource must be true or false/,
  );
});

test('data.valCache: validation runs on that cache (steps chosen without the test volumes), else on the own cache', async () => {
  const other = join(tmp, 'no-source'); // the cache of the test above: other volumes, another seed
  const cfg = base();
  const tokenizer = prepareTokenizer(cfg, join(tmp, 'valcache'));
  torch.manualSeed(0);
  const model = buildT3dModel(cfg.model, [16, 32, 32], tokenizer.vocabSize);
  try {
    model.eval();
    const own = await zeroShotValidation(model, tokenizer, cfg)();
    const viaValCache = await zeroShotValidation(model, tokenizer, applyOverrides(cfg, [`data.valCache=${other}`]))();
    const direct = await zeroShotValidation(model, tokenizer, applyOverrides(cfg, [`data.cache=${other}`]))();
    assert.deepEqual(viaValCache, direct);
    assert.notDeepEqual(viaValCache, own);
  } finally {
    model.dispose();
  }
});

test('a training split smaller than one batch is an error naming the cache, not a run that waits forever', () => {
  const small = join(tmp, 'no-source'); // 2 training volumes
  assert.throws(
    () => new Loader({ cacheDir: small, split: 'train', batchSize: 4, seed: 0 }),
    /no-source: 2 volume\(s\) in split 'train' for this rank, fewer than one batch of 4/,
  );
});

test('model.vision.memoryFormat: channels-last by default (configs without the key too), contiguous on request, checked', () => {
  const weight = (c: PretrainConfig) => {
    const m = buildT3dModel(c.model, [8, 8, 8], 40);
    const w = m
      .getSubmodule('visual')!
      .getSubmodule('layer1')!
      .getSubmodule('0')!
      .getSubmodule('conv1')!
      .getParameter('weight')!;
    const layout = [w.isContiguous('channels-last'), w.isContiguous()];
    m.dispose();
    return layout;
  };
  const c = base();
  assert.equal(
    (c.model.vision as { memoryFormat?: string }).memoryFormat,
    undefined,
    'the tiny config predates the option',
  );
  assert.deepEqual(weight(c), [true, false]);
  assert.deepEqual(weight(base(['model.vision.memoryFormat="contiguous"'])), [false, true]);
  assert.throws(
    () => validateConfig(base(['model.vision.memoryFormat="nhwc"'])),
    /model.vision.memoryFormat must be 'channels-last' or 'contiguous'/,
  );
});

test('objective.tma.startStep: no TMA before it, then the warm-up ramp from it; validated', () => {
  const tma = { ...base().objective.tma, weight: 0.2, warmupSteps: 100 };
  assert.deepEqual(
    [0, 50, 100, 200].map((s) => tmaWeight(tma, s)),
    [0, 0.1, 0.2, 0.2],
    'default: ramp from step 0',
  );
  const late = { ...tma, startStep: 400 };
  assert.deepEqual(
    [0, 399, 400, 450, 500, 900].map((s) => tmaWeight(late, s)),
    [0, 0, 0, 0.1, 0.2, 0.2],
  );
  assert.equal(tmaWeight({ ...late, warmupSteps: 0 }, 400), 0.2);
  assert.doesNotThrow(() => validateConfig(base(['objective.tma.startStep=400'])));
  assert.throws(
    () => validateConfig(base(['objective.tma.startStep=-1'])),
    /objective.tma.startStep must be an integer ≥ 0/,
  );
  assert.throws(
    () => validateConfig(base(['objective.tma.startStep=2.5'])),
    /objective.tma.startStep must be an integer ≥ 0/,
  );
});

test('objective gradients (CLIP + text-informed TMA + SSL, mean-pooled text) match finite differences on a tiny float64 model', () => {
  const cfg = base(['model.textPooling="mean"']);
  torch.manualSeed(1);
  const model = buildT3dModel(cfg.model, [4, 4, 4], 40).to({ dtype: 'float64' });
  model.eval(); // fixed BatchNorm statistics and no dropout: a deterministic function of the inputs
  const ids = torch.tensor(new BigInt64Array([2n, 7n, 9n, 3n, 2n, 11n, 3n, 0n]), [2, 4]).keep();
  const mask = torch.tensor(new BigInt64Array([1n, 1n, 1n, 1n, 1n, 1n, 1n, 0n]), [2, 4]).keep();
  const tma = { ...cfg.objective.tma, weight: 0.5, warmupSteps: 0, codeViews: ['text'], queue: 0 } as Tma;
  const objective: ObjectiveConfig = { ...cfg.objective, tma, ssl: { weight: 0.3, temperature: 0.2 } };
  const g = new torch.Generator(5);
  const x = torch.randn([2, 1, 4, 4, 4], { dtype: 'float64', generator: g }).keep();
  const l0 = torch.randn([2, 1, 2, 2, 2], { dtype: 'float64', generator: g }).keep();
  // Codes come from the report only, so they do not depend on the volumes: the finite differences see
  // exactly the function autograd differentiates.
  const res = torch.gradcheck(
    (global, local) =>
      t3dLoss(model, { global, locals: [local], inputIds: ids, attentionMask: mask }, objective, 10).total,
    [x, l0],
    { atol: 1e-6, rtol: 1e-4 },
  );
  assert.ok(res.ok, res.worst);
  model.dispose();
});

test('restoration gradients (masked global view, report-conditioned FiLM decoder) match finite differences', () => {
  const cfg = base(['model.textPooling="mean"', 'model.restoration=true']);
  torch.manualSeed(2);
  const model = buildT3dModel(cfg.model, [4, 4, 4], 40).to({ dtype: 'float64' });
  model.eval();
  // FiLM is zero-initialised; random weights make the text path part of the checked function
  for (const [name, p] of model.restoration_decoder!.namedParameters())
    if (name.startsWith('film.'))
      torch.noGrad(() => torch.tidy(() => p.copy_(torch.randn(p.shape, { dtype: 'float64' }).mul(0.3))));
  const ids = torch.tensor(new BigInt64Array([2n, 7n, 9n, 3n, 2n, 11n, 3n, 0n]), [2, 4]).keep();
  const mask = torch.tensor(new BigInt64Array([1n, 1n, 1n, 1n, 1n, 1n, 1n, 0n]), [2, 4]).keep();
  const objective: ObjectiveConfig = {
    ...cfg.objective,
    clip: { weight: 0 },
    tma: { ...cfg.objective.tma, weight: 0 },
    restoration: { weight: 1, maskRatio: 0.4, patchSize: 2, useText: true },
  };
  const x = torch.randn([2, 1, 4, 4, 4], { dtype: 'float64', generator: new torch.Generator(6) }).keep();
  const loss = (global: torch.Tensor) => {
    torch.manualSeed(9); // the same patch mask at every evaluation
    return t3dLoss(model, { global, locals: [], inputIds: ids, attentionMask: mask }, objective, 0).total;
  };
  const res = torch.gradcheck(loss, [x], { atol: 1e-6, rtol: 1e-4 });
  assert.ok(res.ok, res.worst);
  // the report changes the restoration: a different report gives a different loss
  const other = torch.tensor(new BigInt64Array([2n, 5n, 5n, 3n, 2n, 8n, 3n, 0n]), [2, 4]).keep();
  const l1 = torch.tidy(() => loss(x).item());
  const l2 = torch.tidy(() => {
    torch.manualSeed(9);
    return t3dLoss(model, { global: x, locals: [], inputIds: other, attentionMask: mask }, objective, 0).total.item();
  });
  assert.notEqual(l1, l2);
  torch.dispose([ids, mask, x, other]);
  model.dispose();
});

test('a handful of pairs are memorised: contrastive loss near zero', async () => {
  const cfg = base([
    'optim.steps=120',
    'optim.lr=0.003',
    'optim.warmupSteps=5',
    'objective.tma.weight=0',
    'data.views.noiseStd=0',
    'data.views.intensityScale=[1,1]',
    'data.views.intensityShift=[0,0]',
    'data.textAugment={"shuffleProb":0,"dropProb":0}',
    'train.checkpointEvery=1000',
    'train.logEvery=1000',
  ]);
  const out = join(tmp, 'overfit');
  const tokenizer = prepareTokenizer(cfg, out);
  torch.manualSeed(0);
  const model = buildT3dModel(cfg.model, [16, 32, 32], tokenizer.vocabSize);
  const loader = new Loader({
    cacheDir: cache,
    split: 'train',
    batchSize: 4,
    seed: 0,
    shuffle: false,
    workers: 1,
    views: cfg.data.views,
  });
  // keep the first 4 training volumes only
  loader.entries.splice(4);
  const r = await pretrain({ config: cfg, model, tokenizer, loader, outDir: out, log: () => {} });
  assert.ok(r.lastLoss < 0.05, `final contrastive loss ${r.lastLoss}`);
  model.dispose();
});

test('non-finite losses: one is skipped and reported; repeated ones stop the run with the last good checkpoint intact', async () => {
  const cfg = base(['optim.steps=10', 'train.checkpointEvery=3', 'train.maxConsecutiveNonFinite=3']);
  const out = join(tmp, 'nan');
  const tokenizer = prepareTokenizer(cfg, out);
  const lines: string[] = [];
  const run = (hook: (l: torch.Tensor, step: number) => torch.Tensor, dir: string) => {
    torch.manualSeed(0);
    const model = buildT3dModel(cfg.model, [16, 32, 32], tokenizer.vocabSize);
    const loader = new Loader({
      cacheDir: cache,
      split: 'train',
      batchSize: 4,
      seed: 0,
      workers: 1,
      views: cfg.data.views,
    });
    return pretrain({
      config: cfg,
      model,
      tokenizer,
      loader,
      outDir: dir,
      log: (l) => lines.push(l),
      lossHook: hook,
    }).finally(() => model.dispose());
  };
  let injected = false;
  const once = await run(
    (l, step) => (step === 2 && !injected ? ((injected = true), l.mul(NaN)) : l),
    join(out, 'once'),
  );
  assert.equal(once.step, 10);
  assert.equal(once.skippedSteps, 1);
  assert.ok(lines.some((l) => /step 2: non-finite loss/.test(l)));
  await assert.rejects(
    run((l, step) => (step >= 4 ? l.mul(NaN) : l), join(out, 'always')),
    /3 consecutive non-finite steps at step 4; the last good checkpoint is .*step-00000003/,
  );
  assert.deepEqual(listCheckpoints(join(out, 'always', 'checkpoints')), ['step-00000003']);
});

function maxAbsDiff(a: string, b: string): number {
  const { tensors: ta } = torch.loadSafetensors(a);
  const { tensors: tb } = torch.loadSafetensors(b);
  let max = 0;
  for (const [k, t] of ta) {
    const u = tb.get(k);
    assert.ok(u, `${k} missing`);
    max = Math.max(
      max,
      torch.tidy(() => t.to('float64').sub(u.to('float64')).abs().max().item()),
    );
  }
  torch.dispose([...ta.values(), ...tb.values()]);
  return max;
}

test('resume after SIGKILL at a random step gives the weights of an uninterrupted run (≤ 1e-6); torn checkpoints are ignored', async () => {
  const full = join(tmp, 'full');
  const r1 = spawnSync('node', cliArgs(full), { encoding: 'utf8' });
  assert.equal(r1.status, 0, r1.stderr);
  const killed = join(tmp, 'killed');
  const killAt = 5 + Math.floor(Math.random() * 6); // somewhere in steps 5..10 of 12
  await new Promise<void>((resolve) => {
    const child = spawn('node', cliArgs(killed), { stdio: ['ignore', 'pipe', 'pipe'] });
    let buf = '';
    child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      const m = [...buf.matchAll(/^step (\d+)\/12/gm)].pop();
      if (m && Number(m[1]) >= killAt) child.kill('SIGKILL');
    });
    child.on('exit', () => resolve());
  });
  const before = listCheckpoints(join(killed, 'checkpoints'));
  assert.ok(before.length >= 1, 'a checkpoint was written before the kill');
  assert.ok(!before.includes('step-00000012'), 'the run was really interrupted');
  // A torn save (temp folder) and an empty checkpoint folder must never be picked up.
  mkdirSync(tempName(join(killed, 'checkpoints', 'step-00000099')), { recursive: true });
  mkdirSync(join(killed, 'checkpoints', 'step-00000098'), { recursive: true });
  const skipped: string[] = [];
  assert.equal(
    resolveCheckpoint(join(killed, 'checkpoints'), { log: (l) => skipped.push(l) }),
    join(killed, 'checkpoints', before[before.length - 1]!),
  );
  assert.match(skipped.join('\n'), /skipping .*step-00000098: config\.json is missing/);
  const refused = spawnSync('node', cliArgs(killed), { encoding: 'utf8' });
  assert.notEqual(refused.status, 0);
  assert.match(refused.stderr, /already holds checkpoints: add --resume/);
  const r2 = spawnSync('node', cliArgs(killed, '--resume'), { encoding: 'utf8' });
  assert.equal(r2.status, 0, r2.stderr);
  assert.match(r2.stdout, /resumed from .*step-0000000\d/);
  const diff = maxAbsDiff(
    join(full, 'checkpoints', 'step-00000012', 'model.safetensors'),
    join(killed, 'checkpoints', 'step-00000012', 'model.safetensors'),
  );
  assert.ok(diff <= 1e-6, `max |Δw| = ${diff} (killed at step ≥ ${killAt})`);
  const state = JSON.parse(
    readFileSync(join(killed, 'checkpoints', 'step-00000012', 'trainer_state.json'), 'utf8'),
  ) as { step: number };
  assert.equal(state.step, 12);
});

test('`t3d pretrain` with restoration alone (vision-only, no text) trains, and its checkpoint loads with the decoder', () => {
  const out = join(tmp, 'restoration');
  const r = spawnSync(
    'node',
    cliArgs(
      out,
      '--steps',
      '3',
      '--set',
      'objective.clip.weight=0',
      '--set',
      'objective.tma.weight=0',
      '--set',
      'objective.restoration.weight=1',
      '--set',
      'objective.restoration.useText=false',
      '--set',
      'train.logEvery=1',
    ),
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /step 3\/3 loss [\d.]+ \(rec [\d.]+\)/);
  const { model, dir } = loadRunCheckpoint(out); // a run folder: its newest checkpoint
  assert.equal(dir, join(out, 'checkpoints', listCheckpoints(join(out, 'checkpoints')).pop()!));
  assert.ok(model.restoration_decoder, 'decoder restored from the checkpoint');
  assert.equal(model.restoration_decoder.film?.length, 3);
  model.dispose();
});

test("`t3d pretrain` with the 'sentence' TMA formulation (pooled over views, noisy-or targets) runs 3 steps to a finite loss", () => {
  const out = join(tmp, 'sentence');
  const sets = [
    'objective.tma.formulation="sentence"',
    'objective.tma.pool="max"',
    'objective.tma.sentenceTarget="noisy-or"',
    'objective.tma.warmupSteps=0',
    'train.logEvery=1',
  ];
  const r = spawnSync('node', cliArgs(out, '--steps', '3', ...sets.flatMap((s) => ['--set', s])), { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const last = /step 3\/3 loss ([\d.]+) \(clip [\d.]+ tma ([\d.]+)\)/.exec(r.stdout);
  assert.ok(last, r.stdout);
  assert.ok(Number.isFinite(Number(last[1])) && Number.isFinite(Number(last[2])), last[0]);
});

test("bf16 mixed precision trains on CPU with the float32 run's first loss (±2 %); fp16 asks for a CUDA device", async () => {
  const firstLoss = async (amp: string) => {
    const cfg = base(['optim.steps=3', `optim.amp="${amp}"`, 'train.checkpointEvery=1000', 'train.logEvery=1']);
    const out = join(tmp, `amp-${amp}`);
    const tokenizer = prepareTokenizer(cfg, out);
    torch.manualSeed(0);
    const model = buildT3dModel(cfg.model, [16, 32, 32], tokenizer.vocabSize);
    const loader = new Loader({
      cacheDir: cache,
      split: 'train',
      batchSize: 4,
      seed: 0,
      workers: 1,
      views: cfg.data.views,
    });
    const r = await pretrain({ config: cfg, model, tokenizer, loader, outDir: out, log: () => {} });
    assert.equal(r.step, 3);
    assert.equal(r.skippedSteps, 0);
    assert.ok(
      model.parameters().every((p) => p.dtype === 'float32'),
      'parameters stay float32',
    );
    model.dispose();
    return (JSON.parse(readFileSync(join(out, 'metrics.jsonl'), 'utf8').split('\n')[0]!) as { loss: number }).loss;
  };
  const [full, bf16] = [await firstLoss('off'), await firstLoss('bf16')];
  assert.ok(Math.abs(bf16 - full) / full < 0.02 && bf16 !== full, `first loss float32 ${full}, bf16 ${bf16}`);
  const cfg = base(['optim.amp="fp16"']);
  const tokenizer = prepareTokenizer(cfg, join(tmp, 'amp-fp16'));
  const model = buildT3dModel(cfg.model, [16, 32, 32], tokenizer.vocabSize);
  const loader = new Loader({
    cacheDir: cache,
    split: 'train',
    batchSize: 4,
    seed: 0,
    workers: 1,
    views: cfg.data.views,
  });
  await assert.rejects(
    pretrain({ config: cfg, model, tokenizer, loader, outDir: join(tmp, 'amp-fp16'), log: () => {} }),
    /fp16' needs a CUDA device/,
  );
  model.dispose();
});

test('EMA teacher: its codes drive TMA, it trails the student, and resuming restores it exactly', async () => {
  const cfg = base([
    'optim.steps=6',
    'train.checkpointEvery=3',
    'objective.tma.warmupSteps=0',
    'objective.tma.teacherMomentum=0.9',
    'objective.tma.codeViews=["text","global"]',
  ]);
  const run = async (out: string, resume: boolean) => {
    const tokenizer = prepareTokenizer(cfg, out);
    torch.manualSeed(0);
    const model = buildT3dModel(cfg.model, [16, 32, 32], tokenizer.vocabSize);
    const loader = new Loader({
      cacheDir: cache,
      split: 'train',
      batchSize: 4,
      seed: 0,
      workers: 1,
      views: cfg.data.views,
    });
    const r = await pretrain({ config: cfg, model, tokenizer, loader, outDir: out, resume, log: () => {} });
    model.dispose();
    return r;
  };
  const full = join(tmp, 'teacher-full');
  const r = await run(full, false);
  assert.equal(r.skippedSteps, 0);
  const metrics = readFileSync(join(full, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { tma?: number });
  assert.ok(
    metrics.every((m) => m.tma !== undefined && Number.isFinite(m.tma)),
    'TMA ran at every step',
  );
  const { tensors } = torch.loadSafetensors(join(full, 'checkpoints', 'step-00000006', 'optimizer.safetensors'));
  const { tensors: student } = torch.loadSafetensors(join(full, 'checkpoints', 'step-00000006', 'model.safetensors'));
  const w = 'visual.conv1.weight';
  const gap = torch.tidy(() => tensors.get(`teacher.${w}`)!.sub(student.get(w)!).abs().max().item());
  assert.ok(gap > 0, 'the teacher trails the student');
  torch.dispose([...tensors.values(), ...student.values()]);
  // resume from the step-3 checkpoint in a fresh folder: same student and teacher at step 6
  const resumed = join(tmp, 'teacher-resumed');
  mkdirSync(join(resumed, 'checkpoints'), { recursive: true });
  cpSync(join(full, 'checkpoints', 'step-00000003'), join(resumed, 'checkpoints', 'step-00000003'), {
    recursive: true,
  });
  cpSync(join(full, 'tokenizer.json'), join(resumed, 'tokenizer.json'));
  await run(resumed, true);
  for (const f of ['model.safetensors', 'optimizer.safetensors']) {
    const diff = maxAbsDiff(
      join(full, 'checkpoints', 'step-00000006', f),
      join(resumed, 'checkpoints', 'step-00000006', f),
    );
    assert.ok(diff <= 1e-6, `${f}: max |Δ| = ${diff}`);
  }
});

test('`t3d embed` writes unit-norm volume and report embeddings with their names, from a run folder', () => {
  const run = join(tmp, 'full'); // trained by the resume test above
  const vol = join(tmp, 'emb-volumes.safetensors');
  const r1 = spawnSync(
    'node',
    [cli, 'embed', '--checkpoint', run, '--cache', cache, '--split', 'valid', '--out', vol],
    { encoding: 'utf8' },
  );
  assert.equal(r1.status, 0, r1.stderr);
  const reportsFile = join(tmp, 'reports.txt');
  writeFileSync(reportsFile, 'Cardiomegaly is present.\nNo pleural effusion.\n');
  const rep = join(tmp, 'emb-reports.safetensors');
  const r2 = spawnSync('node', [cli, 'embed', '--checkpoint', run, '--reports', reportsFile, '--out', rep], {
    encoding: 'utf8',
  });
  assert.equal(r2.status, 0, r2.stderr);
  const validCount = readCacheIndex(cache).entries.filter((e) => e.split === 'valid').length;
  for (const [file, rows, kind] of [
    [vol, validCount, 'volume'],
    [rep, 2, 'report'],
  ] as const) {
    const { tensors, metadata } = torch.loadSafetensors(file);
    const e = tensors.get('embeddings')!;
    assert.deepEqual(e.shape, [rows, 32]);
    torch.tidy(() => assertClose(e.norm(2, [1]), torch.ones([rows]), { atol: 1e-5 }));
    assert.equal((JSON.parse(metadata.names!) as string[]).length, rows);
    assert.equal(metadata.kind, kind);
    assert.match(metadata.checkpoint!, /step-00000012$/);
    torch.dispose([...tensors.values()]);
  }
  const bad = spawnSync(
    'node',
    [cli, 'embed', '--checkpoint', join(tmp, 'nowhere'), '--reports', reportsFile, '--out', rep],
    { encoding: 'utf8' },
  );
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /nowhere: no such checkpoint or run folder/);
});
