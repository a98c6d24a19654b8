// Steady-state training must not leak: live native tensors stay constant, RSS stays flat, freed host memory is reused.
import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/torch/index.js';
import { F, nn, optim, type Tensor } from '../src/torch/index.js';

class Small3dCnn extends nn.Module {
  readonly body = this.registerModule(
    'body',
    new nn.Sequential(
      new nn.Conv3d(1, 4, 3, { padding: 1 }),
      new nn.BatchNorm3d(4),
      new nn.ReLU(),
      new nn.Conv3d(4, 8, 3, { stride: 2, padding: 1 }),
      new nn.GroupNorm(2, 8),
      new nn.GELU(),
    ),
  );
  readonly head = this.registerModule('head', new nn.Linear(8, 3));
  forward(x: Tensor): Tensor {
    return this.head.forward(F.adaptiveAvgPool3d(this.body.forward(x), 1).flatten(1));
  }
}

test('1,000 training steps of a small 3D CNN: constant live tensors, RSS drift ≤ 5 %', () => {
  torch.manualSeed(0);
  const model = new Small3dCnn();
  const opt = new optim.AdamW(model.parameters(), { lr: 1e-3 });
  const sched = new optim.LRScheduler(opt, optim.warmupCosine(10, 1000));
  const g = new torch.Generator(1);
  const step = () => {
    torch.tidy(() => {
      const x = torch.randn([2, 1, 8, 8, 8], { generator: g });
      const y = torch.randint(0, 3, [2], { generator: g });
      F.crossEntropy(model.forward(x), y).backward();
    });
    optim.clipGradNorm(model.parameters(), 1);
    opt.step();
    opt.zeroGrad();
    sched.step();
  };
  for (let i = 0; i < 100; i++) step();
  const liveAfterWarmup = torch.memory().numTensors;
  const rssAfterWarmup = process.memoryUsage().rss;
  const counts: number[] = [];
  for (let i = 0; i < 900; i++) {
    step();
    if (i % 100 === 0) counts.push(torch.memory().numTensors);
  }
  const rssEnd = process.memoryUsage().rss;
  assert.ok(
    counts.every((c) => c === liveAfterWarmup),
    `live tensors drifted: ${liveAfterWarmup} → ${counts.join(', ')}`,
  );
  assert.equal(torch.memory().numTensors, liveAfterWarmup);
  const drift = (rssEnd - rssAfterWarmup) / rssAfterWarmup;
  assert.ok(drift <= 0.05, `RSS drift ${(drift * 100).toFixed(1)} % (${rssAfterWarmup} → ${rssEnd} bytes)`);
  model.dispose();
  opt.dispose();
});

/** Runs a child Node under T3D_MALLOC=`malloc` that trains a convolution whose activations are 113 MB tensors;
 * reports the page faults of 5 steps after 3 warm-up steps. */
function faultsOfTrainingSteps(malloc?: string): { hostMemory: string; faults: number } {
  const torchUrl = new URL('../src/torch/index.js', import.meta.url).href;
  const script = `const torch = await import(${JSON.stringify(torchUrl)});
torch.manualSeed(0);
const conv = new torch.nn.Conv3d(1, 16, 3, { padding: 1 });
const x = torch.randn([2, 1, 96, 96, 96]).keep();
const step = () => torch.tidy(() => { torch.F.relu(conv.forward(x)).mean().backward(); });
for (let i = 0; i < 3; i++) step();
const f0 = process.resourceUsage().minorPageFault;
for (let i = 0; i < 5; i++) step();
console.log(JSON.stringify({ hostMemory: torch.hostMemory, faults: process.resourceUsage().minorPageFault - f0 }));`;
  const env = { ...process.env, T3D_MALLOC: malloc };
  if (malloc === undefined) delete env.T3D_MALLOC;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { env, encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').pop()!) as { hostMemory: string; faults: number };
}

test('freed host memory is kept for reuse: training steps do not page-fault their activations in anew; T3D_MALLOC=system restores the C library default', (t) => {
  const kept = faultsOfTrainingSteps();
  if (kept.hostMemory !== 'keep') return t.skip('the C library is not glibc: host memory stays as it manages it');
  const system = faultsOfTrainingSteps('system');
  assert.equal(system.hostMemory, 'system');
  // each step maps its 113 MB activations and gradients afresh under glibc's defaults: 27,648 pages of 4 KiB apiece
  assert.ok(system.faults >= 300_000, `T3D_MALLOC=system: ${system.faults} page faults in 5 steps`);
  assert.ok(
    kept.faults * 5 < system.faults,
    `kept host memory: ${kept.faults} page faults in 5 steps, against ${system.faults}`,
  );
  assert.throws(() => faultsOfTrainingSteps('always'), /T3D_MALLOC must be 'keep' or 'system' \(got 'always'\)/);
});
