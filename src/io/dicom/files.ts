// Inputs: a folder (searched recursively), one file, or a list of files; reads that name the path on failure.

import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { DicomError } from './errors.js';

export interface InputFiles {
  files: string[];
  /** The input as named in errors. */
  where: string;
  /** A folder may hold non-images (DICOMDIR, reports, notes): those are skipped, not fatal. */
  folder: boolean;
}

function ioReason(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'ENOENT') return 'no such file or folder';
  if (err.code === 'EACCES' || err.code === 'EPERM') return 'permission denied';
  if (err.code === 'EISDIR') return 'is a folder, not a file';
  return err.message;
}

export async function readBytes(path: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (e) {
    throw new DicomError(path, `cannot read: ${ioReason(e)}`, 'unreadable');
  }
}

export async function listInputs(input: string | string[]): Promise<InputFiles> {
  if (Array.isArray(input)) {
    if (input.length === 0) throw new DicomError('<file list>', 'no input files');
    return {
      files: input,
      where: input.length === 1 ? input[0]! : `${input.length} files (first ${input[0]})`,
      folder: false,
    };
  }
  let isDir: boolean;
  try {
    isDir = (await stat(input)).isDirectory();
  } catch (e) {
    throw new DicomError(input, `cannot read: ${ioReason(e)}`, 'unreadable');
  }
  if (!isDir) return { files: [input], where: input, folder: false };
  const files = await walk(input);
  if (files.length === 0) throw new DicomError(input, 'empty folder: no files found (searched recursively)');
  return { files, where: input, folder: true };
}

/** Sorted, so that file order (and so error order) does not depend on the file system. Links to folders are
 * not followed (they can loop). */
async function walk(dir: string): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (e) {
    throw new DicomError(dir, `cannot list folder: ${ioReason(e)}`, 'unreadable');
  }
  const out: string[] = [];
  for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const path = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await walk(path)));
    else if (!(
      e.isSymbolicLink() &&
      (await stat(path).then(
        (s) => s.isDirectory(),
        () => false,
      ))
    ))
      out.push(path);
  }
  return out;
}
