// Data-parallel launching on one node, as torchrun does it.
import { spawn } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { availableParallelism } from 'node:os';

/** One node's share of a data-parallel job: `nproc` ranks here, of `nnodes` × `nproc` in all. */
export interface Launch {
  nproc: number;
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  masterPort?: number;
}

/** torchrun's flags as given (absent = not given). */
export interface LaunchFlags {
  nproc?: number;
  nnodes?: number;
  nodeRank?: number;
  masterAddr?: string;
  masterPort?: number;
}

/**
 * This node's share of a data-parallel job from torchrun's flags and variables (MASTER_ADDR, MASTER_PORT), or
 * undefined when this process is itself a rank (WORLD_SIZE is set) or the only process. Bad values throw, naming
 * the flag.
 */
export function launchPlan(f: LaunchFlags, env: NodeJS.ProcessEnv = process.env): Launch | undefined {
  const int = (flag: string, v: number | undefined, min: number) => {
    const n = v ?? min;
    if (!(Number.isInteger(n) && n >= min)) throw new Error(`--${flag} must be an integer ≥ ${min}, got ${n}`);
    return n;
  };
  const nproc = int('nproc-per-node', f.nproc, 1);
  const nnodes = int('nnodes', f.nnodes, 1);
  const nodeRank = int('node-rank', f.nodeRank, 0);
  if (nodeRank >= nnodes) throw new Error(`--node-rank ${nodeRank} must be below --nnodes ${nnodes}`);
  const masterAddr = f.masterAddr ?? env.MASTER_ADDR ?? '127.0.0.1';
  const envPort = env.MASTER_PORT !== undefined ? Number(env.MASTER_PORT) : undefined;
  const port = f.masterPort ?? envPort ?? (nnodes > 1 ? 29500 : undefined);
  if (port !== undefined && !(Number.isInteger(port) && port >= 1 && port <= 65535)) {
    throw new Error(`--master-port must be 1..65535, got ${port}`);
  }
  if (nnodes > 1 && f.masterAddr === undefined && env.MASTER_ADDR === undefined) {
    throw new Error('--nnodes > 1 needs --master-addr, the address of node 0 that every node can reach');
  }
  if ((nproc === 1 && nnodes === 1) || env.WORLD_SIZE !== undefined) return undefined;
  return { nproc, nnodes, nodeRank, masterAddr, masterPort: port };
}

/**
 * torchrun's job: starts this node's `nproc` ranks of `node <argv>` with RANK, LOCAL_RANK, NODE_RANK, WORLD_SIZE,
 * MASTER_ADDR and MASTER_PORT set and the cores shared out, and stops them all when one fails. One node: a free port
 * on loopback unless given. Several nodes: the same command on each with its node rank; node 0 hosts the rendezvous.
 * Other launchers (Slurm, Kubernetes, torchrun-style scripts) set these variables themselves, one process per rank.
 */
export async function launchRanks(argv: string[], l: Launch): Promise<void> {
  const port =
    l.masterPort ??
    (await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as AddressInfo).port;
        s.close(() => resolve(p));
      });
    }));
  const world = l.nnodes * l.nproc;
  const threads = process.env.T3D_NUM_THREADS ?? String(Math.max(1, Math.floor(availableParallelism() / l.nproc)));
  const children = Array.from({ length: l.nproc }, (_, local) => {
    const rank = l.nodeRank * l.nproc + local;
    return spawn(process.execPath, argv, {
      stdio: ['ignore', rank === 0 ? 'inherit' : 'ignore', 'inherit'],
      env: {
        ...process.env,
        RANK: String(rank),
        LOCAL_RANK: String(local),
        NODE_RANK: String(l.nodeRank),
        WORLD_SIZE: String(world),
        MASTER_ADDR: l.masterAddr,
        MASTER_PORT: String(port),
        T3D_NUM_THREADS: threads,
      },
    });
  });
  const codes = await Promise.all(
    children.map(
      (c) =>
        new Promise<number | null>((resolve) =>
          c.on('close', (code) => {
            if (code !== 0) children.forEach((o) => o.exitCode === null && o.kill('SIGTERM'));
            resolve(code);
          }),
        ),
    ),
  );
  const failed = codes.map((c, local) => ({ c, rank: l.nodeRank * l.nproc + local })).filter((x) => x.c !== 0);
  if (failed.length)
    throw new Error(
      `pretrain: rank ${failed[0]!.rank} of ${world} exited with ${failed[0]!.c}; the group was stopped (rerun with ` +
        `--resume to continue from the last checkpoint)`,
    );
}
