// A small worker-thread pool: tasks go to whichever worker is free; results come back in any order.
// Worker modules call `serveTasks(handler)`; the pool imports them by URL.
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

interface Request<T> { id: number; task: T }
interface Reply<R> { id: number; result?: R; error?: string }

/** In a worker module: answer the pool's tasks with `handler` (errors are sent back, never thrown). */
export function serveTasks<T, R>(handler: (task: T, init: unknown) => R | Promise<R>): void {
  if (isMainThread || !parentPort) throw new Error('serveTasks() must run inside a worker thread');
  const port = parentPort;
  port.on('message', async (msg: Request<T>) => {
    try {
      port.postMessage({ id: msg.id, result: await handler(msg.task, workerData) } satisfies Reply<R>);
    } catch (err) {
      port.postMessage({ id: msg.id, error: (err as Error).message ?? String(err) } satisfies Reply<R>);
    }
  });
}

export interface PoolResult<T, R> { task: T; result?: R; error?: string }

/**
 * Runs every task on `size` workers of `script` and calls onResult as each finishes (in completion
 * order). A task's error is reported, not thrown, so one bad input never stops the run.
 */
export async function runPool<T, R>(
  script: URL, tasks: T[], o: { size: number; init?: unknown; onResult: (r: PoolResult<T, R>) => void },
): Promise<void> {
  if (tasks.length === 0) return;
  const size = Math.max(1, Math.min(o.size, tasks.length));
  let next = 0;
  await Promise.all(Array.from({ length: size }, () => new Promise<void>((resolve, reject) => {
    const worker = new Worker(script, { workerData: o.init });
    let current = -1;
    const feed = () => {
      if (next >= tasks.length) { void worker.terminate().then(() => resolve()); return; }
      current = next++;
      worker.postMessage({ id: current, task: tasks[current] } satisfies Request<T>);
    };
    worker.on('message', (reply: Reply<R>) => {
      o.onResult({ task: tasks[reply.id]!, result: reply.result, error: reply.error });
      feed();
    });
    worker.on('error', (err) => {
      // A crashed worker loses its current task: report it and fail the run (the caller can resume).
      if (current >= 0) o.onResult({ task: tasks[current]!, error: `worker crashed: ${err.message}` });
      reject(err);
    });
    feed();
  })));
}
