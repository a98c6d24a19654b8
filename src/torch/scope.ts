// Lifetimes of native tensors: tidy scopes (tracked natively), keep, dispose, live counts.
import { native as N } from './native.js';
import { Tensor } from './tensor.js';

function collect(value: unknown, out: Tensor[], seen: Set<unknown>): void {
  if (value instanceof Tensor) {
    out.push(value);
    return;
  }
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if (Array.isArray(value)) {
    for (const v of value) collect(v, out, seen);
    return;
  }
  if (value instanceof Map) {
    for (const v of value.values()) collect(v, out, seen);
    return;
  }
  if (Object.getPrototypeOf(value) === Object.prototype) for (const v of Object.values(value)) collect(v, out, seen);
}

/**
 * Runs `fn` and frees every tensor created inside it, except tensors reachable from its return value
 * (arrays, Maps and plain objects are searched) and tensors marked with keep().
 */
export function tidy<T>(fn: () => T): T {
  N.scopeBegin();
  let result: T;
  try {
    result = fn();
  } catch (err) {
    N.scopeEnd([]);
    throw err;
  }
  if (result instanceof Promise) {
    N.scopeEnd([]);
    throw new Error('tidy(): fn must be synchronous; async work would outlive the scope');
  }
  const survivors: Tensor[] = [];
  collect(result, survivors, new Set());
  N.scopeEnd(survivors.map((t) => t.id));
  return result;
}

/** Marks tensors as long-lived: scopes never free them; dispose() does. */
export function keep<T extends Tensor>(t: T): T {
  return t.keep();
}

/** Disposes tensors found in any nesting of arrays / plain objects / Maps. */
export function dispose(value: unknown): void {
  const tensors: Tensor[] = [];
  collect(value, tensors, new Set());
  for (const t of tensors) t.dispose();
}

export interface MemoryInfo {
  /** live native tensor handles */
  numTensors: number;
  /** open tidy scopes */
  scopeDepth: number;
}
export function memory(): MemoryInfo {
  return { numTensors: N.liveCount() as number, scopeDepth: N.scopeDepth() as number };
}
