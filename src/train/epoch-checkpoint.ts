// Per-epoch checkpoints of the evaluation trainers (probes, fine-tuning, segmentation, report generation):
// `<dir>/epoch-NNNN/` written under a temporary name and renamed when complete, so a killed run resumes from
// its last finished epoch; older epochs are removed only after the new one exists.
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const EPOCH_DIR = /^epoch-\d{4,}$/;
const STATE = 'state.json';

/** The newest complete epoch folder, or undefined. */
export function latestEpochDir(dir: string | undefined): string | undefined {
  if (!dir || !existsSync(dir)) return undefined;
  const done = readdirSync(dir).filter((n) => EPOCH_DIR.test(n) && existsSync(join(dir, n, STATE))).sort();
  return done.length ? join(dir, done[done.length - 1]!) : undefined;
}

/** Reads an epoch folder's state.json, naming the file when it is not valid JSON. */
export function readEpochState<S>(epochDir: string): S {
  const path = join(epochDir, STATE);
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as S;
  } catch (e) {
    throw new Error(`${path}: unreadable checkpoint state (${(e as Error).message})`);
  }
}

/**
 * Writes epoch `epoch`: `writeFiles(tmpDir)` puts the tensors in place, then state.json is written last and the
 * folder renamed into place; returns its path. Older epoch folders are then deleted.
 */
export function saveEpochDir(dir: string, epoch: number, state: unknown, writeFiles: (tmpDir: string) => void): string {
  mkdirSync(dir, { recursive: true });
  const final = join(dir, `epoch-${String(epoch).padStart(4, '0')}`);
  const tmp = `${final}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  writeFiles(tmp);
  writeFileSync(join(tmp, STATE), JSON.stringify(state, null, 2) + '\n');
  rmSync(final, { recursive: true, force: true });
  renameSync(tmp, final);
  for (const n of readdirSync(dir)) if (EPOCH_DIR.test(n) && join(dir, n) !== final) rmSync(join(dir, n), { recursive: true, force: true });
  return final;
}
