// File-system helpers for writes that survive a crash or power loss and reads that name the file they fail on.
// Durability order (as the ext4/XFS documentation asks): fsync a file's data, rename it into place, then fsync
// the folder so the rename itself is on disk.
import { createHash } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  openSync,
  readFileSync,
  readSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';

/** Parses a JSON file; a missing, empty or malformed file is an error that names it. */
export function readJsonFile<T>(path: string): T {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`${path}: unreadable (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (!text.trim()) throw new Error(`${path}: empty file, expected JSON`);
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`);
  }
}

/** fsync of a folder: makes creations, renames and deletions inside it durable. */
export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Writes `data` to `path` and fsyncs it (no rename: callers write inside a temporary folder). */
export function writeFileSynced(path: string, data: string | Uint8Array): void {
  const fd = openSync(path, 'w');
  try {
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let done = 0;
    while (done < buf.byteLength) done += writeSync(fd, buf, done, buf.byteLength - done);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Replaces `path` atomically and durably: temp file + fsync, rename, fsync of the folder. */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  const tmp = tempName(path);
  try {
    writeFileSynced(tmp, data);
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  fsyncDir(dirname(path));
}

/** sha256 (hex) and size of a file, read in 8 MiB blocks; with `sync`, the file is fsynced too. */
export function hashFile(path: string, o: { sync?: boolean } = {}): { sha256: string; size: number } {
  const fd = openSync(path, 'r'); // Linux fsyncs through a read-only descriptor
  try {
    const h = createHash('sha256');
    const buf = Buffer.allocUnsafe(8 << 20);
    let size = 0;
    for (let n; (n = readSync(fd, buf, 0, buf.length, size)) > 0; size += n) h.update(buf.subarray(0, n));
    if (o.sync) fsyncSync(fd);
    return { sha256: h.digest('hex'), size };
  } finally {
    closeSync(fd);
  }
}

// Temporary names carry host and pid, so a cleaner removes only what a dead process on this host left behind,
// never a live writer's (nor one on another host sharing the folder).
const HOST = hostname().replace(/[^A-Za-z0-9.]/g, '_');
const TEMP = /\.tmp-([A-Za-z0-9._]+)-(\d+)$/;

export function tempName(path: string): string {
  return `${path}.tmp-${HOST}-${process.pid}`;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

/** Removes the temporary files and folders in `dir` left by dead processes of this host; returns their names. */
export function removeStaleTemps(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const n of names) {
    const m = TEMP.exec(n);
    if (!m || m[1] !== HOST) continue;
    const pid = Number(m[2]);
    if (pid === process.pid || alive(pid)) continue;
    rmSync(join(dir, n), { recursive: true, force: true });
    removed.push(n);
  }
  return removed;
}

/** A claim older than this, held by another host, is taken to be a crashed one's. */
const CLAIM_STALE_MS = 60 * 60 * 1000;

/**
 * Takes an exclusive claim (a file created with O_EXCL holding host and pid) for work that several processes
 * sharing a folder might start; false when a live process holds it. A claim left by a dead process of this host,
 * or by another host more than an hour ago, is taken over.
 */
export function tryClaim(path: string): boolean {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      try {
        writeSync(fd, `${HOST} ${process.pid}\n`);
      } finally {
        closeSync(fd);
      }
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST')
        throw new Error(`${path}: cannot create claim (${(e as Error).message})`);
    }
    let holder: string[];
    let age: number;
    try {
      holder = readFileSync(path, 'utf8').trim().split(' ');
      age = Date.now() - statSync(path).mtimeMs;
    } catch {
      continue; // released meanwhile: try again
    }
    const [host, pid] = [holder[0], Number(holder[1])];
    const stale = host === HOST ? pid !== process.pid && !alive(pid) : age > CLAIM_STALE_MS;
    if (!stale) return false;
    rmSync(path, { force: true });
  }
  return false;
}
