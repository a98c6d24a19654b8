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
  const all = torch.tensor(Array.from({ length: worldSize * 2 * 3 }, (_, i) => Math.sin(i + 1)), [worldSize * 2, 3]);
  const x = all.narrow(0, rank * 2, 2).clone().requiresGrad_(true);
  const full = dist.gatherWithLocalGrad(x);
  const logits = full.matmul(full.T).mul(3);
  const n = worldSize * 2;
  const loss = logits.logSoftmax(1).mul(torch.eye(n)).sum().div(-n);
  loss.backward();
  out.loss = loss.item();
  out.grad = x.grad!.toArray();
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
