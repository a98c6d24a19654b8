// Whole-buffer gunzip up to a buffer of known capacity: libdeflate through its small addon when it was built
// (Debian libdeflate-dev; about twice zlib's speed), Node's zlib otherwise. T3D_GZIP=zlib forces zlib.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { constants as bufferConstants } from 'node:buffer';
import { gunzip as zlibGunzip, gunzipSync as zlibGunzipSync, type ZlibOptions } from 'node:zlib';
import { packageRoot } from '../util/paths.js';

interface GzipAddon {
  gunzipSync(src: Uint8Array, dst: Uint8Array): number;
  gunzip(src: Uint8Array, dst: Uint8Array, cb: (err: Error | null, bytes: number) => void): void;
}

function load(): GzipAddon | undefined {
  if (process.env.T3D_GZIP === 'zlib') return undefined;
  const path = resolve(packageRoot(), 'build', 'Release', 't3d_gzip.node');
  return existsSync(path) ? (createRequire(import.meta.url)(path) as GzipAddon) : undefined;
}
const addon = load();

/** 'libdeflate' or 'zlib': what inflates .gz files in this process. */
export const gunzipEngine: 'libdeflate' | 'zlib' = addon ? 'libdeflate' : 'zlib';

/** The stream inflates to more than the capacity given (a gzip bomb, or a file larger than its header says). */
export class GunzipCapacityError extends Error {}

const MAX_CHUNK = 1 << 30;
const zlibGunzipAsync = promisify(zlibGunzip);
const zlibOpts = (capacity: number): ZlibOptions => ({
  // one output chunk when it fits: no concatenation copy, and an async inflate is one thread-pool task
  chunkSize: Math.min(capacity + 65536, MAX_CHUNK),
  maxOutputLength: Math.max(1, Math.min(bufferConstants.MAX_LENGTH, capacity)), // zlib wants ≥ 1
});
function checkedZlib(out: Uint8Array, capacity: number): Uint8Array {
  if (out.length > capacity) throw new GunzipCapacityError(`gzip stream inflates past ${capacity} bytes`);
  return out;
}
/** Errors say the same thing whichever engine inflated. */
function gunzipError(e: unknown, capacity: number): Error {
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'ERR_BUFFER_TOO_LARGE' || /inflates past/.test(err.message))
    return new GunzipCapacityError(`gzip stream inflates past ${capacity} bytes`);
  return new Error(`corrupt or truncated gzip stream (${err.message})`);
}

/** Inflates `file` (one or more gzip members); more than `capacity` bytes is an error. With libdeflate the bytes
 * land in `into` when it holds `capacity` bytes (a buffer reused across files: no fresh pages to fault in). */
export function gunzipSync(file: Uint8Array, capacity: number, into?: Uint8Array): Uint8Array {
  try {
    if (!addon) return checkedZlib(zlibGunzipSync(file, zlibOpts(capacity)), capacity);
    const out = into && into.length >= capacity ? into.subarray(0, capacity) : Buffer.allocUnsafe(capacity);
    return out.subarray(0, addon.gunzipSync(file, out));
  } catch (e) {
    throw gunzipError(e, capacity);
  }
}

/** As gunzipSync, off the calling thread (libuv's thread pool). */
export async function gunzip(file: Uint8Array, capacity: number): Promise<Uint8Array> {
  try {
    if (!addon) return checkedZlib(await zlibGunzipAsync(file, zlibOpts(capacity)), capacity);
    const out = Buffer.allocUnsafe(capacity);
    const n = await new Promise<number>((ok, fail) =>
      addon.gunzip(file, out, (err, bytes) => (err ? fail(err) : ok(bytes))),
    );
    return out.subarray(0, n);
  } catch (e) {
    throw gunzipError(e, capacity);
  }
}
