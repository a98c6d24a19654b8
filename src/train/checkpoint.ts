// Checkpoints (docs/ARCHITECTURE.md §2): a folder per save — config.json, model.safetensors, tokenizer.json,
// optimizer.safetensors, trainer_state.json and, written last, manifest.json with every file's size and sha256.
// The folder is written under a temporary name, fsynced and renamed when complete, so neither a kill nor a power
// loss leaves something that looks complete; loading verifies the manifest first, so damage at rest (truncation,
// a corrupted block, a missing or emptied file) is never loaded. Older checkpoints are removed only afterwards.
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../torch/index.js';
import { nn, type Tensor } from '../torch/index.js';
import { type GradScalerState } from '../torch/optim.js';
import { type OptimizerState } from '../torch/optim/optimizer.js';
import { hashFile, readJsonFile, removeStaleTemps, tempName } from '../util/files.js';
import { MANIFEST, commitFolder, readManifest, verifyFolder } from '../util/manifest.js';
import { readSafetensorsHeader } from '../util/safetensors-file.js';

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
/** what inference needs (`t3d embed`, `t3d eval`); resuming training needs all of TRAINING_FILES */
export const MODEL_FILES = ['config.json', 'model.safetensors', 'tokenizer.json'];
export const TRAINING_FILES = [...MODEL_FILES, 'optimizer.safetensors', 'trainer_state.json'];

export function checkpointName(step: number): string {
  return `step-${String(step).padStart(8, '0')}`;
}

/**
 * Writes <dir>/step-XXXXXXXX durably and keeps only the newest `keep` checkpoints. Temporary folders left by
 * dead processes are removed first (reported through `log`).
 */
export function saveCheckpoint(dir: string, p: CheckpointParts, keep = 2, log?: (line: string) => void): string {
  mkdirSync(dir, { recursive: true });
  for (const n of removeStaleTemps(dir)) log?.(`removed ${join(dir, n)}, left by a save that did not finish`);
  const final = join(dir, checkpointName(p.state.step));
  const tmp = tempName(final);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  writeFileSync(join(tmp, 'config.json'), JSON.stringify(p.config, null, 2) + '\n');
  const written = new Map([['model.safetensors', torch.saveModule(p.model, join(tmp, 'model.safetensors'))]]);
  const opt = p.optimizer.stateDict();
  const tensors = new Map([...opt.tensors, ...p.extra]);
  written.set(
    'optimizer.safetensors',
    torch.saveSafetensors(join(tmp, 'optimizer.safetensors'), tensors, { optimizer: JSON.stringify(opt.meta) }),
  );
  writeFileSync(join(tmp, 'tokenizer.json'), JSON.stringify(p.tokenizerJson));
  writeFileSync(join(tmp, 'trainer_state.json'), JSON.stringify(p.state, null, 2) + '\n');
  commitFolder(tmp, final, written);
  const all = listCheckpoints(dir);
  for (const old of all.slice(0, Math.max(0, all.length - keep)))
    rmSync(join(dir, old), { recursive: true, force: true });
  return final;
}

/** Checkpoint folders (intact or not), oldest first; temporary folders are not among them. */
export function listCheckpoints(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((n) => NAME.test(n))
    .sort();
}

/**
 * Why checkpoint folder `dir` must not be loaded (`error`), or a `warning` for one written before checkpoints
 * carried a manifest: those get a structural check only (files present, JSON parses, safetensors sizes add up).
 */
export function checkCheckpoint(dir: string, requires = MODEL_FILES): { error?: string; warning?: string } {
  if (existsSync(join(dir, MANIFEST))) {
    const bad = verifyFolder(dir);
    if (bad) return { error: bad };
    const listed = new Set(readManifest(dir).files.map((f) => f.name));
    const missing = requires.filter((f) => !listed.has(f));
    return missing.length ? { error: `its manifest lacks ${missing.join(', ')}` } : {};
  }
  for (const f of requires) {
    const path = join(dir, f);
    if (!existsSync(path)) return { error: `${f} is missing` };
    try {
      if (f.endsWith('.json')) readJsonFile(path);
      else {
        const h = readSafetensorsHeader(path);
        const end = h.dataStart + Math.max(0, ...h.entries.map((e) => e.end));
        const size = statSync(path).size;
        if (size !== end) return { error: `${f} is ${size} bytes, its header says ${end}` };
      }
    } catch (e) {
      return { error: (e as Error).message.replace(`${dir}/`, '') };
    }
  }
  return {
    warning:
      `no ${MANIFEST} (written by an older version): checked structurally only, corruption that keeps sizes ` +
      `would go unnoticed`,
  };
}

/**
 * The checkpoint to load from `given`: a checkpoint folder, which must pass `checkCheckpoint`, or a run folder
 * (or its checkpoints/ folder), whose newest intact checkpoint is taken; skipped ones are reported through `log`.
 * Undefined only for a run folder with no checkpoints at all.
 */
export function resolveCheckpoint(
  given: string,
  o: { requires?: string[]; log: (line: string) => void },
): string | undefined {
  const requires = o.requires ?? MODEL_FILES;
  const dir = existsSync(join(given, 'checkpoints')) ? join(given, 'checkpoints') : given;
  const isCheckpoint =
    dir === given &&
    !listCheckpoints(given).length &&
    [MANIFEST, ...TRAINING_FILES].some((f) => existsSync(join(given, f)));
  if (isCheckpoint) {
    const c = checkCheckpoint(given, requires);
    if (c.error) throw new Error(`${given}: damaged checkpoint, not loaded: ${c.error}`);
    if (c.warning) o.log(`${given}: ${c.warning}`);
    return given;
  }
  const names = listCheckpoints(dir).reverse();
  const skipped: string[] = [];
  for (const n of names) {
    const c = checkCheckpoint(join(dir, n), requires);
    if (c.error) {
      skipped.push(`${n}: ${c.error}`);
      o.log(`skipping ${join(dir, n)}: ${c.error}`);
      continue;
    }
    if (c.warning) o.log(`${join(dir, n)}: ${c.warning}`);
    return join(dir, n);
  }
  if (skipped.length) throw new Error(`${given}: no intact checkpoint (${skipped.join('; ')})`);
  return undefined;
}

/** A checkpoint's id (evaluation records, the embedding index's tables): the start of its weights' sha256. */
export const checkpointId = (dir: string): string => checkpointFileSha256(dir, 'model.safetensors').slice(0, 16);

/** sha256 (hex) of one file of a checkpoint, from its manifest when it has one. */
export function checkpointFileSha256(dir: string, name: string): string {
  const listed = existsSync(join(dir, MANIFEST)) ? readManifest(dir).files.find((f) => f.name === name) : undefined;
  return listed?.sha256 ?? hashFile(join(dir, name)).sha256;
}

/** Loads weights, optimizer state and extra tensors into existing objects; returns the trainer state. */
export function loadCheckpoint(
  path: string,
  model: nn.Module,
  optimizer: torch.optim.Optimizer<object>,
): { state: TrainerState; extra: Map<string, Tensor> } {
  const state = readJsonFile<TrainerState>(join(path, 'trainer_state.json'));
  torch.loadModule(model, join(path, 'model.safetensors'));
  const { tensors, metadata } = torch.loadSafetensors(join(path, 'optimizer.safetensors'));
  const optTensors = new Map([...tensors].filter(([k]) => k.startsWith('state.')));
  const extra = new Map([...tensors].filter(([k]) => !k.startsWith('state.')));
  try {
    let meta: unknown;
    try {
      meta = JSON.parse(metadata.optimizer ?? 'null');
    } catch (e) {
      throw new Error(
        `${join(path, 'optimizer.safetensors')}: optimizer metadata is not valid JSON (${(e as Error).message})`,
      );
    }
    optimizer.loadStateDict({ tensors: optTensors, meta: meta as OptimizerState['meta'] });
  } catch (err) {
    torch.dispose([...extra.values()]);
    throw err;
  } finally {
    torch.dispose([...optTensors.values()]);
  }
  return { state, extra };
}
