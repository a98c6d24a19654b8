// Loads the libtorch addon once and applies process-wide defaults (intra-op threads).
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import { packageRoot } from '../util/paths.js';

/** Raw addon functions: handles are numbers; the typed surface is Tensor and the functional modules. */
export type NativeFn = (...args: unknown[]) => unknown;
export type NativeBinding = Record<string, NativeFn>;

function load(): NativeBinding {
  const path = resolve(packageRoot(), 'build', 'Release', 't3d_native.node');
  if (!existsSync(path)) {
    throw new Error(
      `t3d: native engine not built (${path} missing). Run \`bash scripts/setup.sh\` or \`npm run build:native\`.`,
    );
  }
  const binding = createRequire(import.meta.url)(path) as NativeBinding;
  // Debian's libtorch starts with one intra-op thread inside Node; use every core unless told otherwise.
  const requested = Number(process.env.T3D_NUM_THREADS ?? '');
  binding.setNumThreads!(Number.isInteger(requested) && requested > 0 ? requested : availableParallelism());
  return binding;
}

export const native: NativeBinding = load();

/** Calls a native op by name; the name is checked once so a typo fails loudly. */
export function op(name: string): NativeFn {
  const fn = native[name];
  if (typeof fn !== 'function') throw new Error(`t3d: native op '${name}' is not available in this build`);
  return fn;
}
