// Process-wide engine settings and build facts.
import { native as N } from './native.js';
import { type Tensor, wrap } from './tensor.js';

export const manualSeed = (seed: number): void => { N.manualSeed(seed); };
export const setNumThreads = (n: number): void => { N.setNumThreads(n); };
export const getNumThreads = (): number => N.getNumThreads() as number;

export const cuda = {
  isAvailable: (): boolean => N.cudaIsAvailable() as boolean,
  deviceCount: (): number => N.cudaDeviceCount() as number,
  synchronize: (): void => { N.cudaSynchronize(); },
};

export interface BuildInfo {
  torchVersion: string;
  torchVersionMajor: number;
  torchVersionMinor: number;
  /** at::show_config(): compiler, BLAS, oneDNN, CUDA flags of the libtorch build */
  config: string;
  parallel: string;
  mkldnn: boolean;
  openmp: boolean;
  mkl: boolean;
  lapack: boolean;
  cudaCompiled: boolean;
  cudaAvailable: boolean;
  cudaDeviceCount: number;
  sdpaNative: boolean;
}
export const buildInfo = (): BuildInfo => N.buildInfo() as BuildInfo;

/** The BLAS libtorch was built against, read from its build configuration. */
export function blasName(info = buildInfo()): string {
  const m = /BLAS_INFO=([^,\s]+)/.exec(info.config);
  return m ? m[1]! : info.mkl ? 'mkl' : 'unknown';
}

/** The default CPU generator's state (uint8 tensor), for exact resume. */
export const getDefaultGeneratorState = (): Tensor => wrap(N.generatorGetState(-1));
export const setDefaultGeneratorState = (state: Tensor): void => { N.generatorSetState(-1, state.id); };
