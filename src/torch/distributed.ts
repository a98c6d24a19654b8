// torch.distributed for data-parallel training: PyTorch's own c10d engine (TCPStore rendezvous, Gloo collectives on
// CPU tensors) in the addon, one process group per process, initialised from torchrun's environment variables
// (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE) so Slurm or Kubernetes launchers that set them work unchanged.
// Collectives block until done; a peer that dies or stalls makes them throw after the group's timeout.
import { native as N } from './native.js';
import { type Tensor, wrapList } from './tensor.js';
import { cat } from './ops.js';

export type ReduceOp = 'sum' | 'max' | 'min' | 'product';

export interface GroupOptions {
  rank: number;
  worldSize: number;
  masterAddr: string;
  masterPort: number;
  timeoutMs?: number;
}

let group: Required<GroupOptions> | undefined;

function current(what: string): Required<GroupOptions> {
  if (!group) throw new Error(`distributed.${what}: no process group; call distributed.init first`);
  return group;
}

/** Runs a collective, turning c10d/Gloo failures into an error that says what probably happened. */
function collective<T>(what: string, fn: () => T): T {
  const g = current(what);
  try {
    return fn();
  } catch (e) {
    throw new Error(
      `distributed.${what} failed on rank ${g.rank} of ${g.worldSize} ` +
        `(a peer died, or did not join within ${g.timeoutMs} ms): ${(e as Error).message.split('\n')[0]}`,
    );
  }
}

/** The process group's settings from torchrun's variables; undefined when WORLD_SIZE is unset. */
export function envGroupOptions(env: NodeJS.ProcessEnv = process.env): GroupOptions | undefined {
  if (env.WORLD_SIZE === undefined) return undefined;
  const num = (name: string, v: string | undefined, min: number) => {
    const n = Number(v);
    if (v === undefined || !Number.isInteger(n) || n < min)
      throw new Error(`distributed: ${name}=${v ?? '(unset)'} must be an integer ≥ ${min}`);
    return n;
  };
  const worldSize = num('WORLD_SIZE', env.WORLD_SIZE, 1);
  const rank = num('RANK', env.RANK, 0);
  if (rank >= worldSize) throw new Error(`distributed: RANK=${rank} must be below WORLD_SIZE=${worldSize}`);
  return {
    rank,
    worldSize,
    masterAddr: env.MASTER_ADDR ?? '127.0.0.1',
    masterPort: num('MASTER_PORT', env.MASTER_PORT ?? '29500', 1),
  };
}

export const distributed = {
  /** Whether the addon was built with Gloo (c10d's CPU backend). */
  isAvailable: (): boolean => N.distAvailable() as boolean,
  isInitialized: (): boolean => group !== undefined,
  get rank(): number {
    return group?.rank ?? 0;
  },
  get worldSize(): number {
    return group?.worldSize ?? 1;
  },

  /** Joins the group: rank 0 serves the rendezvous at masterAddr:masterPort; returns once every rank has joined. */
  init(o: GroupOptions): void {
    if (!distributed.isAvailable())
      throw new Error('distributed: this build has no Gloo backend (rebuild the addon with libgloo-dev installed)');
    const g = { timeoutMs: 300_000, ...o };
    if (!(Number.isInteger(g.timeoutMs) && g.timeoutMs > 0))
      throw new Error(`distributed: timeoutMs must be a positive integer, got ${g.timeoutMs}`);
    try {
      N.distInit(g.rank, g.worldSize, g.masterAddr, g.masterPort, g.timeoutMs);
    } catch (e) {
      throw new Error(
        `distributed.init: rank ${g.rank} of ${g.worldSize} could not join the group ` +
          `at ${g.masterAddr}:${g.masterPort} within ${g.timeoutMs} ms: ${(e as Error).message.split('\n')[0]}`,
      );
    }
    group = g;
  },

  destroy(): void {
    N.distDestroy();
    group = undefined;
  },

  /**
   * In place: every rank ends with the reduction of `t` over ranks. One tensor per call (c10d's tensor lists are
   * one tensor per device, reduced together); many tensors go as one flat buffer, as DDP's buckets do.
   */
  allReduce(t: Tensor, op: ReduceOp = 'sum'): void {
    collective('allReduce', () => N.distAllReduce(t.id, op));
  },

  /** In place: every rank ends with rank `root`'s values of `t`. */
  broadcast(t: Tensor, root = 0): void {
    collective('broadcast', () => N.distBroadcast(t.id, root));
  },

  /** Every rank's tensor (same shape on every rank), in rank order; new tensors, without gradient. */
  allGather(t: Tensor): Tensor[] {
    const input = t.detach();
    try {
      return collective('allGather', () => wrapList(N.distAllGather(input.id)));
    } finally {
      input.dispose();
    }
  },

  /**
   * The gradient allReduce overlapped with backward, in buckets (DDP's scheme; `GradientReducer`). `params` in about
   * the order backward produces their gradients (reverse registration order), identical on every rank.
   */
  reducer(params: Tensor[], opts: { firstBucketBytes?: number; bucketBytes?: number } = {}): GradientReducer {
    current('reducer');
    return new GradientReducer(params, opts.firstBucketBytes ?? 1 << 20, opts.bucketBytes ?? 25 << 20);
  },

  barrier(): void {
    collective('barrier', () => N.distBarrier());
  },

  /**
   * The ranks' tensors concatenated along dim 0, with the gradient flowing into this rank's own slice (the
   * others are constants here). With every rank computing the same global loss from it, the sum over ranks of the
   * parameter gradients is the single-process gradient of that loss: the gradient allReduce must sum, not average.
   */
  gatherWithLocalGrad(t: Tensor): Tensor {
    const parts = distributed.allGather(t);
    const mine = parts[distributed.rank]!;
    parts[distributed.rank] = t;
    const out = cat(parts, 0);
    mine.dispose();
    parts.forEach((p, r) => r !== distributed.rank && p.dispose());
    return out;
  },
};

/**
 * Sums parameter gradients over ranks while backward runs. Per step: `arm()` before the backward pass, then `wait()`
 * after it (also on a rank that skipped it: every rank must issue the same collectives), then `writeBack(redo)` with
 * `redo` agreed over ranks (true when any rank's wait() returned true: a gradient arrived after its bucket had
 * started, e.g. a parameter used for the first time; the buckets are then reduced again from the gradients).
 * Parameters without a gradient count as zeros and keep no gradient.
 */
export class GradientReducer {
  private id: number;
  readonly buckets: number;
  constructor(params: Tensor[], firstBucketBytes: number, bucketBytes: number) {
    const [id, buckets] = N.distReducerCreate(
      params.map((p) => p.id),
      firstBucketBytes,
      bucketBytes,
    ) as [number, number];
    this.id = id;
    this.buckets = buckets;
  }
  arm(): void {
    N.distReducerArm(this.id);
  }
  wait(): boolean {
    return collective('allReduce', () => N.distReducerWait(this.id) as boolean);
  }
  writeBack(redo: boolean): void {
    collective('allReduce', () => N.distReducerWriteBack(this.id, redo));
  }
  dispose(): void {
    N.distReducerDispose(this.id);
  }
}
