// Checkpoints (DESIGN §6): a folder per save — config.json, model.safetensors, tokenizer.json,
// optimizer.safetensors, trainer_state.json — written under a temporary name and renamed when complete,
// so a torn save is never mistaken for a checkpoint. The previous checkpoint is removed only afterwards.
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../torch/index.js';
import { nn, type Tensor } from '../torch/index.js';
import { type GradScalerState } from '../torch/optim.js';

export interface TrainerState {
  step: number;
  epoch: number;
  /** batches of `epoch` already consumed */
  batchInEpoch: number;
  consecutiveNonFinite: number;
  skippedSteps: number;
  /** config name and a fingerprint of the settings that must not change on resume */
  fingerprint: string;
  /** float16 mixed precision: the dynamic loss scale, restored on resume */
  gradScaler?: GradScalerState;
}

export interface CheckpointParts {
  config: unknown;
  model: nn.Module;
  optimizer: torch.optim.Optimizer<object>;
  /** extra tensors saved with the optimizer (RNG state, TMA queue) */
  extra: Map<string, Tensor>;
  tokenizerJson: Record<string, unknown>;
  state: TrainerState;
}

const NAME = /^step-(\d{8})$/;

export function checkpointName(step: number): string { return `step-${String(step).padStart(8, '0')}`; }

/** Writes <dir>/step-XXXXXXXX atomically and keeps only the newest `keep` complete checkpoints. */
export function saveCheckpoint(dir: string, p: CheckpointParts, keep = 2): string {
  mkdirSync(dir, { recursive: true });
  const final = join(dir, checkpointName(p.state.step));
  const tmp = `${final}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  writeFileSync(join(tmp, 'config.json'), JSON.stringify(p.config, null, 2) + '\n');
  torch.saveModule(p.model, join(tmp, 'model.safetensors'));
  const opt = p.optimizer.stateDict();
  const tensors = new Map([...opt.tensors, ...p.extra]);
  torch.saveSafetensors(join(tmp, 'optimizer.safetensors'), tensors, { optimizer: JSON.stringify(opt.meta) });
  writeFileSync(join(tmp, 'tokenizer.json'), JSON.stringify(p.tokenizerJson));
  writeFileSync(join(tmp, 'trainer_state.json'), JSON.stringify(p.state, null, 2) + '\n');
  rmSync(final, { recursive: true, force: true });
  renameSync(tmp, final);
  const complete = listCheckpoints(dir);
  for (const old of complete.slice(0, Math.max(0, complete.length - keep))) rmSync(join(dir, old), { recursive: true, force: true });
  return final;
}

/** Complete checkpoints, oldest first (temporary folders of torn saves are ignored). */
export function listCheckpoints(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((n) => NAME.test(n) && existsSync(join(dir, n, 'trainer_state.json'))).sort();
}

export function latestCheckpoint(dir: string): string | undefined {
  const all = listCheckpoints(dir);
  return all.length ? join(dir, all[all.length - 1]!) : undefined;
}

/** Loads weights, optimizer state and extra tensors into existing objects; returns the trainer state. */
export function loadCheckpoint(path: string, model: nn.Module, optimizer: torch.optim.Optimizer<object>): { state: TrainerState; extra: Map<string, Tensor> } {
  torch.loadModule(model, join(path, 'model.safetensors'));
  const { tensors, metadata } = torch.loadSafetensors(join(path, 'optimizer.safetensors'));
  const optTensors = new Map([...tensors].filter(([k]) => k.startsWith('state.')));
  const extra = new Map([...tensors].filter(([k]) => !k.startsWith('state.')));
  try {
    optimizer.loadStateDict({ tensors: optTensors, meta: JSON.parse(metadata.optimizer ?? 'null') });
  } finally {
    torch.dispose([...optTensors.values()]);
  }
  const state = JSON.parse(readFileSync(join(path, 'trainer_state.json'), 'utf8')) as TrainerState;
  return { state, extra };
}
