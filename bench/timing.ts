// Shared by the benchmarks: the timing protocol (warm-up, then the median of repeats) and running a
// PyTorch-Python twin script when a python3 that imports the needed modules exists.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { packageRoot } from '../src/util/paths.js';

/** Median seconds of `reps` calls after `warmup` untimed ones. */
export function timed(fn: () => void, warmup: number, reps: number): number {
  for (let i = 0; i < warmup; i++) fn();
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    fn();
    ts.push((performance.now() - t0) / 1000);
  }
  ts.sort((a, b) => a - b);
  const mid = ts.length >> 1;
  return ts.length % 2 ? ts[mid]! : (ts[mid - 1]! + ts[mid]!) / 2;
}

/** Minor page faults of the process (every thread) during one call of fn. */
export function minorFaultsOf(fn: () => void): number {
  const f0 = process.resourceUsage().minorPageFault;
  fn();
  return process.resourceUsage().minorPageFault - f0;
}

/** Runs bench/<script> with args on the first python3 (T3D_PYTHON, python3, /usr/bin/python3) that imports
 * `modules`; returns the last stdout line parsed as JSON, or undefined when no such python exists. */
export function pythonTwin<T>(script: string, args: string[], modules = 'torch'): T | undefined {
  for (const exe of [process.env.T3D_PYTHON, 'python3', '/usr/bin/python3'].filter((p): p is string => !!p)) {
    try {
      execFileSync(exe, ['-c', `import ${modules}`], { stdio: 'ignore' });
    } catch {
      continue;
    }
    const out = execFileSync(exe, [join(packageRoot(), 'bench', script), ...args], { encoding: 'utf8' });
    return JSON.parse(out.trim().split('\n').pop()!) as T;
  }
  return undefined;
}
