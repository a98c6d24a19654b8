// Process-wide engine settings and build facts.
import { readFileSync } from 'node:fs';
import { native as N } from './native.js';
import { type Tensor, wrap } from './tensor.js';
import { dtypeCode } from './dtype.js';

export const manualSeed = (seed: number): void => {
  N.manualSeed(seed);
};
export const setNumThreads = (n: number): void => {
  N.setNumThreads(n);
};
export const getNumThreads = (): number => N.getNumThreads() as number;

// PyTorch honours OMP_NUM_THREADS for its intra-op pool; libtorch loaded into Node does not read it itself.
const ompThreads = Number(process.env.OMP_NUM_THREADS);
if (Number.isInteger(ompThreads) && ompThreads > 0) setNumThreads(ompThreads);

/**
 * How this process's C library manages host memory: 'keep' (the default on glibc) keeps freed memory for reuse
 * instead of returning it to the kernel, so a training step's large tensors do not page-fault in anew every step
 * (the role jemalloc or tcmalloc play in PyTorch's CPU tuning guides); RSS then stays at the process's peak.
 * T3D_MALLOC=system leaves the C library's defaults; 'system' is also what other C libraries get.
 */
export const hostMemory: 'keep' | 'system' = (() => {
  const asked = process.env.T3D_MALLOC ?? 'keep';
  if (asked !== 'keep' && asked !== 'system') throw new Error(`T3D_MALLOC must be 'keep' or 'system' (got '${asked}')`);
  return asked === 'keep' && (N.keepHostMemory() as boolean) ? 'keep' : 'system';
})();

export type AutocastDtype = 'bfloat16' | 'float16';

/**
 * Runs fn with automatic mixed precision on the device type, like PyTorch's `torch.autocast`: matmuls and
 * convolutions run in `dtype`, ops on libtorch's float32 list (losses such as cross-entropy) in float32; the
 * lists are libtorch's own and differ between versions. Regions nest; the previous state is restored on
 * exit. libtorch 1.13 supports bfloat16 on CPU and both dtypes on CUDA.
 */
export function autocast<T>(deviceType: 'cpu' | 'cuda', dtype: AutocastDtype, fn: () => T): T {
  if (deviceType === 'cpu' && dtype === 'float16' && buildInfo().torchVersionMajor < 2) {
    throw new Error('autocast: float16 on CPU needs libtorch ≥ 2 (this build has bfloat16 only on CPU)');
  }
  const [wasOn, prev] = N.autocastGet(deviceType) as [boolean, number];
  N.autocastSet(deviceType, true, dtypeCode(dtype));
  N.autocastEnter();
  try {
    return fn();
  } finally {
    N.autocastExit();
    N.autocastSet(deviceType, wasOn, prev);
  }
}

export const isAutocastEnabled = (deviceType: 'cpu' | 'cuda'): boolean =>
  (N.autocastGet(deviceType) as [boolean, number])[0];

export const cuda = {
  isAvailable: (): boolean => N.cudaIsAvailable() as boolean,
  deviceCount: (): number => N.cudaDeviceCount() as number,
  synchronize: (): void => {
    N.cudaSynchronize();
  },
  /** bytes held by live tensors on a CUDA device (PyTorch's torch.cuda.memory_allocated); the build needs the
   * CUDA runtime headers, and throws without them */
  memoryAllocated: (device = 0): number => N.cudaMemoryAllocated(device, false) as number,
  /** the most bytes live tensors held on the device since the process started (torch.cuda.max_memory_allocated) */
  maxMemoryAllocated: (device = 0): number => N.cudaMemoryAllocated(device, true) as number,
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

export type BlasKind = 'openblas' | 'mkl' | 'blis' | 'reference' | 'unknown';

/**
 * The BLAS library this process actually loaded (Linux: from /proc/self/maps), which can differ from the one
 * libtorch was built against: Debian's libtorch links the generic libblas.so.3, which is the slow reference BLAS
 * unless OpenBLAS (or BLIS, MKL) is installed as its alternative.
 */
export function loadedBlas(): { kind: BlasKind; path?: string } {
  let maps: string;
  try {
    maps = readFileSync('/proc/self/maps', 'utf8');
  } catch {
    return { kind: 'unknown' };
  }
  const libs = [
    ...new Set(
      maps
        .split('\n')
        .map((l) => l.split(/\s+/)[5] ?? '')
        .filter((p) => /lib(open)?blas|mkl|blis/.test(p)),
    ),
  ];
  const find = (re: RegExp) => libs.find((p) => re.test(p));
  const path = find(/openblas/) ?? find(/mkl/) ?? find(/blis/) ?? find(/\/blas\/libblas\.so/);
  if (!path) return { kind: 'unknown' };
  return {
    kind: /openblas/.test(path) ? 'openblas' : /mkl/.test(path) ? 'mkl' : /blis/.test(path) ? 'blis' : 'reference',
    path,
  };
}

/** The default CPU generator's state (uint8 tensor), for exact resume. */
export const getDefaultGeneratorState = (): Tensor => wrap(N.generatorGetState(-1));
export const setDefaultGeneratorState = (state: Tensor): void => {
  N.generatorSetState(-1, state.id);
};
