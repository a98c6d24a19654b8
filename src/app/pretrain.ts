// `t3d pretrain`: T3D pre-training from a config preset (+ overrides), on the synthetic set by default; with
// --nproc-per-node, this node's ranks of a data-parallel run.
import { fileURLToPath } from 'node:url';
import * as torch from '../torch/index.js';
import { applyOverrides, loadConfig, validateConfig } from '../train/config.js';
import { launchRanks, type Launch } from '../train/launch.js';
import { runPretraining } from '../train/run.js';
import { zeroShotValidation } from '../eval/validation.js';
import { UsageError, parseOptions, type Options } from './args.js';

const SPEC = {
  string: ['config', 'out', 'device', 'master-addr'],
  number: ['steps', 'nproc-per-node', 'nnodes', 'node-rank', 'master-port'],
  boolean: ['resume'],
  list: ['set'],
} as const;
type LaunchFlags = Options<typeof SPEC>;
const LAUNCH_FLAGS = ['--nproc-per-node', '--nnodes', '--node-rank', '--master-addr', '--master-port'];

/** The launcher's options, or undefined when this process is a rank (or the only process). */
function launchOptions(o: LaunchFlags): Launch | undefined {
  const int = (name: 'nproc-per-node' | 'nnodes' | 'node-rank', min: number, fallback: number) => {
    const v = o[name] ?? fallback;
    if (!(Number.isInteger(v) && v >= min))
      throw new UsageError(`pretrain: --${name} must be an integer ≥ ${min}, got ${v}`);
    return v;
  };
  const nproc = int('nproc-per-node', 1, 1);
  const nnodes = int('nnodes', 1, 1);
  const nodeRank = int('node-rank', 0, 0);
  if (nodeRank >= nnodes) throw new UsageError(`pretrain: --node-rank ${nodeRank} must be below --nnodes ${nnodes}`);
  const masterAddr = o['master-addr'] ?? process.env.MASTER_ADDR ?? '127.0.0.1';
  const envPort = process.env.MASTER_PORT !== undefined ? Number(process.env.MASTER_PORT) : undefined;
  const port = o['master-port'] ?? envPort ?? (nnodes > 1 ? 29500 : undefined);
  if (port !== undefined && !(Number.isInteger(port) && port >= 1 && port <= 65535)) {
    throw new UsageError(`pretrain: --master-port must be 1..65535, got ${port}`);
  }
  if (nnodes > 1 && o['master-addr'] === undefined && process.env.MASTER_ADDR === undefined)
    throw new UsageError('pretrain: --nnodes > 1 needs --master-addr, the address of node 0 that every node can reach');
  if ((nproc === 1 && nnodes === 1) || process.env.WORLD_SIZE !== undefined) return undefined;
  return { nproc, nnodes, nodeRank, masterAddr, masterPort: port };
}

export async function runPretrain(args: string[]): Promise<void> {
  const o = parseOptions(args, SPEC);
  const l = launchOptions(o);
  if (l) {
    const rest = args.filter(
      (a, i) => !LAUNCH_FLAGS.some((f) => a === f || args[i - 1] === f || a.startsWith(`${f}=`)),
    );
    return launchRanks([fileURLToPath(new URL('./cli.js', import.meta.url)), 'pretrain', ...rest], l);
  }
  let cfg = applyOverrides(loadConfig(o.config ?? 'cpu-96'), o.set ?? []);
  if (o.steps !== undefined) cfg = applyOverrides(cfg, [`optim.steps=${o.steps}`]);
  validateConfig(cfg);
  const blas = torch.loadedBlas();
  if (blas.kind === 'reference' && (o.device ?? 'cpu') === 'cpu') {
    console.error(
      `t3d: warning: libtorch runs on the reference BLAS (${blas.path}), 13-40x slower per matrix product ` +
        'than OpenBLAS; install it (apt-get install libopenblas0-pthread, or bash scripts/setup.sh as root)',
    );
  }
  await runPretraining({
    config: cfg,
    out: o.out,
    resume: o.resume,
    device: o.device,
    validation: (model, tokenizer, c) => zeroShotValidation(model, tokenizer, c, o.device ?? 'cpu'),
  });
}
