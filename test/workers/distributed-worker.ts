// One rank of the distributed tests: joins the group from torchrun's variables, runs the collective named by
// T3D_DIST_CASE and prints its results as one JSON line.
import assert from 'node:assert/strict';
import * as torch from '../../src/torch/index.js';
import { distributed as dist, envGroupOptions } from '../../src/torch/index.js';

const kase = process.env.T3D_DIST_CASE ?? 'collectives';
dist.init({ ...envGroupOptions()!, timeoutMs: Number(process.env.T3D_DIST_TIMEOUT_MS ?? 60_000) });
const { rank, worldSize } = dist;
// the group is the one torchrun's variables describe
assert.ok(dist.isInitialized());
assert.equal(rank, Number(process.env.RANK));
assert.equal(worldSize, Number(process.env.WORLD_SIZE));
const out: Record<string, unknown> = { rank, worldSize };

if (kase === 'collectives') {
  const a = torch.tensor([rank + 1, 10 * (rank + 1), -rank], [3]);
  dist.allReduce(a);
  out.sum = a.toArray();
  const m = torch.tensor([rank, -rank], [2]);
  dist.allReduce(m, 'max');
  out.max = m.toArray();
  const b = torch.tensor([rank * 7 + 1, rank * 7 + 2], [2]);
  dist.broadcast(b, worldSize - 1);
  out.broadcast = b.toArray();
  const g = dist.allGather(torch.tensor([rank, rank + 0.5], [1, 2]));
  out.gathered = g.map((t) => t.toArray());
  assert.equal(g.length, worldSize, 'one tensor per rank');
  dist.barrier();
} else if (kase === 'gather-grad') {
  // rank r holds rows r of a fixed matrix; the loss is a contrastive-style function of all rows
  const all = torch.tensor(
    Array.from({ length: worldSize * 2 * 3 }, (_, i) => Math.sin(i + 1)),
    [worldSize * 2, 3],
  );
  const x = all
    .narrow(0, rank * 2, 2)
    .clone()
    .requiresGrad_(true);
  const full = dist.gatherWithLocalGrad(x);
  const logits = full.matmul(full.T).mul(3);
  const n = worldSize * 2;
  const loss = logits.logSoftmax(1).mul(torch.eye(n)).sum().div(-n);
  loss.backward();
  out.loss = loss.item();
  out.grad = x.grad!.toArray();
} else if (kase === 'reducer') {
  // A (12 bytes), U (32), B (20), C (64) with buckets of 16 bytes first, then 80: [A], [U, B], [C]. U is unused at
  // step 0 and gets its gradient from a second backward pass at steps 1 and 2: at step 1 its bucket has started
  // without it (the reducer waited only for B), so the reduction must be redone; at step 2 it is waited for.
  const shapes = [[3], [2, 4], [5], [4, 4]];
  const init = (k: number, s: number[]) =>
    torch.tensor(
      Array.from({ length: s.reduce((a, b) => a * b) }, (_, i) => Math.sin(k * 10 + i + 1)),
      s,
    );
  const params = shapes.map((s, k) => init(k, s).requiresGrad_(true));
  const twins = shapes.map((s, k) => init(k, s).requiresGrad_(true)); // the same local gradients, without a reducer
  const r = dist.reducer(params, { firstBucketBytes: 16, bucketBytes: 80 });
  out.buckets = r.buckets;
  const loss = (ps: torch.Tensor[], step: number, k: number) =>
    ps[k]!.mul(torch.full(ps[k]!.shape, rank + 1 + step * 0.5 + k))
      .pow(2)
      .sum();
  const steps: { late: boolean; reduced: (number[] | null)[]; local: (number[] | null)[] }[] = [];
  for (const step of [0, 1, 2]) {
    [...params, ...twins].forEach((p) => p.zeroGrad());
    r.arm();
    for (const ps of [params, twins]) {
      loss(ps, step, 0)
        .add(loss(ps, step, 2))
        .add(loss(ps, step, 3))
        .backward();
      if (step > 0) loss(ps, step, 1).backward();
    }
    const mine = r.wait();
    const flag = torch.tensor([mine ? 1 : 0], [1]);
    dist.allReduce(flag, 'max');
    r.writeBack(flag.item() > 0);
    steps.push({
      late: mine,
      reduced: params.map((p) => p.grad?.toArray() ?? null),
      local: twins.map((p) => p.grad?.toArray() ?? null),
    });
  }
  out.steps = steps;
  r.dispose();
} else if (kase === 'peer-dies') {
  if (rank === 1) process.exit(3);
  const t0 = performance.now();
  try {
    dist.allReduce(torch.ones([4]));
    out.error = null;
  } catch (e) {
    out.error = (e as Error).message;
  }
  out.seconds = (performance.now() - t0) / 1000;
}
dist.destroy();
console.log(JSON.stringify(out));
