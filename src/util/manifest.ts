// Sealed folders (checkpoints): every file is hashed and fsynced, `manifest.json` (names, sizes, sha256) is
// written last, then the folder is renamed into place and its parent fsynced. A folder verifies only when every
// file the manifest lists is present with its size and hash, so truncation, a zeroed tail of the same size, a
// missing file and an emptied JSON are all caught before anything is loaded. The hashes equal `sha256sum`'s.
import { existsSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fsyncDir, hashFile, readJsonFile, writeFileSynced } from './files.js';

export const MANIFEST = 'manifest.json';
const FORMAT = 't3d-manifest/1';

export interface ManifestFile {
  name: string;
  size: number;
  sha256: string;
}
export interface Manifest {
  format: string;
  files: ManifestFile[];
}

/**
 * Seals the finished temporary folder `tmp` and renames it to `final` (replacing it); returns the manifest.
 * `written` holds hashes of files their writer already hashed and fsynced (saveSafetensors), so they are not read
 * again.
 */
export function commitFolder(
  tmp: string,
  final: string,
  written = new Map<string, { sha256: string; size: number }>(),
): Manifest {
  const names = readdirSync(tmp)
    .filter((n) => n !== MANIFEST)
    .sort();
  const files = names.map((name) => {
    const path = join(tmp, name);
    if (!statSync(path).isFile()) throw new Error(`${path}: a sealed folder holds only files`);
    const known = written.get(name);
    return { name, ...(known ? { sha256: known.sha256, size: known.size } : hashFile(path, { sync: true })) };
  });
  const manifest: Manifest = { format: FORMAT, files };
  writeFileSynced(join(tmp, MANIFEST), JSON.stringify(manifest, null, 2) + '\n');
  fsyncDir(tmp);
  rmSync(final, { recursive: true, force: true });
  renameSync(tmp, final);
  fsyncDir(dirname(final));
  return manifest;
}

/** Reads a folder's manifest (an error naming the file when it is missing or unreadable). */
export function readManifest(dir: string): Manifest {
  const m = readJsonFile<Manifest>(join(dir, MANIFEST));
  if (m.format !== FORMAT || !Array.isArray(m.files))
    throw new Error(`${join(dir, MANIFEST)}: not a ${FORMAT} manifest`);
  return m;
}

/** Why `dir` fails verification, or undefined when every listed file is intact. Reads every byte. */
export function verifyFolder(dir: string): string | undefined {
  if (!existsSync(join(dir, MANIFEST))) return `no ${MANIFEST}`;
  let m: Manifest;
  try {
    m = readManifest(dir);
  } catch (e) {
    return (e as Error).message.replace(`${dir}/`, '');
  }
  for (const f of m.files) {
    const path = join(dir, f.name);
    if (basename(f.name) !== f.name) return `${MANIFEST} lists '${f.name}', which is not a plain file name`;
    if (!existsSync(path)) return `${f.name} is missing`;
    const size = statSync(path).size;
    if (size !== f.size)
      return `${f.name} is ${size} bytes, the manifest says ${f.size}${size < f.size ? ' (truncated)' : ''}`;
    if (hashFile(path).sha256 !== f.sha256) return `${f.name} does not match its sha256 in ${MANIFEST} (corrupted)`;
  }
  return undefined;
}
