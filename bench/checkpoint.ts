// `npm run bench:checkpoint`: what sealing costs on a ResNet3D-50 checkpoint (MONAI layout, weights + AdamW state,
// ≈ 0.5 GB): a full save (files hashed as written, fsynced, manifest, renames) next to the sha256 of the same bytes
// in memory; a full verification (every byte read back and hashed) next to the load itself; all as shares of the
// training step (2×1×96³, AdamW) that the checkpoint protects, measured in the same run.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../src/torch/index.js';
import { F, optim } from '../src/torch/index.js';
import { ResNet3d } from '../src/models/resnet3d.js';
import { type CheckpointParts, loadCheckpoint, saveCheckpoint } from '../src/train/checkpoint.js';
import { verifyFolder } from '../src/util/manifest.js';
import { timed } from './timing.js';

const reps = Number(process.env.BENCH_REPS ?? 3);
const dir = mkdtempSync(join(process.env.BENCH_DIR ?? tmpdir(), 't3d-bench-ckpt-'));
torch.manualSeed(0);
const model = new ResNet3d({ depth: 50, conv1Kernel: 7, conv1Stride: 2, numClasses: 2 });
const opt = new optim.AdamW(model.parameters(), { lr: 1e-4 });
const x = torch.randn([2, 1, 96, 96, 96]).keep();
const y = torch.tensor(new BigInt64Array([0n, 1n])).keep();
const step = timed(
  () => {
    torch.tidy(() => F.crossEntropy(model.forward(x), y).backward());
    opt.step();
    opt.zeroGrad();
  },
  1,
  reps,
);

let n = 0;
const parts = (): CheckpointParts => ({
  config: { model: 'resnet3d-50' },
  model,
  optimizer: opt,
  extra: new Map(),
  tokenizerJson: {},
  state: { step: ++n, epoch: 0, batchInEpoch: 0, consecutiveNonFinite: 0, skippedSteps: 0, fingerprint: 'bench' },
});
let last = '';
const save = timed(
  () => {
    last = saveCheckpoint(dir, parts(), 1);
  },
  1,
  reps,
);
const files = readdirSync(last).map((f) => readFileSync(join(last, f)));
const bytes = files.reduce((a, b) => a + b.length, 0);
const hashOnly = timed(
  () => {
    for (const b of files) createHash('sha256').update(b).digest();
  },
  1,
  reps,
);
const verify = timed(
  () => {
    if (verifyFolder(last)) throw new Error(`${last} does not verify`);
  },
  1,
  reps,
);
const load = timed(() => torch.dispose([...loadCheckpoint(last, model, opt).extra.values()]), 1, reps);

const pct = (s: number) => `${((100 * s) / step).toFixed(1)} %`;
console.log(
  JSON.stringify({
    threads: torch.getNumThreads(),
    checkpointMB: +(bytes / 1e6).toFixed(1),
    stepS: +step.toFixed(3),
    saveS: +save.toFixed(3),
    sha256InMemoryS: +hashOnly.toFixed(3),
    sha256MBps: Math.round(bytes / 1e6 / hashOnly),
    verifyS: +verify.toFixed(3),
    loadS: +load.toFixed(3),
  }),
);
console.log(
  `| ResNet3D-50 checkpoint, ${(bytes / 1e6).toFixed(0)} MB | step ${step.toFixed(2)} s | save ${save.toFixed(2)} s (${pct(save)} of a step), of which sha256 ≈ ${hashOnly.toFixed(2)} s (${pct(hashOnly)}) | verify ${verify.toFixed(2)} s (${pct(verify)}) | load ${load.toFixed(2)} s (${pct(load)}) |`,
);
torch.dispose([x, y]);
opt.dispose();
model.dispose();
rmSync(dir, { recursive: true, force: true });
