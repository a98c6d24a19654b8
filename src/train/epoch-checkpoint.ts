// Per-epoch checkpoints of the evaluation trainers (probes, fine-tuning, segmentation, report generation):
// `<dir>/epoch-NNNN/`, sealed like the pre-training checkpoints (files fsynced, manifest.json last, temporary
// name renamed when complete), so a killed run resumes from its last intact epoch and a damaged one is never
// loaded; older epochs are removed only after the new one exists.
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readJsonFile, removeStaleTemps, tempName } from '../util/files.js';
import { commitFolder, verifyFolder } from '../util/manifest.js';

const EPOCH_DIR = /^epoch-\d{4,}$/;
const STATE = 'state.json';

/** The newest epoch folder that verifies, or undefined; damaged ones are reported through `log` and skipped. */
export function latestEpochDir(
  dir: string | undefined,
  log: (line: string) => void = (l) => console.error(`t3d: ${l}`),
): string | undefined {
  if (!dir || !existsSync(dir)) return undefined;
  for (const n of readdirSync(dir)
    .filter((x) => EPOCH_DIR.test(x))
    .sort()
    .reverse()) {
    const bad = verifyFolder(join(dir, n));
    if (!bad) return join(dir, n);
    log(`skipping ${join(dir, n)}: ${bad}`);
  }
  return undefined;
}

/** Reads an epoch folder's state.json, naming the file when it is not valid JSON. */
export function readEpochState<S>(epochDir: string): S {
  return readJsonFile<S>(join(epochDir, STATE));
}

/**
 * Writes epoch `epoch`: `writeFiles(tmpDir)` puts the tensors in place, then state.json, and the folder is sealed
 * and renamed into place; returns its path. Older epoch folders and temporary folders of dead processes are removed.
 */
export function saveEpochDir(dir: string, epoch: number, state: unknown, writeFiles: (tmpDir: string) => void): string {
  mkdirSync(dir, { recursive: true });
  removeStaleTemps(dir);
  const final = join(dir, `epoch-${String(epoch).padStart(4, '0')}`);
  const tmp = tempName(final);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  writeFiles(tmp);
  writeFileSync(join(tmp, STATE), JSON.stringify(state, null, 2) + '\n');
  commitFolder(tmp, final);
  for (const n of readdirSync(dir))
    if (EPOCH_DIR.test(n) && join(dir, n) !== final) rmSync(join(dir, n), { recursive: true, force: true });
  return final;
}
