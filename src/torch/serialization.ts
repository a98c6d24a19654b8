// Saving and loading modules and optimizers as safetensors files (PyTorch-style dotted names).
import { loadSafetensors, saveSafetensors } from './safetensors.js';
import { type Module } from './nn/module.js';
import { type Optimizer, type OptimizerState } from './optim/optimizer.js';
import { dispose } from './scope.js';

/** Returns the written file's sha256 and size. */
export function saveModule(
  module: Module,
  path: string,
  metadata: Record<string, string> = {},
): { sha256: string; size: number } {
  return saveSafetensors(path, module.stateDict(), { format: 'pt', ...metadata });
}

/** Loads a module's weights; strict requires the key sets to match exactly. */
export function loadModule(module: Module, path: string, strict = true): { missing: string[]; unexpected: string[] } {
  const { tensors } = loadSafetensors(path);
  try {
    return module.loadStateDict(tensors, strict);
  } catch (err) {
    throw new Error(`${path}: ${(err as Error).message}`);
  } finally {
    dispose([...tensors.values()]);
  }
}

export function saveOptimizer(optimizer: Optimizer<object>, path: string): void {
  const state = optimizer.stateDict();
  saveSafetensors(path, state.tensors, { optimizer: JSON.stringify(state.meta) });
}

export function loadOptimizer(optimizer: Optimizer<object>, path: string): void {
  const { tensors, metadata } = loadSafetensors(path);
  try {
    if (!metadata.optimizer) throw new Error(`${path}: no optimizer metadata (was it written by saveOptimizer?)`);
    const meta = JSON.parse(metadata.optimizer) as OptimizerState['meta'];
    optimizer.loadStateDict({ tensors, meta });
  } finally {
    dispose([...tensors.values()]);
  }
}
