// c10d through the addon: two processes on loopback (TCPStore rendezvous, Gloo collectives). Collectives give the
// values PyTorch's define; the gather that keeps the local gradient makes the sum of the ranks' gradients equal the
// single-process gradient of the same global loss; a dead peer is an error, not a hang.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { freePort } from './helpers.js';
import { join } from 'node:path';
import * as torch from '../src/torch/index.js';
import { envGroupOptions } from '../src/torch/index.js';
import { packageRoot } from '../src/util/paths.js';

const available = torch.distributed.isAvailable();
if (!available && process.env.CI)
  throw new Error('the addon was built without Gloo: install libgloo-dev (scripts/setup.sh does) and rebuild');
const skip = available ? false : 'the addon was built without Gloo (libgloo-dev)';
const worker = join(packageRoot(), 'dist', 'test', 'workers', 'distributed-worker.js');

/** Runs `worldSize` ranks of the worker (or only the ranks in `only`) with torchrun's variables; their JSON results in rank order. */
async function launch(
  kase: string,
  worldSize: number,
  env: Record<string, string> = {},
  only?: number[],
): Promise<{ code: number | null; out: Record<string, unknown> | undefined; err: string }[]> {
  const port = String(await freePort());
  return Promise.all(
    (only ?? Array.from({ length: worldSize }, (_, r) => r)).map(
      (rank) =>
        new Promise<{ code: number | null; out: Record<string, unknown> | undefined; err: string }>((resolve) => {
          const p = spawn('node', [worker], {
            env: {
              ...process.env,
              T3D_NUM_THREADS: '1',
              MASTER_ADDR: '127.0.0.1',
              MASTER_PORT: port,
              RANK: String(rank),
              WORLD_SIZE: String(worldSize),
              T3D_DIST_CASE: kase,
              ...env,
            },
          });
          let stdout = '',
            stderr = '';
          p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
          p.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
          p.on('close', (code) => {
            const line = stdout.trim().split('\n').pop();
            resolve({ code, out: line ? (JSON.parse(line) as Record<string, unknown>) : undefined, err: stderr });
          });
        }),
    ),
  );
}

test('torchrun variables: parsed and checked', () => {
  assert.equal(envGroupOptions({}), undefined);
  assert.deepEqual(envGroupOptions({ WORLD_SIZE: '4', RANK: '2', MASTER_ADDR: 'node0', MASTER_PORT: '1234' }), {
    rank: 2,
    worldSize: 4,
    masterAddr: 'node0',
    masterPort: 1234,
  });
  assert.throws(() => envGroupOptions({ WORLD_SIZE: '2', RANK: '2' }), /RANK=2 must be below WORLD_SIZE=2/);
  assert.throws(() => envGroupOptions({ WORLD_SIZE: '2' }), /RANK=\(unset\) must be an integer/);
});

test('allReduce, broadcast, allGather and barrier across 2 processes', { skip, timeout: 120_000 }, async () => {
  const ranks = await launch('collectives', 2);
  for (const r of ranks) {
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(r.out!.sum, [3, 30, -1]);
    assert.deepEqual(r.out!.max, [1, 0]);
    assert.deepEqual(r.out!.broadcast, [8, 9]);
    assert.deepEqual(r.out!.gathered, [
      [0, 0.5],
      [1, 1.5],
    ]);
  }
});

test(
  "gatherWithLocalGrad: the ranks' gradients are the single-process gradient of the global loss",
  { skip, timeout: 120_000 },
  async () => {
    const W = 2;
    const ranks = await launch('gather-grad', W);
    ranks.forEach((r) => assert.equal(r.code, 0, r.err));
    // the same loss in this process on the whole batch
    const n = W * 2;
    const full = torch
      .tensor(
        Array.from({ length: n * 3 }, (_, i) => Math.sin(i + 1)),
        [n, 3],
      )
      .requiresGrad_(true);
    const loss = full.matmul(full.T).mul(3).logSoftmax(1).mul(torch.eye(n)).sum().div(-n);
    loss.backward();
    const g = full.grad!.toArray();
    for (const r of ranks)
      assert.ok(
        Math.abs((r.out!.loss as number) - loss.item()) < 1e-6,
        `rank ${r.out!.rank}: loss ${r.out!.loss} vs ${loss.item()}`,
      );
    // rank r's rows get exactly their rows of the full gradient: summing the ranks' parameter gradients (each the
    // chain rule through its own rows) therefore gives the single-process parameter gradient
    for (const r of ranks) {
      const rank = r.out!.rank as number;
      (r.out!.grad as number[]).forEach((v, i) =>
        assert.ok(Math.abs(v - g[rank * 6 + i]!) < 1e-6, `rank ${rank} element ${i}: ${v} vs ${g[rank * 6 + i]}`),
      );
    }
  },
);

test(
  "bucketed gradient reducer: every rank ends with the sum of the ranks' gradients, also when a gradient comes after its bucket started",
  { skip, timeout: 120_000 },
  async () => {
    const ranks = await launch('reducer', 2);
    ranks.forEach((r) => assert.equal(r.code, 0, r.err));
    type Step = { late: boolean; reduced: (number[] | null)[]; local: (number[] | null)[] };
    const steps = ranks.map((r) => r.out!.steps as Step[]);
    for (const r of ranks) assert.equal(r.out!.buckets, 3);
    // only step 1 has a late gradient (U's, on both ranks)
    assert.deepEqual(
      steps.map((s) => s.map((x) => x.late)),
      [
        [false, true, false],
        [false, true, false],
      ],
    );
    for (let step = 0; step < 3; step++) {
      for (let k = 0; k < 4; k++) {
        const locals = steps.map((s) => s[step]!.local[k]!);
        if (step === 0 && k === 1) {
          // unused everywhere: no gradient, as in a single process
          steps.forEach((s) => assert.equal(s[0]!.reduced[1], null));
          continue;
        }
        const sum = locals[0]!.map((v, i) => v + locals[1]![i]!);
        assert.ok(sum.some((v) => Math.abs(v) > 1e-3));
        for (const s of steps)
          s[step]!.reduced[k]!.forEach((v, i) =>
            assert.ok(Math.abs(v - sum[i]!) < 1e-5, `step ${step} param ${k} [${i}]: ${v} vs ${sum[i]}`),
          );
      }
    }
  },
);

test(
  'a peer that dies makes the survivor fail with a clear error, without hanging',
  { skip, timeout: 120_000 },
  async () => {
    const [r0, r1] = await launch('peer-dies', 2, { T3D_DIST_TIMEOUT_MS: '5000' });
    assert.equal(r1!.code, 3);
    assert.equal(r0!.code, 0, r0!.err);
    assert.match(
      r0!.out!.error as string,
      /distributed\.allReduce failed on rank 0 of 2 \(a peer died, or did not join within 5000 ms\)/,
    );
    assert.ok((r0!.out!.seconds as number) < 15, `failed after ${r0!.out!.seconds} s`);
  },
);

test('a rank whose peers never join fails init after the timeout', { skip, timeout: 120_000 }, async () => {
  const t0 = performance.now();
  const [r0] = await launch('collectives', 2, { T3D_DIST_TIMEOUT_MS: '3000' }, [0]);
  assert.notEqual(r0!.code, 0);
  assert.match(r0!.err, /distributed\.init: rank 0 of 2 could not join the group at 127\.0\.0\.1:\d+ within 3000 ms/);
  assert.ok(performance.now() - t0 < 30_000);
});
