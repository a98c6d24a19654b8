// `npm run bench:distributed`: Gloo allReduce between WORLD (default 2) local processes on loopback, the collective
// that averages gradients in data-parallel training: median time of REPEATS (default 10) sum-reductions of float32
// buffers from 256 KiB to 64 MiB, algorithm bandwidth (bytes / time) and ring bus bandwidth (× 2(n−1)/n, what each
// link carries). Run without RANK it launches the ranks itself, with torchrun's variables.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as torch from '../src/torch/index.js';
import { distributed as dist, envGroupOptions } from '../src/torch/index.js';

const sizesMiB = [0.25, 1, 4, 16, 64];
const repeats = Number(process.env.REPEATS ?? 10);

if (process.env.RANK === undefined) {
  const world = Number(process.env.WORLD ?? 2);
  const port = String(29_000 + Math.floor(Math.random() * 1000));
  const codes = await Promise.all(Array.from({ length: world }, (_, rank) => new Promise<number | null>((resolve) => {
    const p = spawn(process.execPath, [fileURLToPath(import.meta.url)], {
      stdio: rank === 0 ? 'inherit' : 'ignore',
      env: { ...process.env, RANK: String(rank), WORLD_SIZE: String(world), MASTER_ADDR: '127.0.0.1', MASTER_PORT: port, T3D_NUM_THREADS: '1' },
    });
    p.on('close', resolve);
  })));
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
    if (dist.rank === 0) console.log(`${String(mib).padStart(5)} MiB: ${(s * 1000).toFixed(2)} ms, algorithm bandwidth ${algbw.toFixed(2)} GB/s, bus bandwidth ${(algbw * (2 * (n - 1)) / n).toFixed(2)} GB/s`);
  }
  dist.destroy();
}
