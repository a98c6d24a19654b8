// Classification transfer: linear probe and fine-tuning on a tiny cache that is separable by construction
// (label k ⇔ a blob of kind k: bright, dark, textured), its label-shuffled twin, early stopping, resume and
// tensor lifetimes.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../src/torch/index.js';
import { type VisionEncoder } from '../src/models/t3d.js';
import { evalSplits } from '../src/eval/splits.js';
import { macroAuroc } from '../src/eval/metrics/classification.js';
import { runTransfer, type TransferOptions, type TransferResult } from '../src/eval/tasks/transfer.js';
import { Rng } from '../src/util/rng.js';

const tmp = mkdtempSync(join(tmpdir(), 't3d-transfer-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const S = 12;
const LABELS = ['Bright blob', 'Dark blob', 'Textured blob'];

/** A cache in the preprocessing format (cache.json, index.jsonl, int16 volumes), volumes in normalised units ×1000. */
function writeCache(dir: string, o: { shuffleLabels?: boolean } = {}): void {
  mkdirSync(join(dir, 'volumes'), { recursive: true });
  const cases: { name: string; split: string; labels: number[]; image: Int16Array }[] = [];
  for (const [split, n] of [
    ['train', 80],
    ['valid', 48],
  ] as const) {
    for (let i = 0; i < n; i++) {
      const rng = new Rng(7, split === 'train' ? 0 : 1, i);
      const labels = LABELS.map(() => (rng.next() < 0.4 ? 1 : 0));
      const v = Float32Array.from({ length: S ** 3 }, () => -0.3 + rng.normal(0, 0.05));
      labels.forEach((y, k) => {
        if (!y) return;
        const [z0, y0, x0] = [rng.int(1, S - 5), rng.int(1, S - 5), rng.int(1, S - 5)];
        for (let z = z0; z < z0 + 4; z++)
          for (let yy = y0; yy < y0 + 4; yy++)
            for (let x = x0; x < x0 + 4; x++) {
              v[(z * S + yy) * S + x] = k === 0 ? 0.6 : k === 1 ? -0.9 : (z + yy + x) % 2 ? 0.4 : -0.8;
            }
      });
      cases.push({ name: `${split}_${i}_a_1`, split, labels, image: Int16Array.from(v, (x) => Math.round(x * 1000)) });
    }
  }
  if (o.shuffleLabels) {
    const perm = new Rng(99).shuffle(cases.map((c) => c.labels));
    cases.forEach((c, i) => {
      c.labels = perm[i]!;
    });
  }
  const lines = cases.map((c) => {
    const file = `volumes/${c.name}.safetensors`;
    const t = torch.tensor(c.image, [S, S, S]);
    torch.saveSafetensors(join(dir, file), { image: t });
    t.dispose();
    return JSON.stringify({
      name: c.name,
      file,
      split: c.split,
      shape: [S, S, S],
      spacing: [1, 1, 1],
      sourceHash: c.name,
      labels: c.labels,
      report: '',
      hasMask: false,
      rescale: 'none',
    });
  });
  writeFileSync(join(dir, 'index.jsonl'), lines.join('\n') + '\n');
  const preset = {
    name: 'tiny-16',
    description: 'test',
    spacing: [1, 1, 1],
    shape: [S, S, S],
    huWindow: [-1000, 1000],
    scale: 1000,
    padValue: -1,
    synth: { inPlane: 16, fovMm: [16, 16], sliceThicknessMm: [1, 1], zExtentMm: [16, 16] },
  };
  writeFileSync(join(dir, 'cache.json'), JSON.stringify({ preset, labelNames: LABELS, count: cases.length }));
}

const cache = join(tmp, 'cache'),
  shuffled = join(tmp, 'shuffled');
writeCache(cache);
writeCache(shuffled, { shuffleLabels: true });
const splits = evalSplits(cache);
const shuffledSplits = evalSplits(shuffled);

/** A tiny encoder: 3³ convolution to 16 channels, BatchNorm, ReLU, global average. */
class TinyEncoder extends torch.nn.Module implements VisionEncoder {
  readonly outChannels = 16;
  readonly outputStride = 1;
  private readonly conv = this.registerModule('conv', new torch.nn.Conv3d(1, 16, 3, { padding: 1 }));
  private readonly bn = this.registerModule('bn', new torch.nn.BatchNorm3d(16));
  encode(x: torch.Tensor): { featureMap: torch.Tensor; pooled: torch.Tensor } {
    return torch.tidy(() => {
      const h = this.bn.forward(this.conv.forward(x)).relu();
      return { featureMap: h, pooled: h.mean([2, 3, 4]) };
    });
  }
}
/** Seeded, so every call gives the same weights (as a checkpoint would). */
const makeEncoder = () => {
  torch.manualSeed(1234);
  return new TinyEncoder();
};

const probe = (o: Partial<TransferOptions> = {}): TransferOptions => ({
  cacheDir: cache,
  mode: 'linear',
  fraction: 1,
  splits,
  epochs: 60,
  patience: 10,
  batchSize: 32,
  lr: 0.01,
  seed: 0,
  workers: 1,
  ...o,
});
const finetune = (o: Partial<TransferOptions> = {}): TransferOptions => ({
  cacheDir: cache,
  mode: 'finetune',
  fraction: 1,
  splits,
  epochs: 8,
  patience: 1,
  batchSize: 16,
  lr: 0.3,
  seed: 0,
  workers: 1,
  ...o,
});
const testAuroc = (r: TransferResult) => macroAuroc(r.testScores, r.testLabels).value;

/** Early stopping's contract on a result: the best epoch is the first maximum, and stopping came on time. */
function checkEarlyStopping(r: TransferResult, o: TransferOptions): void {
  assert.equal(r.valAuroc.length, r.epochsRun);
  assert.equal(r.trainLoss.length, r.epochsRun);
  const best = Math.max(...r.valAuroc);
  assert.equal(r.bestEpoch, r.valAuroc.indexOf(best));
  if (r.epochsRun < o.epochs)
    assert.equal(
      r.epochsRun - 1 - r.bestEpoch,
      o.patience,
      'stopped after exactly `patience` epochs without improvement',
    );
  else assert.ok(r.epochsRun - 1 - r.bestEpoch <= o.patience);
  assert.ok(Math.abs(macroAuroc(r.valScores, r.valLabels).value - best) < 1e-12, "val scores are the best epoch's");
}

test('linear probe separates a separable-by-construction task; shuffled labels give chance', async () => {
  const before = torch.memory().numTensors;
  const r = await runTransfer(makeEncoder, probe());
  assert.equal(torch.memory().numTensors, before, 'live tensors after a probe');
  assert.deepEqual(r.labelNames, LABELS);
  assert.deepEqual(r.testNames, splits.test);
  assert.equal(r.testScores.length, splits.test.length);
  assert.equal(r.valScores.length, splits.val.length);
  assert.ok(
    r.testScores.flat().every((p) => p > 0 && p < 1),
    'scores are probabilities',
  );
  assert.equal(r.trainCount, splits.train.length);
  checkEarlyStopping(r, probe());
  const auc = testAuroc(r);
  assert.ok(auc >= 0.9, `probe test macro-AUROC ${auc.toFixed(3)}`);

  const s = await runTransfer(makeEncoder, probe({ cacheDir: shuffled, splits: shuffledSplits }));
  const chance = testAuroc(s);
  assert.ok(
    Math.abs(chance - 0.5) <= 0.15 && chance < auc - 0.2,
    `shuffled-label test macro-AUROC ${chance.toFixed(3)} (unshuffled ${auc.toFixed(3)})`,
  );
});

let fineTuned: TransferResult | undefined;

test("fine-tuning lowers the training loss, stops early on time and returns the best epoch's scores", async () => {
  const before = torch.memory().numTensors;
  const perEpoch: number[] = [];
  const o = finetune({
    outDir: join(tmp, 'finetune-whole'),
    onProgress: (m) => {
      if (/ epoch \d+\//.test(m)) perEpoch.push(torch.memory().numTensors);
    },
  });
  const r = await runTransfer(makeEncoder, o);
  assert.equal(torch.memory().numTensors, before, 'live tensors after fine-tuning');
  assert.ok(
    perEpoch.length >= 2 && perEpoch.every((n) => n === perEpoch[0]),
    `live tensors per epoch ${perEpoch.join(', ')}`,
  );
  assert.ok(r.trainLoss.at(-1)! < r.trainLoss[0]!, `train loss ${r.trainLoss.map((l) => l.toFixed(3)).join(' → ')}`);
  checkEarlyStopping(r, o);
  assert.ok(
    r.epochsRun < o.epochs,
    `ran all ${r.epochsRun} epochs (val ${r.valAuroc.map((a) => a.toFixed(3)).join(', ')}); the test wants an early stop`,
  );
  assert.ok(
    r.bestEpoch < r.epochsRun - 1 && r.valAuroc.at(-1)! < r.valAuroc[r.bestEpoch]!,
    'the test wants a best epoch before a worse last one',
  );
  assert.ok(testAuroc(r) > 0.75, `fine-tuned test macro-AUROC ${testAuroc(r).toFixed(3)}`);
  fineTuned = r;
});

test('resume: a run stopped after k epochs and continued equals an uninterrupted run', async () => {
  for (const mode of ['linear', 'finetune'] as const) {
    const base = mode === 'linear' ? probe({ epochs: 12, patience: 50 }) : finetune();
    const whole =
      mode === 'linear' ? await runTransfer(makeEncoder, { ...base, outDir: join(tmp, 'linear-whole') }) : fineTuned;
    assert.ok(whole, "needs the fine-tuning test's run");
    const dir = join(tmp, `${mode}-resumed`);
    const k = mode === 'linear' ? 5 : 2;
    const first = await runTransfer(makeEncoder, { ...base, epochs: k, outDir: dir });
    assert.equal(first.epochsRun, k);
    const before = torch.memory().numTensors;
    const logs: string[] = [];
    const resumed = await runTransfer(makeEncoder, { ...base, outDir: dir, onProgress: (m) => logs.push(m) });
    assert.equal(torch.memory().numTensors, before);
    assert.ok(
      logs.some((m) => m.includes(`resuming after epoch ${k}`)),
      logs.join('\n'),
    );
    assert.deepEqual(resumed.trainLoss, whole.trainLoss, `${mode}: train loss`);
    assert.deepEqual(resumed.valAuroc, whole.valAuroc, `${mode}: val AUROC`);
    assert.equal(resumed.bestEpoch, whole.bestEpoch);
    assert.equal(resumed.epochsRun, whole.epochsRun);
    assert.deepEqual(resumed.testScores, whole.testScores, `${mode}: test scores`);
    assert.deepEqual(resumed.valScores, whole.valScores, `${mode}: val scores`);
    const files = readdirSync(dir);
    assert.equal(files.filter((f) => f.startsWith('epoch-')).length, 1, files.join(', '));
    assert.equal(files.filter((f) => f.startsWith('best-')).length, 1, files.join(', '));
    assert.equal(existsSync(join(dir, 'features.safetensors')), mode === 'linear');
    // other settings in the same folder are refused, not mixed in
    await assert.rejects(
      runTransfer(makeEncoder, { ...base, lr: base.lr * 2, outDir: dir }),
      /holds a transfer run with other settings \(lr: /,
    );
  }
});

test('a label fraction trains on its subset (shared through the subset file); bad options are refused', async () => {
  const file = join(tmp, 'subsets', 'labels-10pct.json');
  const r = await runTransfer(makeEncoder, probe({ fraction: 0.1, subsetFile: file, epochs: 5 }));
  assert.equal(r.trainCount, Math.round(0.1 * splits.train.length));
  assert.ok(existsSync(file));
  await assert.rejects(runTransfer(makeEncoder, probe({ patience: 0 })), /patience must be an integer ≥ 1, got 0/);
  await assert.rejects(
    runTransfer(makeEncoder, probe({ fraction: 0.01, subsetFile: file })),
    /belongs to another subset: fraction 0\.1/,
  );
});
