// `npm run bench:inference`: zero-shot inference of the vision encoder (eval mode, no autograd) — per-volume
// latency at batch 1 and throughput batched — for the cpu-96 encoder (ResNet3D-10, widen 0.25, on 64×96×96)
// and ResNet3D-50 (MONAI architecture) on 96×224×224 (t3d-224), each next to the same encoder in
// PyTorch-Python in the same run when python3 with torch is importable.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../src/torch/index.js';
import { ResNet3d, type ResNet3dConfig } from '../src/models/resnet3d.js';
import { loadConfig } from '../src/train/config.js';
import { loadPreset } from '../src/data/presets.js';
import { packageRoot } from '../src/util/paths.js';
import { pythonTwin, timed } from './timing.js';

const threads = torch.getNumThreads();
const reps = Number(process.env.BENCH_REPS ?? 5);

interface Case {
  name: string;
  resnet: Required<Pick<ResNet3dConfig, 'depth' | 'conv1Kernel' | 'conv1Stride' | 'widenFactor'>>;
  shape: number[];
  batches: number[];
  reps: number;
}

const cpu = loadConfig('cpu-96').model.vision;
if (cpu.kind !== 'resnet3d') throw new Error('cpu-96 config: expected a resnet3d encoder');
const cases: Case[] = [
  {
    name: 'cpu-96 encoder (ResNet3D-10 ×0.25)',
    resnet: {
      depth: cpu.depth,
      conv1Kernel: cpu.conv1Kernel,
      conv1Stride: cpu.conv1Stride,
      widenFactor: cpu.widenFactor,
    },
    shape: loadPreset('cpu-96').shape,
    batches: [1, 8],
    reps,
  },
  {
    name: 'ResNet3D-50 on 96×224×224',
    resnet: { depth: 50, conv1Kernel: 7, conv1Stride: 2, widenFactor: 1 },
    shape: loadPreset('t3d-224').shape,
    batches: [1, 2],
    reps: Math.min(reps, 3),
  },
];

const results: Record<
  string,
  Record<string, { tsS: number; pythonS?: number; volumesPerS: number; latencyMsPerVolume: number }>
> = {};
for (const c of cases) {
  torch.manualSeed(0);
  const model = new ResNet3d(c.resnet);
  model.eval();
  results[c.name] = {};
  for (const batch of c.batches) {
    const x = torch.randn([batch, 1, ...c.shape]).keep();
    const ts = timed(
      () =>
        torch.noGrad(() =>
          torch.tidy(() => {
            model.encode(x).pooled.sum().item();
          }),
        ),
      1,
      c.reps,
    );
    x.dispose();
    const cfg = { threads, batch, shape: c.shape, ...c.resnet, warmup: 1, reps: c.reps };
    const py = pythonTwin<{ s: number }>('inference_bench.py', [JSON.stringify(cfg)])?.s;
    results[c.name]![`batch ${batch}`] = {
      tsS: ts,
      pythonS: py,
      volumesPerS: batch / ts,
      latencyMsPerVolume: (1000 * ts) / batch,
    };
    console.log(
      `${c.name}, batch ${batch}: TypeScript ${((1000 * ts) / batch).toFixed(1)} ms/volume (${(batch / ts).toFixed(2)} volumes/s)` +
        (py
          ? `; PyTorch-Python ${((1000 * py) / batch).toFixed(1)} ms/volume; time ratio TS/Python ${(ts / py).toFixed(2)}`
          : '; no python torch') +
        `; threads ${threads}`,
    );
  }
  model.dispose();
}
const outDir = join(packageRoot(), 'runs', 'bench');
mkdirSync(outDir, { recursive: true });
writeFileSync(
  join(outDir, 'inference.json'),
  JSON.stringify({ date: new Date().toISOString(), threads, results }, null, 2),
);
