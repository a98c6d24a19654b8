// The working folder of a transfer run (transfer.ts): per-epoch state (weights, optimizer, RNG, JSON) in sealed
// epoch-NNNN folders and the best weights beside them, so a rerun with the same settings resumes exactly.
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../../torch/index.js';
import { type nn, type optim, type Tensor } from '../../torch/index.js';
import { latestEpochDir, readEpochState, saveEpochDir } from '../../train/epoch-checkpoint.js';
import { settingsDiff } from '../../train/fingerprint.js';
import { hashFile } from '../../util/files.js';

export const STATE_FORMAT = 't3d-transfer-state/1';

export interface RunState {
  format: typeof STATE_FORMAT;
  fingerprint: Record<string, unknown>;
  epochsDone: number;
  bestEpoch: number;
  bestAuroc: number;
  /** sha256 of the best weights' file, which lives beside the sealed epoch folders */
  bestSha256?: string;
  trainLoss: number[];
  valAuroc: number[];
  epochSeconds: number[];
  stopped: boolean;
}

/** The run folder: per-epoch state (weights, optimizer, RNG, JSON) and the best weights, each written atomically. */
export class RunDir {
  constructor(
    readonly dir: string | undefined,
    readonly fingerprint: Record<string, unknown>,
  ) {
    if (dir) mkdirSync(dir, { recursive: true });
  }

  /** the last finished epoch, verified once: nothing is saved between check() and resume() */
  private found?: { at: string; state: RunState } | null;

  /** The last finished epoch's state; throws when the folder holds a run with other settings. */
  check(): RunState | undefined {
    if (this.found !== undefined) return this.found?.state;
    const at = latestEpochDir(this.dir);
    this.found = null;
    if (!at) return undefined;
    const state = readEpochState<RunState>(at);
    const diff = state.format === STATE_FORMAT ? settingsDiff(state.fingerprint, this.fingerprint) : 'format';
    if (diff !== undefined) {
      const hint = 'use another outDir or delete it';
      throw new Error(`${this.dir}: holds a transfer run with other settings (${diff}); ${hint}`);
    }
    this.found = { at, state };
    return state;
  }

  /** Loads the last finished epoch into model, optimizer, RNG and best weights; its state (undefined: a fresh run). */
  resume(model: nn.Module, opt: optim.Optimizer<object>, best: Map<string, Tensor>): RunState | undefined {
    const state = this.check();
    if (!state) return undefined;
    const at = this.found!.at;
    torch.loadModule(model, join(at, 'weights.safetensors'));
    const { tensors, metadata } = torch.loadSafetensors(join(at, 'optimizer.safetensors'));
    try {
      const optTensors = new Map([...tensors].filter(([k]) => k.startsWith('state.')));
      opt.loadStateDict({ tensors: optTensors, meta: JSON.parse(metadata.optimizer!) });
      const rng = tensors.get('rng.default');
      if (rng) torch.setDefaultGeneratorState(rng);
    } finally {
      torch.dispose([...tensors.values()]);
    }
    const bestFile = join(this.dir!, bestName(state.bestEpoch));
    if (state.bestSha256 && hashFile(bestFile).sha256 !== state.bestSha256) {
      const why = `does not match the sha256 recorded in ${at}/state.json (corrupted)`;
      throw new Error(`${bestFile}: ${why}; delete ${this.dir} to recompute`);
    }
    const saved = torch.loadSafetensors(bestFile).tensors;
    try {
      torch.noGrad(() => {
        for (const [k, t] of best) t.copy_(saved.get(k)!);
      });
    } finally {
      torch.dispose([...saved.values()]);
    }
    return state;
  }

  save(model: nn.Module, opt: optim.Optimizer<object>, best: Map<string, Tensor>, state: RunState, improved: boolean) {
    if (!this.dir) return;
    if (improved) state.bestSha256 = torch.saveSafetensors(join(this.dir, bestName(state.bestEpoch)), best).sha256;
    saveEpochDir(this.dir, state.epochsDone, state, (tmp) => {
      torch.saveModule(model, join(tmp, 'weights.safetensors'));
      const s = opt.stateDict();
      const rng = torch.getDefaultGeneratorState();
      try {
        const meta = { optimizer: JSON.stringify(s.meta) };
        torch.saveSafetensors(join(tmp, 'optimizer.safetensors'), new Map([...s.tensors, ['rng.default', rng]]), meta);
      } finally {
        rng.dispose();
      }
    });
    const keepBest = bestName(state.bestEpoch);
    for (const n of readdirSync(this.dir)) {
      if (/^best-\d{4,}\.safetensors$/.test(n) && n !== keepBest) rmSync(join(this.dir, n), { force: true });
    }
  }
}
const bestName = (epoch: number) => `best-${String(epoch).padStart(4, '0')}.safetensors`;
