// `npm run bench:imported`: per-scan latency (one volume, batch 1, eval mode, no autograd; warm-up, then the median
// of repeats) and peak memory (the process's RSS high-water mark) of each imported image encoder at its released
// size with random weights, built as its import builds it, next to the same encoder in PyTorch-Python (the
// reference implementations of the parity-fixture scripts, bench/imported_encoders_bench.py). Every measurement
// runs in a fresh process, so that each peak is one encoder's; TypeScript and Python alternate, round after round,
// at each intra-op thread count.
// Environment: BENCH_REPS (1), BENCH_WARMUP (1), BENCH_ROUNDS (2), BENCH_THREADS ('1,2'), BENCH_MODELS
// ('m3d-clip,merlin'; 'colipri' too), MERLIN_SHAPE ('112,112,80': X,Y,Z; the released 224,224,160 takes minutes per
// scan on 2 cores), COLIPRI_SHAPE ('96,96,96'; the released 192³ is 13,824 tokens), COLIPRI_DEPTH (16, Primus-M's:
// fewer blocks measure the 192³ attention's memory in seconds, which one block sets). PyTorch-Python's reference
// holds every attention score at once, 12·N² floats (9.2 GB per copy at 192³): it is skipped above 4,096 tokens.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as torch from '../src/torch/index.js';
import { type Tensor } from '../src/torch/index.js';
import { m3dClip } from '../src/train/formats/m3d-clip.js';
import { MERLIN_RESNET152, MerlinImageEncoder } from '../src/models/merlin.js';
import { ColipriVisionEncoder } from '../src/models/primus.js';
import { packageRoot } from '../src/util/paths.js';
import { pythonTwin, timed } from './timing.js';

interface Job {
  model: 'm3d-clip' | 'merlin' | 'colipri';
  shape: number[];
  /** COLIPRI's Primus blocks */
  depth: number;
  threads: number;
  warmup: number;
  reps: number;
}
interface Measured {
  s: number;
  baseline_mb: number;
  peak_mb: number;
  finite: boolean;
}

/** M3D-CLIP's released config.json, as its format reads it (only the vision tower is built). */
const M3D_RELEASED = {
  vision: { inChannels: 1, imageSize: [32, 256, 256], patchSize: [4, 16, 16], hiddenSize: 768, mlpDim: 3072 },
  visionDepth: 12,
  visionHeads: 12,
};

function encoderOf(job: Job): (x: Tensor) => Tensor {
  if (job.model === 'm3d-clip') {
    const vit = m3dClip.visionEncoder(M3D_RELEASED).eval();
    return (x) => vit.encode(x).pooled;
  }
  if (job.model === 'colipri') {
    // what `t3d import colipri` builds for the released weights (Primus-M, 768-d projector and pool)
    const [D, H, W] = job.shape as [number, number, number];
    const encoder = new ColipriVisionEncoder({
      inputSize: [D, H, W],
      patch: 8,
      embedDim: 864,
      depth: job.depth,
      heads: 12,
      mlpHidden: Math.trunc((864 * 4 * 2) / 3),
      outDim: 768,
      poolHeads: 12,
    }).eval();
    return (x) => encoder.encode(x).pooled;
  }
  // what loadMerlinImageEncoder builds for the released checkpoint's shapes
  const merlin = new MerlinImageEncoder(MERLIN_RESNET152).eval();
  return (x) => merlin.forward(x).embedding;
}

/** One job in this process: prints the Measured line. */
function child(job: Job): void {
  torch.setNumThreads(job.threads);
  torch.manualSeed(0);
  const baselineMb = process.memoryUsage().rss / 2 ** 20;
  const encode = encoderOf(job);
  const x = torch.rand([1, 1, ...job.shape]).keep();
  let finite = true;
  const s = timed(
    () =>
      torch.noGrad(() =>
        torch.tidy(() => {
          const y = encode(x);
          finite = y.isfinite().all().item() === 1;
        }),
      ),
    job.warmup,
    job.reps,
  );
  const peakMb = process.resourceUsage().maxRSS / 1024;
  console.log(JSON.stringify({ s, baseline_mb: baselineMb, peak_mb: peakMb, finite } satisfies Measured));
}

function runTs(job: Job): Measured {
  const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), 'child', JSON.stringify(job)], {
    encoding: 'utf8',
    env: { ...process.env, T3D_NUM_THREADS: String(job.threads) },
  });
  return JSON.parse(out.trim().split('\n').pop()!) as Measured;
}

const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** Per encoder and thread count, over the rounds: the median seconds per scan and the highest peak RSS. */
function summarize(rows: (Job & { ts: Measured; python?: Measured })[]): void {
  for (const key of new Set(rows.map((r) => `${r.model} ${r.shape.join('×')}, ${r.threads} thread(s)`))) {
    const of = rows.filter((r) => `${r.model} ${r.shape.join('×')}, ${r.threads} thread(s)` === key);
    const ts = { s: median(of.map((r) => r.ts.s)), mb: Math.max(...of.map((r) => r.ts.peak_mb)) };
    const py = of.every((r) => r.python) ? of.map((r) => r.python!) : undefined;
    const pyS = py && median(py.map((p) => p.s));
    const pyMb = py && Math.max(...py.map((p) => p.peak_mb));
    console.log(
      `${key}, over ${of.length} round(s): TypeScript ${ts.s.toFixed(2)} s/scan, peak ${ts.mb.toFixed(0)} MB` +
        (pyS && pyMb
          ? `; PyTorch-Python ${pyS.toFixed(2)} s/scan, peak ${pyMb.toFixed(0)} MB; ratios TS/Py: time ` +
            `${(ts.s / pyS).toFixed(2)}, peak RSS ${(ts.mb / pyMb).toFixed(2)}`
          : ''),
    );
  }
}

function driver(): void {
  const env = process.env;
  const ints = (s: string) => s.split(',').map(Number);
  const shapes: Record<Job['model'], number[]> = {
    'm3d-clip': M3D_RELEASED.vision.imageSize,
    merlin: ints(env.MERLIN_SHAPE ?? '112,112,80'),
    colipri: ints(env.COLIPRI_SHAPE ?? '96,96,96'),
  };
  const models = (env.BENCH_MODELS ?? 'm3d-clip,merlin').split(',') as Job['model'][];
  for (const m of models) if (!shapes[m]) throw new Error(`BENCH_MODELS: unknown encoder '${m}'`);
  const rounds = Number(env.BENCH_ROUNDS ?? 2);
  const load = () =>
    loadavg()
      .map((l) => l.toFixed(2))
      .join(' ');
  const loadBefore = load();
  console.log(`load average (1, 5, 15 min) at the start: ${loadBefore}`);
  const rows: (Job & { round: number; ts: Measured; python?: Measured })[] = [];
  const mb = (v: number) => `${v.toFixed(0)} MB`;
  for (let round = 1; round <= rounds; round++)
    for (const model of models)
      for (const threads of ints(env.BENCH_THREADS ?? '1,2')) {
        const job: Job = {
          model,
          shape: shapes[model],
          threads,
          warmup: Number(env.BENCH_WARMUP ?? 1),
          reps: Number(env.BENCH_REPS ?? 1),
          depth: Number(env.COLIPRI_DEPTH ?? 16),
        };
        const ts = runTs(job);
        const tokens = job.shape.reduce((a, b) => a * b, 1) / 8 ** 3;
        const python =
          model === 'colipri' && tokens > 4096
            ? undefined
            : pythonTwin<Measured>('imported_encoders_bench.py', [JSON.stringify(job)]);
        rows.push({ ...job, round, ts, python });
        console.log(
          `round ${round}, ${model} ${job.shape.join('×')}, ${threads} thread(s): TypeScript ${ts.s.toFixed(2)} s/scan, ` +
            `peak RSS ${mb(ts.peak_mb)} (${mb(ts.baseline_mb)} before the model)` +
            (python
              ? `; PyTorch-Python ${python.s.toFixed(2)} s/scan, peak RSS ${mb(python.peak_mb)} ` +
                `(${mb(python.baseline_mb)} before); ratios TS/Py: time ${(ts.s / python.s).toFixed(2)}, ` +
                `peak RSS ${(ts.peak_mb / python.peak_mb).toFixed(2)}`
              : '; no PyTorch-Python run (no python with torch, or too many tokens for its reference)') +
            (ts.finite && (python?.finite ?? true) ? '' : ' (non-finite output)'),
        );
      }
  summarize(rows);
  const loadAfter = load();
  console.log(`load average at the end: ${loadAfter}`);
  const outDir = join(packageRoot(), 'runs', 'bench');
  mkdirSync(outDir, { recursive: true });
  writeFileSync(
    join(outDir, 'imported-encoders.json'),
    JSON.stringify({ date: new Date().toISOString(), loadBefore, loadAfter, rows }, null, 2),
  );
}

if (process.argv[2] === 'child') child(JSON.parse(process.argv[3]!) as Job);
else driver();
