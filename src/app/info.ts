// `t3d info`: what engine this installation runs on.
import { availableParallelism } from 'node:os';
import { blasName, buildInfo, getNumThreads, hostMemory, loadedBlas } from '../torch/index.js';
import { parseOptions } from './args.js';

export function runInfo(args: string[]): void {
  const o = parseOptions(args, { boolean: ['json'] });
  const info = buildInfo();
  const facts = {
    libtorch: info.torchVersion,
    blas: blasName(info),
    blasLoaded: (({ kind, path }) => (path ? `${kind} (${path})` : kind))(loadedBlas()),
    onednn: info.mkldnn,
    openmp: info.openmp,
    threads: getNumThreads(),
    hostMemory,
    cores: availableParallelism(),
    cudaCompiled: info.cudaCompiled,
    cudaAvailable: info.cudaAvailable,
    cudaDevices: info.cudaDeviceCount,
    nativeAttention: info.sdpaNative,
    node: process.version,
  };
  if (o.json) {
    console.log(JSON.stringify({ ...facts, config: info.config }, null, 2));
    return;
  }
  for (const [k, v] of Object.entries(facts)) console.log(`${k.padEnd(16)} ${String(v)}`);
}
