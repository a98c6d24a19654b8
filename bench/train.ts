// `npm run bench:train`: one AdamW training step of ResNet3D-50 (MONAI architecture) on 2×1×96³, next to
// the same model and step in PyTorch-Python in the same run (when python3 with torch is importable).
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../src/torch/index.js';
import { F, optim } from '../src/torch/index.js';
import { ResNet3d } from '../src/models/resnet3d.js';
import { packageRoot } from '../src/util/paths.js';

const cfg = { threads: torch.getNumThreads(), input: [2, 1, 96, 96, 96], warmup: 1, reps: Number(process.env.BENCH_REPS ?? 3) };
torch.manualSeed(0);
const model = new ResNet3d({ depth: 50, conv1Kernel: 7, conv1Stride: 2, numClasses: 2 });
const opt = new optim.AdamW(model.parameters(), { lr: 1e-4 });
const x = torch.randn(cfg.input).keep();
const y = torch.tensor(new BigInt64Array([0n, 1n])).keep();
const step = () => {
  torch.tidy(() => F.crossEntropy(model.forward(x), y).backward());
  opt.step();
  opt.zeroGrad();
};
for (let i = 0; i < cfg.warmup; i++) step();
const times: number[] = [];
const rss0 = process.memoryUsage().rss;
for (let i = 0; i < cfg.reps; i++) {
  const t0 = performance.now();
  step();
  times.push((performance.now() - t0) / 1000);
}
times.sort((a, b) => a - b);
const ts = times[times.length >> 1]!;
let py: number | undefined;
for (const exe of [process.env.T3D_PYTHON, 'python3', '/usr/bin/python3'].filter((p): p is string => !!p)) {
  try { execFileSync(exe, ['-c', 'import torch'], { stdio: 'ignore' }); } catch { continue; }
  const outp = execFileSync(exe, [join(packageRoot(), 'bench', 'train_bench.py'), JSON.stringify(cfg)], { encoding: 'utf8' });
  py = (JSON.parse(outp.trim().split('\n').pop()!) as { step_s: number }).step_s;
  break;
}
console.log(`ResNet3D-50 training step, 2×1×96³, AdamW: TypeScript ${ts.toFixed(2)} s (${(2 / ts).toFixed(2)} volumes/s)` +
  (py ? `; PyTorch-Python ${py.toFixed(2)} s; time ratio TS/Python ${(ts / py).toFixed(2)}` : '; no python torch') +
  `; RSS growth over ${cfg.reps} steps ${((process.memoryUsage().rss - rss0) / 1e6).toFixed(0)} MB`);
const outDir = join(packageRoot(), 'runs', 'bench');
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, 'train.json'), JSON.stringify({ date: new Date().toISOString(), config: cfg, tsStepS: ts, pythonStepS: py }, null, 2));
