// `npm run bench:serve`: request latency of `t3d serve` for text search (the report encoder embeds the query, then
// the index is searched) with 1 and with 32 requests in flight, and for a cheap route (/api/case) under the same
// load. CHECKPOINT (default runs/demo/t3d-s0: `npm run demo` makes it) gives the model; the index is ROWS
// (default 10,000) unit vectors of the model's size under that checkpoint's id, so the search cost is that of a
// 10,000-case index. REQUESTS (default 640) per setting, each with its own query text.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../src/service/server.js';
import { pct, query, syntheticIndex } from './serve-index.js';

const checkpoint = process.env.CHECKPOINT ?? join('runs', 'demo', 't3d-s0');
if (!existsSync(checkpoint))
  throw new Error(`CHECKPOINT ${checkpoint} does not exist: run \`npm run demo\` first or set CHECKPOINT=<run>`);
const rows = Number(process.env.ROWS ?? 10_000);
const requests = Number(process.env.REQUESTS ?? 640);
const dir = mkdtempSync(join(tmpdir(), 't3d-bench-serve-'));
try {
  const D = await syntheticIndex(checkpoint, dir, rows);
  const line = (name: string, r: { p50: number; p99: number; rps: number }) =>
    console.log(`${name}: p50 ${r.p50.toFixed(1)} ms p99 ${r.p99.toFixed(1)} ms, ${r.rps.toFixed(1)} requests/s`);
  console.log(
    `t3d serve, ${rows} indexed rows of dimension ${D}, checkpoint ${checkpoint}, ${requests} requests per setting`,
  );
  const server = await startServer({ checkpoint, db: dir, port: 0, log: () => {} });
  try {
    const run = async (path: (i: number) => string, inFlight: number) => {
      const times: number[] = [];
      let next = 0;
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: inFlight }, async () => {
          while (next < requests) {
            const i = next++;
            const t = performance.now();
            const r = await fetch(server.url + path(i));
            if (r.status !== 200) throw new Error(`${path(i)}: ${r.status} ${await r.text()}`);
            await r.arrayBuffer();
            times.push(performance.now() - t);
          }
        }),
      );
      return { p50: pct(times, 0.5), p99: pct(times, 0.99), rps: requests / ((performance.now() - t0) / 1000) };
    };
    const search = (i: number) => `/api/search?q=${encodeURIComponent(query(i))}&k=10`;
    await run(search, 4); // warm-up
    const one = await run(search, 1);
    const many = await run(search, 32);
    line('text search, 1 in flight', one);
    line('text search, 32 in flight', many);
    line('case lookup, 32 in flight', await run((i) => `/api/case?id=case_${(i * 7919) % rows}`, 32));
    console.log(
      `ratios: search p50 at 32 in flight / at 1: ${(many.p50 / one.p50).toFixed(2)}; throughput at 32 / at 1: ${(many.rps / one.rps).toFixed(2)}`,
    );
  } finally {
    await server.close();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
