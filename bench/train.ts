// `npm run bench:train`: training-step time of (1) the cpu-96 T3D step (ResNet3D-10 + 2-layer BERT, CLIP + TMA
// with 4 local views, clipping, AdamW; batch 8), (2) the multi-resolution cpu-mr T3D step (swapped TMA) and its
// CLIP-only counterpart, and (3) ResNet3D-50 (MONAI architecture) on 2×1×96³ with AdamW,
// each next to the same model and step in PyTorch-Python in the same run (when python3 with torch is importable);
// then the cpu-96 step under bfloat16 autocast. DEVICE=cuda runs every step on the GPU (model, data and optimizer
// state there, a device synchronisation ending each timed step, in the twins too); BATCH scales the T3D steps' batch;
// ONLY=<text> runs only the steps whose name contains it. PROFILE=<config> prints where that config's step spends
// its time instead (torch.profiler, op by op).
// The vision encoders run in the configs' memory format (channels-last by default; MEMORY_FORMAT=contiguous for
// the row-major layout); each twin runs three times: plain PyTorch eager, with channels_last_3d weights, and with
// those and glibc keeping freed memory as this process does (T3D_MALLOC=keep). Each step also counts its page faults.
// The trainer's own data-wait fraction and RSS are logged per run in metrics.jsonl (see BENCHMARKS.md).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../src/torch/index.js';
import { F, optim } from '../src/torch/index.js';
import { ResNet3d } from '../src/models/resnet3d.js';
import { DEFAULT_MEMORY_FORMAT, buildT3dModel } from '../src/train/factory.js';
import { loadConfig } from '../src/train/config.js';
import { globalShapeOf, resolvePreset } from '../src/data/presets.js';
import { t3dLoss } from '../src/objectives/t3d.js';
import { EmbeddingQueue } from '../src/objectives/tma/shared.js';
import { packageRoot } from '../src/util/paths.js';
import { minorFaultsOf, pythonTwin, timed } from './timing.js';

const reps = Number(process.env.BENCH_REPS ?? 5);
const threads = torch.getNumThreads();
const device = process.env.DEVICE ?? 'cpu';
const deviceType = device.startsWith('cuda') ? 'cuda' : 'cpu';
if (deviceType === 'cuda' && !torch.cuda.isAvailable())
  throw new Error(`DEVICE=${device}: this libtorch build has no usable CUDA`);
const batchOverride = process.env.BATCH ? Number(process.env.BATCH) : undefined;
const memoryFormat = process.env.MEMORY_FORMAT as torch.MemoryFormat | undefined;
if (memoryFormat && memoryFormat !== 'channels-last' && memoryFormat !== 'contiguous')
  throw new Error(`MEMORY_FORMAT must be 'channels-last' or 'contiguous' (got '${memoryFormat}')`);
/** the end of a timed step: CUDA kernels run asynchronously, so the clock stops only when they are done */
const sync = () => {
  if (deviceType === 'cuda') torch.cuda.synchronize();
};

/** One T3D training step of a pretrain config on random data (its global and local view shapes and TMA
 * formulation); `clipOnly` drops the local views and TMA, as the CLIP-only baseline does. */
function t3dStep(
  configName: string,
  o: { amp?: boolean; clipOnly?: boolean; profile?: boolean; batch?: number; warmup?: number; reps?: number } = {},
): { cfg: object; ts: number; faults: number; profile?: torch.ProfileRow[] } {
  const c = loadConfig(configName);
  const global = globalShapeOf(resolvePreset(c.data.preset));
  const local = c.data.views.localShape ?? (global.map((s) => Math.round(s / 2)) as [number, number, number]);
  const objective = o.clipOnly ? { ...c.objective, tma: { ...c.objective.tma, weight: 0 } } : c.objective;
  const formulation = c.objective.tma.formulation ?? 'fused';
  const cfg = {
    threads,
    batch: o.batch ?? batchOverride ?? c.data.batchSize,
    global,
    local,
    views: o.clipOnly ? 0 : (c.data.views.numLocal ?? 4),
    tokens: 160,
    vocab: 723,
    formulation,
    tma: !o.clipOnly,
    warmup: o.warmup ?? 2,
    reps: o.reps ?? reps,
    device,
    amp: o.amp ? 'bf16' : 'off',
  };
  torch.manualSeed(0);
  const vision =
    c.model.vision.kind === 'resnet3d' && memoryFormat ? { ...c.model.vision, memoryFormat } : c.model.vision;
  const model = buildT3dModel({ ...c.model, vision }, global, cfg.vocab).to({ device });
  model.train();
  const opt = new optim.AdamW(model.parameters(), {
    lr: c.optim.lr,
    betas: c.optim.betas,
    eps: c.optim.eps,
    weightDecay: c.optim.weightDecay,
  });
  const queue = new EmbeddingQueue(c.objective.tma.queue);
  const g = torch.randn([cfg.batch, 1, ...global], { device }).keep();
  const locals = Array.from({ length: cfg.views }, () => torch.randn([cfg.batch, 1, ...local], { device }).keep());
  const ids = torch.randint(1, cfg.vocab, [cfg.batch, cfg.tokens], { device }).keep();
  const mask = torch.onesLike(ids).keep();
  let calls = 0;
  const step = () => {
    if (o.profile && calls++ === cfg.warmup) torch.profiler.start();
    // step past the TMA warm-up, so the full objective runs
    const loss = () =>
      t3dLoss(
        model,
        { global: g, locals, inputIds: ids, attentionMask: mask },
        objective,
        c.objective.tma.warmupSteps,
        queue,
      ).total;
    torch.tidy(() => (o.amp ? torch.autocast(deviceType, 'bfloat16', loss) : loss()).backward());
    optim.clipGradNorm(model.parameters(), c.optim.clipNorm);
    opt.step();
    opt.zeroGrad();
    sync();
  };
  const ts = timed(step, cfg.warmup, cfg.reps);
  const profile = o.profile ? torch.profiler.stop() : undefined;
  const faults = minorFaultsOf(step);
  torch.dispose([g, ...locals, ids, mask]);
  opt.dispose();
  queue.dispose();
  return { cfg, ts, faults, profile };
}

function resnet50(batch = 2): { cfg: object; ts: number; faults: number } {
  const cfg = { threads, input: [batch, 1, 96, 96, 96], warmup: 1, reps: Math.min(reps, 3), device };
  torch.manualSeed(0);
  const model = new ResNet3d({ depth: 50, conv1Kernel: 7, conv1Stride: 2, numClasses: 2 }).to({
    device,
    memoryFormat: memoryFormat ?? DEFAULT_MEMORY_FORMAT,
  });
  const opt = new optim.AdamW(model.parameters(), { lr: 1e-4 });
  const x = torch.randn(cfg.input, { device }).keep();
  const y = torch
    .tensor(
      BigInt64Array.from({ length: batch }, (_, i) => BigInt(i % 2)),
      [batch],
      { device },
    )
    .keep();
  const step = () => {
    torch.tidy(() => F.crossEntropy(model.forward(x), y).backward());
    opt.step();
    opt.zeroGrad();
    sync();
  };
  const ts = timed(step, cfg.warmup, cfg.reps);
  const faults = minorFaultsOf(step);
  torch.dispose([x, y]);
  opt.dispose();
  return { cfg, ts, faults };
}

// PROFILE=<config> (e.g. cpu-96, demo): only the per-op profile of that config's T3D step, then exit
if (process.env.PROFILE) {
  const { ts, profile } = t3dStep(process.env.PROFILE, { profile: true });
  console.log(
    `${process.env.PROFILE} T3D step: ${ts.toFixed(3)} s (median of ${reps}), ${threads} threads; per step:\n${torch.profiler.table(profile!, { top: 20, per: reps })}`,
  );
  process.exit(0);
}
// MEMORY=<config> [BATCH=2] [AMP=bf16]: peak RSS (on CUDA: peak GPU memory) of a training step of that config's full
// model (e.g. t3d-224: ResNet3D-50 on 96×224×224 global + 4 local views, BERT-base), then exit. One step on the CPU;
// on CUDA the median of 3 after a warm-up.
if (process.env.MEMORY) {
  const batch = Number(process.env.BATCH ?? 2);
  const amp = process.env.AMP === 'bf16';
  const before = process.resourceUsage().maxRSS / 2 ** 20;
  const { ts } = t3dStep(process.env.MEMORY, {
    batch,
    amp,
    ...(deviceType === 'cuda' ? { warmup: 1, reps: 3 } : { warmup: 0, reps: 1 }),
  });
  const peak =
    deviceType === 'cuda'
      ? `peak GPU memory ${(torch.cuda.maxMemoryAllocated() / 2 ** 30).toFixed(2)} GiB`
      : `peak RSS ${(process.resourceUsage().maxRSS / 2 ** 20).toFixed(2)} GiB (${before.toFixed(2)} GiB before the model)`;
  console.log(
    `${process.env.MEMORY} T3D step${amp ? ' (bf16 autocast)' : ''} at batch ${batch} on ${device}: ${ts.toFixed(3)} s = ${(batch / ts).toFixed(1)} volumes/s, ${threads} threads; ${peak}`,
  );
  process.exit(0);
}
/** a step's median time and the minor page faults of one more step */
interface StepTime {
  stepS: number;
  minorFaults: number;
}
/** the PyTorch twin's variants: plain eager; vision weights in channels_last_3d; that and freed memory kept for
 * reuse by the C library, as the TypeScript side does by default (T3D_MALLOC=keep) */
const twinVariants = {
  eager: {},
  channelsLast: { channels_last: true },
  channelsLastKeep: { channels_last: true, keep_host_memory: true },
};
const results: Record<
  string,
  { typescript: StepTime; python: Partial<Record<keyof typeof twinVariants, StepTime>>; volumesPerS: number }
> = {};
const b = batchOverride ?? 8;
const only = process.env.ONLY; // run only the steps whose name contains this, e.g. ONLY=ResNet3D-50
const r50Batch = deviceType === 'cuda' ? 8 : 2;
for (const [name, run, script, volumes] of [
  [`t3d-cpu-96 (batch ${b}, 4 local views)`, () => t3dStep('cpu-96'), 't3d_step_bench.py', b],
  [
    `t3d-cpu-mr (batch ${b}, 64×96×96 global + 4 × 48³ native-resolution local views, swapped TMA)`,
    () => t3dStep('cpu-mr'),
    't3d_step_bench.py',
    b,
  ],
  [
    `clip-only-cpu-mr (batch ${b}, global view only)`,
    () => t3dStep('cpu-mr', { clipOnly: true }),
    't3d_step_bench.py',
    b,
  ],
  [`ResNet3D-50 ${r50Batch}×1×96³`, () => resnet50(r50Batch), 'train_bench.py', r50Batch],
  // bfloat16 autocast of the cpu-96 step (PyTorch 1.13's CPU autocast cannot run its twin: its layer norm rejects
  // bfloat16 inputs with float32 weights)
  [`t3d-cpu-96 bf16 autocast (batch ${b})`, () => t3dStep('cpu-96', { amp: true }), 't3d_step_bench.py', b],
] as const) {
  if (only && !name.includes(only)) continue;
  const rss0 = process.memoryUsage().rss;
  const { cfg, ts, faults } = run();
  const python: Partial<Record<keyof typeof twinVariants, StepTime>> = {};
  for (const [variant, flags] of Object.entries(twinVariants) as [keyof typeof twinVariants, object][]) {
    try {
      const r = pythonTwin<{ step_s: number; minor_faults: number }>(script, [JSON.stringify({ ...cfg, ...flags })]);
      if (r) python[variant] = { stepS: r.step_s, minorFaults: r.minor_faults };
    } catch (e) {
      console.log(`${name}: the PyTorch-Python twin (${variant}) failed (${(e as Error).message.split('\n')[0]})`);
    }
  }
  results[name] = { typescript: { stepS: ts, minorFaults: faults }, python, volumesPerS: volumes / ts };
  const vs = (label: string, p?: StepTime) =>
    p
      ? `; PyTorch ${label} ${p.stepS.toFixed(4)} s (time ratio ${(ts / p.stepS).toFixed(2)}, ${p.minorFaults} page faults)`
      : '';
  console.log(
    `${name} training step on ${device}: TypeScript ${ts.toFixed(4)} s (${(volumes / ts).toFixed(2)} volumes/s, ${faults} page faults per step)` +
      (Object.keys(python).length
        ? vs('eager', python.eager) +
          vs('channels_last_3d', python.channelsLast) +
          vs('channels_last_3d + kept host memory', python.channelsLastKeep)
        : '; no python twin') +
      `; RSS growth ${((process.memoryUsage().rss - rss0) / 1e6).toFixed(0)} MB; threads ${threads}`,
  );
}
const fp32 = results[`t3d-cpu-96 (batch ${b}, 4 local views)`],
  bf16 = results[`t3d-cpu-96 bf16 autocast (batch ${b})`];
if (fp32 && bf16)
  console.log(`t3d-cpu-96 time ratio bf16/float32 ${(bf16.typescript.stepS / fp32.typescript.stepS).toFixed(2)}`);
const outDir = join(packageRoot(), 'runs', 'bench');
mkdirSync(outDir, { recursive: true });
writeFileSync(
  join(outDir, `train${deviceType === 'cuda' ? '-cuda' : ''}.json`),
  JSON.stringify({ date: new Date().toISOString(), threads, device, results }, null, 2),
);
