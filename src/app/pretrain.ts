// `t3d pretrain`: T3D pre-training from a config preset (+ overrides), on the synthetic set by default; with
// --nproc-per-node, this node's ranks of a data-parallel run.
import { fileURLToPath } from 'node:url';
import * as torch from '../torch/index.js';
import { applyOverrides, loadConfig, validateConfig } from '../train/config.js';
import { launchPlan, launchRanks, type Launch } from '../train/launch.js';
import { runPretraining } from '../train/run.js';
import { zeroShotValidation } from '../eval/validation.js';
import { UsageError, parseOptions } from './args.js';

const SPEC = {
  string: ['config', 'out', 'device', 'master-addr'],
  number: ['steps', 'nproc-per-node', 'nnodes', 'node-rank', 'master-port'],
  boolean: ['resume'],
  list: ['set'],
} as const;
const LAUNCH_FLAGS = ['--nproc-per-node', '--nnodes', '--node-rank', '--master-addr', '--master-port'];

export async function runPretrain(args: string[]): Promise<void> {
  const o = parseOptions(args, SPEC);
  let l: Launch | undefined;
  try {
    const { 'nproc-per-node': nproc, nnodes, 'node-rank': nodeRank, 'master-addr': masterAddr } = o;
    l = launchPlan({ nproc, nnodes, nodeRank, masterAddr, masterPort: o['master-port'] });
  } catch (e) {
    throw new UsageError(`pretrain: ${(e as Error).message}`);
  }
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
