// `npm run bench:distributed`: Gloo allReduce between WORLD (default 2) local processes on loopback, the collective
// that averages gradients in data-parallel training: median time of REPEATS (default 10) sum-reductions of float32
// buffers from 256 KiB to 64 MiB, algorithm bandwidth (bytes / time) and ring bus bandwidth (× 2(n−1)/n, what each
// link carries). Then a data-parallel gradient step of ResNet3D-50 (46 M parameters, 1×1×INPUT³ per rank, INPUT 64)
// two ways, alternating: one flat allReduce after backward, and the bucketed reducer that starts each bucket's
// allReduce during backward; median step time and exposed communication (end of backward to summed gradients).
// Run without RANK it launches the ranks itself, with torchrun's variables.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as torch from '../src/torch/index.js';
import { F, distributed as dist, envGroupOptions } from '../src/torch/index.js';
import { ResNet3d } from '../src/models/resnet3d.js';

const sizesMiB = [0.25, 1, 4, 16, 64];
const repeats = Number(process.env.REPEATS ?? 10);

if (process.env.RANK === undefined) {
  const world = Number(process.env.WORLD ?? 2);
  const port = String(29_000 + Math.floor(Math.random() * 1000));
  const codes = await Promise.all(
    Array.from(
      { length: world },
      (_, rank) =>
        new Promise<number | null>((resolve) => {
          const p = spawn(process.execPath, [fileURLToPath(import.meta.url)], {
            stdio: rank === 0 ? 'inherit' : 'ignore',
            env: {
              ...process.env,
              RANK: String(rank),
              WORLD_SIZE: String(world),
              MASTER_ADDR: '127.0.0.1',
              MASTER_PORT: port,
              T3D_NUM_THREADS: '1',
            },
          });
          p.on('close', resolve);
        }),
    ),
  );
  if (codes.some((c) => c !== 0)) throw new Error(`a rank failed: exit codes ${codes.join(', ')}`);
} else {
  dist.init({ ...envGroupOptions()!, timeoutMs: 120_000 });
  const n = dist.worldSize;
  if (dist.rank === 0) console.log(`Gloo allReduce (sum, float32), ${n} processes on loopback, median of ${repeats}`);
  for (const mib of sizesMiB) {
    const t = torch.ones([Math.round((mib * 2 ** 20) / 4)]);
    for (let i = 0; i < 2; i++) dist.allReduce(t);
    const times: number[] = [];
    for (let i = 0; i < repeats; i++) {
      dist.barrier();
      const t0 = performance.now();
      dist.allReduce(t);
      times.push((performance.now() - t0) / 1000);
    }
    t.dispose();
    const s = times.sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
    const algbw = (mib * 2 ** 20) / s / 1e9;
    if (dist.rank === 0)
      console.log(
        `${String(mib).padStart(5)} MiB: ${(s * 1000).toFixed(2)} ms, algorithm bandwidth ${algbw.toFixed(2)} GB/s, bus bandwidth ${((algbw * (2 * (n - 1))) / n).toFixed(2)} GB/s`,
      );
  }
  gradientStep(Number(process.env.INPUT ?? 64));
  dist.destroy();
}

function gradientStep(side: number): void {
  torch.manualSeed(0);
  const model = new ResNet3d({ depth: 50, conv1Kernel: 7, conv1Stride: 2, numClasses: 2 });
  const params = model.parameters();
  const bytes = params.reduce((a, p) => a + p.numel * 4, 0);
  const reducer = dist.reducer([...params].reverse());
  const x = torch.randn([1, 1, side, side, side]).keep();
  const y = torch.tensor(new BigInt64Array([BigInt(dist.rank % 2)])).keep();
  const flat = () =>
    torch.noGrad(() =>
      torch.tidy(() => {
        const grads = params.map((p) => p.grad!);
        const buffer = torch.cat(grads.map((g) => g.reshape(-1)));
        dist.allReduce(buffer);
        let at = 0;
        for (const g of grads) {
          g.copy_(buffer.narrow(0, at, g.numel).reshape(...g.shape));
          at += g.numel;
        }
      }),
    );
  const bucketed = () => {
    const late = torch.tensor([reducer.wait() ? 1 : 0], [1]);
    dist.allReduce(late, 'max');
    reducer.writeBack(late.item() > 0);
    late.dispose();
  };
  const times: Record<string, { step: number[]; exposed: number[] }> = {
    flat: { step: [], exposed: [] },
    bucketed: { step: [], exposed: [] },
  };
  for (let i = 0; i < repeats + 1; i++) {
    for (const mode of ['flat', 'bucketed'] as const) {
      params.forEach((p) => p.zeroGrad());
      dist.barrier();
      const t0 = performance.now();
      if (mode === 'bucketed') reducer.arm();
      torch.tidy(() => F.crossEntropy(model.forward(x), y).backward());
      const t1 = performance.now();
      if (mode === 'flat') flat();
      else bucketed();
      const t2 = performance.now();
      if (i > 0) {
        times[mode]!.step.push((t2 - t0) / 1000);
        times[mode]!.exposed.push((t2 - t1) / 1000);
      }
    }
  }
  const med = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
  if (dist.rank === 0) {
    console.log(
      `\nResNet3D-50 gradient step, 1×1×${side}³ per rank, ${(bytes / 2 ** 20).toFixed(0)} MiB of gradients, ${reducer.buckets} buckets, median of ${repeats}:`,
    );
    for (const [mode, t] of Object.entries(times))
      console.log(
        `${mode.padStart(9)}: step ${med(t.step).toFixed(3)} s, exposed communication ${med(t.exposed).toFixed(3)} s`,
      );
    console.log(
      `time ratio bucketed/flat: step ${(med(times.bucketed!.step) / med(times.flat!.step)).toFixed(2)}, exposed ${(med(times.bucketed!.exposed) / med(times.flat!.exposed)).toFixed(2)}`,
    );
  }
  reducer.dispose();
  torch.dispose([x, y]);
}
