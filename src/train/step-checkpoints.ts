// Resume from and save to <run>/checkpoints/step-XXXXXXXX (checkpoint.ts) for the step-based trainers:
// the settings check, the global RNG's state and the trainer's extra tensors, the same way for every trainer.
import * as torch from '../torch/index.js';
import { type nn, type optim, type Tensor } from '../torch/index.js';
import { type Settings, checkSettings, settingsHash } from './fingerprint.js';
import { freshLoopState } from './loop.js';
import { TRAINING_FILES, type TrainerState, loadCheckpoint, resolveCheckpoint, saveCheckpoint } from './checkpoint.js';

const RNG = 'rng.torch_cpu';

export interface StepCheckpointTarget {
  dir: string;
  model: nn.Module;
  optimizer: optim.Optimizer<object>;
  /** the settings a resumed run must keep (their hash is the state's fingerprint) */
  settings: Settings;
  log: (line: string) => void;
}

export interface Resumed {
  from: string;
  state: TrainerState;
  /** the trainer's extra tensors (the RNG's state already restored and left out); the caller disposes them */
  extra: Map<string, Tensor>;
}

export function freshTrainerState(settings: Settings): TrainerState {
  return { ...freshLoopState(), fingerprint: settingsHash(settings) };
}

/**
 * Loads the newest intact checkpoint of `t.dir` into the model and optimiser and restores the global RNG;
 * undefined when there is none. A checkpoint written with other settings is refused.
 */
export function resumeStepCheckpoint(t: StepCheckpointTarget): Resumed | undefined {
  const from = resolveCheckpoint(t.dir, { requires: TRAINING_FILES, log: t.log });
  if (!from) return undefined;
  const { state, extra } = loadCheckpoint(from, t.model, t.optimizer);
  try {
    const refusal = (d: string) => `${from}: written with other settings (${d}); use another --out`;
    checkSettings(state.fingerprint, t.settings, refusal);
  } catch (e) {
    torch.dispose([...extra.values()]);
    throw e;
  }
  const rng = extra.get(RNG);
  if (rng) {
    torch.setDefaultGeneratorState(rng);
    rng.dispose();
    extra.delete(RNG);
  }
  return { from, state, extra };
}

export interface StepCheckpointParts {
  config: unknown;
  tokenizerJson: Record<string, unknown>;
  keep: number;
  /** tensors saved beside the optimiser state besides the RNG's (a queue, a teacher) */
  extra?: () => Iterable<[string, Tensor]>;
}

/** Saves `state` with the model, optimiser and global RNG state; returns the checkpoint's path. */
export function saveStepCheckpoint(t: StepCheckpointTarget, p: StepCheckpointParts, state: TrainerState): string {
  const rng = torch.getDefaultGeneratorState();
  const extra = new Map<string, Tensor>([[RNG, rng], ...(p.extra?.() ?? [])]);
  try {
    const { config, tokenizerJson } = p;
    const parts = { config, model: t.model, optimizer: t.optimizer, extra, tokenizerJson, state };
    return saveCheckpoint(t.dir, parts, p.keep, t.log);
  } finally {
    rng.dispose();
  }
}
