// Pre-training on the tiny test preset with the TMA formulation 'cluster' (P2) — the report clusters are made at the
// start of every epoch (with progress lines), the loss and its diagnostics are finite, and a run interrupted mid-epoch
// and resumed continues with the same clusters and the same losses as an uninterrupted one — and with the prototypes
// frozen for the first steps (the trainer's part of the reference-fidelity options).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../src/torch/index.js';
import { applyOverrides, loadConfig, type PretrainConfig } from '../src/train/config.js';
import { buildT3dModel } from '../src/train/factory.js';
import { pretrain } from '../src/train/trainer.js';
import { resolveCheckpoint } from '../src/train/checkpoint.js';
import { loadSafetensors } from '../src/torch/safetensors.js';
import { ensureCache } from '../src/data/synth-cache.js';
import { prepareTokenizer } from '../src/train/tokenizer.js';
import { Loader } from '../src/data/loader.js';
import { fixture } from './helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 't3d-cluster-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const cache = join(tmp, 'cache');
const tiny = (extra: string[]): PretrainConfig =>
  applyOverrides(loadConfig(fixture('pretrain', 'tiny.json')), [
    `data.cache=${cache}`,
    `data.preset=${fixture('pretrain', 'tiny-preset.json')}`,
    'objective.tma.warmupSteps=0',
    ...extra,
  ]);
const config = (extra: string[] = []): PretrainConfig =>
  tiny([
    'objective.tma.formulation="cluster"',
    'objective.tma.clusterHeads=[2,3]',
    'optim.steps=6',
    'train.checkpointEvery=3',
    ...extra,
  ]);

const loaderFor = (cfg: PretrainConfig) =>
  new Loader({ cacheDir: cache, split: 'train', batchSize: 4, seed: 0, workers: 1, views: cfg.data.views });

/** Trains into `out` (resuming when asked); `stopAt` interrupts it after that many steps. The log lines. */
async function train(out: string, o: { resume?: boolean; stopAt?: number } = {}): Promise<string[]> {
  const cfg = config();
  const tokenizer = prepareTokenizer(cfg, out);
  torch.manualSeed(0);
  const model = buildT3dModel(cfg.model, [16, 32, 32], tokenizer.vocabSize);
  const lines: string[] = [];
  const lossHook = (loss: torch.Tensor, step: number) => {
    if (step === o.stopAt) throw new Error('interrupted');
    return loss;
  };
  try {
    const loader = loaderFor(cfg);
    await pretrain({
      config: cfg,
      model,
      tokenizer,
      loader,
      outDir: out,
      resume: o.resume,
      log: (l) => lines.push(l),
      lossHook,
    });
  } catch (e) {
    if ((e as Error).message !== 'interrupted') throw e;
  } finally {
    model.dispose();
  }
  return lines;
}

const metrics = (out: string) =>
  readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, number>);

/** Tensors saved beside the optimiser state in a run's newest checkpoint (those whose names start with `prefix`), as
 * plain arrays. */
function savedTensors(out: string, prefix: string): Record<string, number[]> {
  const dir = resolveCheckpoint(join(out, 'checkpoints'), { log: () => {} })!;
  const { tensors } = loadSafetensors(join(dir, 'optimizer.safetensors'));
  const kept = [...tensors].filter(([k]) => k.startsWith(prefix));
  const values = Object.fromEntries(kept.map(([k, t]) => [k, t.flatten().toArray()]));
  torch.dispose([...tensors.values()]);
  return values;
}
const savedClusters = (out: string) => savedTensors(out, 'clusters.');

test('setup: the tiny synthetic cache', async () => {
  await ensureCache(config());
});

test('cluster pre-training: clusters every epoch with progress, finite loss and diagnostics; a resumed run keeps its clusters and losses', async () => {
  const perEpoch = loaderFor(config()).length;
  assert.ok(perEpoch >= 2 && 3 % perEpoch !== 0, `step 3 must fall inside an epoch (${perEpoch} batches per epoch)`);
  const whole = join(tmp, 'whole');
  const lines = await train(whole);
  const epochs = Math.ceil(6 / perEpoch);
  for (let e = 0; e < epochs; e++) {
    assert.ok(
      lines.some((l) => l.startsWith(`report clusters for epoch ${e}:`)),
      `clusters of epoch ${e}`,
    );
  }
  assert.ok(
    lines.some((l) => /head 2\/2: k-means K=3 restart 3\/3: mean cosine/.test(l)),
    'k-means progress',
  );
  const m = metrics(whole);
  assert.equal(m.length, 6);
  for (const row of m) {
    for (const k of [
      'tma',
      'ce.global>cluster',
      'ce.local>cluster',
      'ce.global>cluster.chance',
      'ce.local>cluster.oracle',
    ])
      assert.ok(Number.isFinite(row[k]), `step ${row.step}: ${k} = ${row[k]}`);
  }

  const resumed = join(tmp, 'resumed');
  await train(resumed, { stopAt: 3 });
  const before = savedClusters(resumed); // the step-3 checkpoint: clusters of epoch 1, saved mid-epoch
  assert.equal(before['clusters.epoch']![0], Math.floor(3 / perEpoch));
  const again = await train(resumed, { resume: true });
  assert.ok(again.some((l) => l.startsWith('resumed from')));
  const resumedEpoch = Math.floor(3 / perEpoch);
  assert.ok(
    !again.some((l) => l.startsWith(`report clusters for epoch ${resumedEpoch}:`)),
    'the clusters of the epoch resumed into come from the checkpoint, not a new k-means',
  );
  const tail = (rows: Record<string, number>[]) => rows.filter((r) => r.step > 3).map((r) => [r.step, r.loss, r.tma]);
  assert.deepEqual(tail(metrics(resumed)), tail(m), 'the same losses after the resume');
  assert.deepEqual(savedClusters(resumed), savedClusters(whole), 'the same clusters at the end');
});

test('clusterHeads larger than the training set is refused before training, naming the option', async () => {
  const cfg = config(['objective.tma.clusterHeads=[500]']);
  const out = join(tmp, 'too-many');
  const tokenizer = prepareTokenizer(cfg, out);
  const model = buildT3dModel(cfg.model, [16, 32, 32], tokenizer.vocabSize);
  await assert.rejects(
    pretrain({ config: cfg, model, tokenizer, loader: loaderFor(cfg), outDir: out, log: () => {} }),
    /objective.tma.clusterHeads: K 500 exceeds the \d+ training reports/,
  );
  model.dispose();
});

test('freezePrototypesSteps: the prototypes receive no update before that step, the rest of the model does', async () => {
  /** How far the prototypes and the first visual parameter move over 3 steps of 'swapped' with the prototypes frozen
   * for `freeze` steps. */
  const moved = async (freeze: number) => {
    const cfg = tiny([
      'objective.tma.formulation="swapped"',
      `objective.tma.freezePrototypesSteps=${freeze}`,
      'optim.steps=3',
      'train.checkpointEvery=1000',
    ]);
    const out = join(tmp, `freeze-${freeze}`);
    const tokenizer = prepareTokenizer(cfg, out);
    torch.manualSeed(0);
    const model = buildT3dModel(cfg.model, [16, 32, 32], tokenizer.vocabSize);
    const conv = [...model.namedParameters()].find(([n]) => n.startsWith('visual.'))![1];
    const [p0, c0] = [model.prototypes.weight, conv].map((t) => t.clone().keep());
    await pretrain({ config: cfg, model, tokenizer, loader: loaderFor(cfg), outDir: out, log: () => {} });
    const diff = (a: torch.Tensor, b: torch.Tensor) => torch.tidy(() => a.sub(b).abs().max().item());
    const result = { prototypes: diff(model.prototypes.weight, p0!), visual: diff(conv, c0!) };
    torch.dispose([p0!, c0!]);
    model.dispose();
    return result;
  };
  const frozen = await moved(3);
  const free = await moved(0);
  // frozen: only the in-place re-normalisation of each step (float32 rounding) touches them
  assert.ok(frozen.prototypes < 1e-6, `frozen prototypes moved by ${frozen.prototypes}`);
  assert.ok(free.prototypes > 1e-4, `free prototypes moved by only ${free.prototypes}`);
  assert.ok(frozen.visual > 1e-4, 'the encoder trains while the prototypes are frozen');
});

test('the DINO teacher options reach the trainer: the first step equals the default run, later ones follow the schedule', async () => {
  /** Per-step losses and the final teacher’s prototypes of 3 steps of 'teacher' with these options. */
  const run = async (name: string, options: string[]) => {
    const cfg = tiny([
      'objective.tma.formulation="teacher"',
      'objective.tma.teacherMomentum=0.5',
      'objective.tma.teacherCodes="embedding"',
      'optim.steps=3',
      'train.checkpointEvery=1000',
      ...options,
    ]);
    const out = join(tmp, `teacher-${name}`);
    const tokenizer = prepareTokenizer(cfg, out);
    torch.manualSeed(0);
    const model = buildT3dModel(cfg.model, [16, 32, 32], tokenizer.vocabSize);
    await pretrain({ config: cfg, model, tokenizer, loader: loaderFor(cfg), outDir: out, log: () => {} });
    model.dispose();
    const teacher = savedTensors(out, 'teacher.prototypes.weight')['teacher.prototypes.weight']!;
    return { tma: metrics(out).map((r) => r.tma!), teacher };
  };
  const constant = await run('constant', []);
  const cosine = await run('cosine', ['objective.tma.teacherMomentumSchedule="cosine"']);
  const batchNorm = await run('bn', ['objective.tma.teacherBatchNorm="train"']);
  assert.equal(cosine.tma[0], constant.tma[0], 'the first step: the same teacher');
  assert.notDeepEqual(cosine.teacher, constant.teacher, 'the momentum rises towards 1: another teacher');
  assert.notEqual(batchNorm.tma[0], constant.tma[0], "BatchNorm 'train': other codes from the first step");
  for (const r of [constant, cosine, batchNorm]) assert.ok(r.tma.every(Number.isFinite));
});
