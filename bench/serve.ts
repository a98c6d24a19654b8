// `npm run bench:serve`: request latency of `t3d serve` for text search (the report encoder embeds the query, then
// the index is searched) with 1 and with 32 requests in flight, and for a cheap route (/api/case) under the same
// load. CHECKPOINT (default runs/demo/t3d-s0: `npm run demo` makes it) gives the model; the index is ROWS
// (default 10,000) unit vectors of the model's size under that checkpoint's id, so the search cost is that of a
// 10,000-case index. REQUESTS (default 640) per setting, each with its own query text.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../src/app/serve.js';
import { VectorIndex, type IndexRow } from '../src/search/vector-index.js';
import { openAnalyzer } from '../src/app/analyze.js';
import { Rng } from '../src/util/rng.js';

const checkpoint = process.env.CHECKPOINT ?? join('runs', 'demo', 't3d-s0');
if (!existsSync(checkpoint))
  throw new Error(`CHECKPOINT ${checkpoint} does not exist: run \`npm run demo\` first or set CHECKPOINT=<run>`);
const rows = Number(process.env.ROWS ?? 10_000);
const requests = Number(process.env.REQUESTS ?? 640);
const findings = [
  'pleural effusion',
  'cardiomegaly',
  'lung nodule',
  'emphysema',
  'atelectasis',
  'consolidation',
  'hiatal hernia',
  'lymphadenopathy',
];
const sides = ['right', 'left', 'bilateral', 'small', 'large', 'mild', 'moderate', 'no'];
const query = (i: number) =>
  `${sides[i % sides.length]} ${findings[Math.floor(i / sides.length) % findings.length]} ${i}`;
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
};

const dir = mkdtempSync(join(tmpdir(), 't3d-bench-serve-'));
try {
  // the index: the checkpoint's table filled with synthetic unit vectors of its embedding size
  const analyzer = await openAnalyzer({ checkpoint, log: (l) => console.error(l) });
  const { checkpointId } = analyzer;
  const D = analyzer.embedTexts(['probe'])[0]!.length;
  analyzer.dispose();
  const rng = new Rng(0);
  const index = await VectorIndex.open(dir, checkpointId);
  for (let at = 0; at < rows; at += 5000) {
    await index.add(
      Array.from({ length: Math.min(5000, rows - at) }, (_, j): IndexRow => {
        const v = Array.from({ length: D }, () => rng.normal(0, 1));
        const n = Math.hypot(...v);
        return {
          id: `case_${at + j}`,
          source: 'volumes/none.safetensors',
          split: 'train',
          report: 'No pleural effusion. Heart size is normal.',
          labels: [],
          findings: {},
          checkpointId,
          vector: v.map((x) => x / n),
        };
      }),
    );
  }
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
