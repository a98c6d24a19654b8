// Worker-thread pools. Worker modules call `serveTasks(handler)`; the pool imports them by URL.
// Typed-array results are transferred (not copied) back to the caller.
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

interface Request<T> {
  id: number;
  task: T;
}
interface Reply<R> {
  id: number;
  result?: R;
  error?: string;
}

/** ArrayBuffers of typed arrays found in an object's values (one level, and arrays of them). */
function transferables(value: unknown): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  const visit = (v: unknown) => {
    if (ArrayBuffer.isView(v) && v.buffer instanceof ArrayBuffer) out.add(v.buffer);
    else if (Array.isArray(v)) v.forEach(visit);
  };
  if (value && typeof value === 'object') Object.values(value).forEach(visit);
  return [...out];
}

/** In a worker module: answer the pool's tasks with `handler` (errors are sent back, never thrown). */
export function serveTasks<T, R>(handler: (task: T, init: unknown) => R | Promise<R>): void {
  if (isMainThread || !parentPort) throw new Error('serveTasks() must run inside a worker thread');
  const port = parentPort;
  port.on('message', async (msg: Request<T>) => {
    try {
      const result = await handler(msg.task, workerData);
      port.postMessage({ id: msg.id, result } satisfies Reply<R>, transferables(result));
    } catch (err) {
      port.postMessage({ id: msg.id, error: (err as Error).message ?? String(err) } satisfies Reply<R>);
    }
  });
}

/** A persistent pool: submit() resolves with the task's result; tasks queue while every worker is busy. */
export class WorkerPool<T, R> {
  private readonly workers: Worker[];
  private readonly idle: Worker[] = [];
  private readonly queue: { id: number; task: T; transfer: ArrayBuffer[] }[] = [];
  private readonly pending = new Map<
    number,
    { resolve: (r: R) => void; reject: (e: Error) => void; worker?: Worker }
  >();
  private nextId = 0;
  private closed = false;

  constructor(script: URL, size: number, init?: unknown) {
    this.workers = Array.from({ length: Math.max(1, size) }, () => {
      const w = new Worker(script, { workerData: init });
      w.on('message', (reply: Reply<R>) => {
        const p = this.pending.get(reply.id);
        this.pending.delete(reply.id);
        if (p) {
          if (reply.error !== undefined) p.reject(new Error(reply.error));
          else p.resolve(reply.result as R);
        }
        this.release(w);
      });
      w.on('error', (err) => {
        // A crashed worker fails its own task and everything still queued: the run cannot go on correctly.
        for (const [id, p] of this.pending) {
          if (!p.worker || p.worker === w) {
            p.reject(new Error(`worker crashed: ${err.message}`));
            this.pending.delete(id);
          }
        }
      });
      return w;
    });
    this.idle.push(...this.workers);
  }

  /** `transfer`: buffers of the task moved to the worker instead of copied (unusable here afterwards). */
  submit(task: T, transfer: ArrayBuffer[] = []): Promise<R> {
    if (this.closed) return Promise.reject(new Error('WorkerPool: closed'));
    const id = this.nextId++;
    const promise = new Promise<R>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.queue.push({ id, task, transfer });
    this.dispatch();
    return promise;
  }

  private release(w: Worker): void {
    this.idle.push(w);
    this.dispatch();
  }

  private dispatch(): void {
    while (this.idle.length && this.queue.length) {
      const w = this.idle.shift()!;
      const { id, task, transfer } = this.queue.shift()!;
      const p = this.pending.get(id);
      if (!p) continue;
      p.worker = w;
      w.postMessage({ id, task } satisfies Request<T>, transfer);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

export interface PoolResult<T, R> {
  task: T;
  result?: R;
  error?: string;
}

/**
 * Runs every task on `size` workers and calls onResult as each finishes (completion order). A task's
 * error is reported, not thrown, so one bad input never stops the run.
 */
export async function runPool<T, R>(
  script: URL,
  tasks: T[],
  o: { size: number; init?: unknown; onResult: (r: PoolResult<T, R>) => void },
): Promise<void> {
  if (tasks.length === 0) return;
  const pool = new WorkerPool<T, R>(script, Math.min(o.size, tasks.length), o.init);
  try {
    await Promise.all(
      tasks.map((task) =>
        pool.submit(task).then(
          (result) => o.onResult({ task, result }),
          (err: Error) => o.onResult({ task, error: err.message }),
        ),
      ),
    );
  } finally {
    await pool.close();
  }
}
