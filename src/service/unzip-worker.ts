// The worker thread that unpacks one uploaded zip (zip.ts), so that inflation never holds up the server's event
// loop: it gets the zip (transferred, not copied), the folder and the limits, and answers { files, bytes } or the
// refusal's status and message. The server terminates it when the upload's time budget runs out.
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { ClientError } from './client-error.js';
import { unzipInto, type UnzipLimits } from './zip.js';

export interface UnzipJob {
  zip: Uint8Array;
  dir: string;
  limits: UnzipLimits;
}
export type UnzipAnswer = { files: number; bytes: number } | { status: number; message: string };

// unpacking yields the CPU to the server's requests: this thread at the lowest priority (Linux: a thread's id is a
// pid to setpriority, and affects that thread alone; elsewhere this is skipped)
try {
  setPriority(Number(readlinkSync('/proc/thread-self').split('/').pop()), 19);
} catch {
  // no /proc: the thread keeps the process's priority
}
const { zip, dir, limits } = workerData as UnzipJob;
let answer: UnzipAnswer;
try {
  answer = unzipInto(zip, dir, limits);
} catch (e) {
  answer =
    e instanceof ClientError
      ? { status: e.status, message: e.message }
      : { status: 500, message: `unpacking the zip failed: ${(e as Error).message}` };
}
parentPort!.postMessage(answer);
