// `npm run bench`: engine throughput and overhead, each next to PyTorch-Python in the same run when a
// python3 with torch is importable (Debian python3-torch uses the same libtorch). Writes runs/bench/engine.json.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../src/torch/index.js';
import { F, optim } from '../src/torch/index.js';
import { SmallResNet3d, SmallViT3d } from './models.js';
import { packageRoot } from '../src/util/paths.js';
import { pythonTwin, timed } from './timing.js';

const cfg = {
  threads: torch.getNumThreads(),
  reps: Number(process.env.BENCH_REPS ?? 20),
  matmul_n: 1024,
  conv: { input: [2, 16, 32, 32, 32], weight: [32, 16, 3, 3, 3] },
  op_iters: 20000,
  resnet_input: [2, 1, 32, 32, 32],
  vit_input: [2, 1, 32, 32, 32],
};

function trainStepTime(model: SmallResNet3d | SmallViT3d, shape: number[]): number {
  const opt = new optim.AdamW(model.parameters(), { lr: 1e-3 });
  const x = torch.randn(shape).keep();
  const y = torch.randint(0, 10, [shape[0]!]).keep();
  return timed(
    () => {
      torch.tidy(() => F.crossEntropy(model.forward(x), y).backward());
      opt.step();
      opt.zeroGrad();
    },
    3,
    cfg.reps,
  );
}

function runTs(): Record<string, number> {
  torch.manualSeed(0);
  const out: Record<string, number> = {};
  const n = cfg.matmul_n;
  const a = torch.randn([n, n]).keep(),
    b = torch.randn([n, n]).keep();
  out.matmul_s = timed(() => a.matmul(b).dispose(), 2, cfg.reps);
  const x = torch.randn(cfg.conv.input).keep().requiresGrad_();
  const w = torch.randn(cfg.conv.weight).keep().requiresGrad_();
  out.conv3d_s = timed(
    () => {
      torch.tidy(() => F.conv3d(x, w, undefined, { padding: 1 }).sum().backward());
      x.zeroGrad();
      w.zeroGrad();
    },
    2,
    cfg.reps,
  );
  const s = torch.ones([4, 4]).keep();
  out.op_s =
    timed(
      () => {
        for (let i = 0; i < cfg.op_iters; i++) s.add(s).dispose();
      },
      1,
      5,
    ) / cfg.op_iters;
  out.resnet_step_s = trainStepTime(new SmallResNet3d(), cfg.resnet_input);
  out.vit_step_s = trainStepTime(new SmallViT3d(), cfg.vit_input);
  return out;
}

const convFlops = (() => {
  const [bn, , d, h, wd] = cfg.conv.input as [number, number, number, number, number];
  const [co, ci, k] = cfg.conv.weight as [number, number, number];
  return 2 * bn * co * d * h * wd * ci * k * k * k * 3; // forward + grad input + grad weight
})();
const matmulFlops = 2 * cfg.matmul_n ** 3;

const info = torch.buildInfo();
console.log(
  `engine bench: libtorch ${info.torchVersion}, ${cfg.threads} threads, BLAS ${torch.blasName(info)}, OPENBLAS_CORETYPE=${process.env.OPENBLAS_CORETYPE ?? '(unset)'}`,
);
const ts = runTs();
const py = pythonTwin<Record<string, number>>('engine_bench.py', [JSON.stringify(cfg)]);
const rows: [string, string, (v: number) => number, string][] = [
  ['matmul 1024³', 'matmul_s', (v) => matmulFlops / v / 1e9, 'GFLOP/s'],
  ['conv3d fwd+bwd, 2×16×32³ → 32, k3', 'conv3d_s', (v) => convFlops / v / 1e9, 'GFLOP/s'],
  ['per-op overhead (4×4 add)', 'op_s', (v) => v * 1e6, 'µs'],
  ['train step SmallResNet3d 2×1×32³', 'resnet_step_s', (v) => v * 1e3, 'ms'],
  ['train step SmallViT3d 2×1×32³', 'vit_step_s', (v) => v * 1e3, 'ms'],
];
const table = rows.map(([label, key, conv, unit]) => ({
  metric: label,
  unit,
  ts: conv(ts[key]!),
  python: py ? conv(py[key]!) : undefined,
  /** time ratio TS/Python: < 1 means TypeScript is faster */
  ratio: py ? ts[key]! / py[key]! : undefined,
}));
console.log(`${'metric'.padEnd(36)} ${'TypeScript'.padStart(12)} ${'Python'.padStart(12)}  time ratio TS/Py`);
for (const r of table) {
  const f = (v: number | undefined) => (v === undefined ? '—' : v.toFixed(v < 10 ? 2 : 1)).padStart(12);
  console.log(
    `${r.metric.padEnd(36)} ${f(r.ts)} ${f(r.python)}  ${r.ratio === undefined ? 'no python torch' : r.ratio.toFixed(2)}   (${r.unit})`,
  );
}
const outDir = join(packageRoot(), 'runs', 'bench');
mkdirSync(outDir, { recursive: true });
writeFileSync(
  join(outDir, 'engine.json'),
  JSON.stringify(
    { date: new Date().toISOString(), config: cfg, libtorch: info.torchVersion, rows: table, raw: { ts, python: py } },
    null,
    2,
  ),
);
console.log(`saved ${join('runs', 'bench', 'engine.json')}`);
