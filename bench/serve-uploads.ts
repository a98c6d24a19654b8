// `npm run bench:serve-uploads -- inflight|memory`: `t3d serve` (the CLI, as a child process) under uploads.
// - inflight: text search latency, one client, with no upload and while zip uploads of MEMBERS (default 300)
//   members of 1 MiB of zeros (a zip bomb of ~300 KB) are in flight back to back, UPLOADS (default 3) of them.
// - memory: a session of 50 mixed requests (searches, case lists, info, NIfTI uploads of a 512×512×SLICES CT-sized
//   volume and of small ones, their volumes and similar cases, one zip bomb) with T3D_MALLOC=keep and =system
//   (MALLOCS, default keep,system; e.g. keep,system,system,keep alternates them): each request kind's latency, the
//   server's RSS after each request, its peak, and RSS after IDLE_S (default 30) seconds idle.
// SERVE_CLI (default this build's dist/src/app/cli.js) picks the server's build: point it at another checkout's
// build to compare code on the same machine in one session. CHECKPOINT and ROWS as in bench/serve.ts.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { type Mat4 } from '../src/io/nifti.js';
import { encodeNifti } from '../src/io/nifti-write.js';
import { packageRoot } from '../src/util/paths.js';
import { zerosZip } from '../test/zip-build.js';
import { pct, query, syntheticIndex } from './serve-index.js';

const mode = process.argv[2];
if (mode !== 'inflight' && mode !== 'memory') throw new Error('usage: serve-uploads.js inflight|memory');
const checkpoint = process.env.CHECKPOINT ?? join('runs', 'demo', 't3d-s0');
if (!existsSync(checkpoint))
  throw new Error(`CHECKPOINT ${checkpoint} does not exist: run \`npm run demo\` first or set CHECKPOINT=<run>`);
const cli = process.env.SERVE_CLI ?? join(packageRoot(), 'dist', 'src', 'app', 'cli.js');
const rows = Number(process.env.ROWS ?? 10_000);

interface Child {
  url: string;
  rss: () => number;
  peak: () => number;
  stop: () => Promise<void>;
}
/** `t3d serve` on a free port with `env` added; resolves once it listens. */
function serve(db: string, env: Record<string, string>): Promise<Child> {
  const child = spawn('node', [cli, 'serve', '--checkpoint', checkpoint, '--db', db, '--port', '0'], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const status = (key: string) => {
    const m = new RegExp(`${key}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
    return Number(m![1]) / 1024;
  };
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`t3d serve stopped (exit ${code})`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const url = /^t3d serve: (http:\/\/\S+?)\//.exec(line)?.[1];
      if (url)
        resolve({
          url,
          rss: () => status('VmRSS'),
          peak: () => status('VmHWM'),
          stop: () =>
            new Promise((done) => {
              child.removeAllListeners('exit');
              child.once('exit', () => done());
              child.kill('SIGTERM');
            }),
        });
    });
  });
}

/** One request: its time in ms; throws unless the status is one of `ok`. */
async function timed(url: string, init: RequestInit = {}, ok = [200]): Promise<{ ms: number; body: unknown }> {
  const t = performance.now();
  const r = await fetch(url, init);
  const text = await r.text();
  if (!ok.includes(r.status)) throw new Error(`${init.method ?? 'GET'} ${url}: ${r.status} ${text.slice(0, 300)}`);
  return { ms: performance.now() - t, body: text.startsWith('{') ? JSON.parse(text) : undefined };
}
const ms = (xs: number[]) => `p50 ${pct(xs, 0.5).toFixed(1)} ms, p99 ${pct(xs, 0.99).toFixed(1)} ms (n ${xs.length})`;

/** A size×size×slices NIfTI: a water ellipse in air with noise, int16 HU, 0.7 × 0.7 × 2 mm at 512. */
function ctLike(size: number, slices: number): Uint8Array<ArrayBuffer> {
  const [w, h, mm] = [size, size, (0.7 * 512) / size];
  const data = new Int16Array(w * h * slices);
  for (let z = 0, i = 0; z < slices; z++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++, i++) {
        const inside = ((x - w / 2) / (w * 0.4)) ** 2 + ((y - h / 2) / (h * 0.3)) ** 2 < 1;
        data[i] = (inside ? 40 : -1000) + ((i * 2654435761) % 61) - 30;
      }
  const affine: Mat4 = [
    [-mm, 0, 0, 0],
    [0, -mm, 0, 0],
    [0, 0, 2, 0],
    [0, 0, 0, 1],
  ];
  return new Uint8Array(encodeNifti({ data, shape: [w, h, slices], affine }));
}

const dir = mkdtempSync(join(tmpdir(), 't3d-bench-uploads-'));
try {
  const D = await syntheticIndex(checkpoint, dir, rows);
  console.log(`t3d serve (${cli}), ${rows} indexed rows of dimension ${D}, checkpoint ${checkpoint}`);
  const bomb = zerosZip(Number(process.env.MEMBERS ?? 300));
  if (mode === 'inflight') {
    const s = await serve(dir, {});
    try {
      const search = (i: number) => timed(`${s.url}/api/search?q=${encodeURIComponent(query(i))}&k=10`);
      for (let i = 0; i < 20; i++) await search(i); // warm-up
      const alone: number[] = [];
      for (let i = 0; i < 200; i++) alone.push((await search(1000 + i)).ms);
      const during: number[] = [];
      const uploads: number[] = [];
      for (let u = 0, i = 0; u < Number(process.env.UPLOADS ?? 3); u++) {
        let done = false;
        const up = timed(`${s.url}/api/upload`, { method: 'POST', body: bomb }, [200, 413, 422]).finally(
          () => (done = true),
        );
        while (!done) during.push((await search(2000 + i++)).ms);
        uploads.push((await up).ms);
      }
      console.log(`upload of a zip of ${bomb.length} bytes (${process.env.MEMBERS ?? 300} members of 1 MiB)`);
      console.log(`  each took ${uploads.map((t) => (t / 1000).toFixed(1)).join(', ')} s`);
      console.log(`search, no upload:        ${ms(alone)}`);
      console.log(`search, upload in flight: ${ms(during)}`);
      console.log(
        `ratio in flight / alone: p50 ${(pct(during, 0.5) / pct(alone, 0.5)).toFixed(2)}, ` +
          `p99 ${(pct(during, 0.99) / pct(alone, 0.99)).toFixed(2)}`,
      );
    } finally {
      await s.stop();
    }
  } else {
    const big = ctLike(512, Number(process.env.SLICES ?? 200));
    const small = ctLike(128, 50);
    for (const malloc of (process.env.MALLOCS ?? 'keep,system').split(',')) {
      const s = await serve(dir, { T3D_MALLOC: malloc });
      const times = new Map<string, number[]>();
      const rss: number[] = [];
      let last = '';
      const step = async (kind: string, url: string, init?: RequestInit, ok?: number[]) => {
        const r = await timed(`${s.url}${url}`, init, ok);
        times.set(kind, [...(times.get(kind) ?? []), r.ms]);
        rss.push(s.rss());
        return r.body as { id?: string };
      };
      try {
        for (let block = 0; block < 5; block++) {
          await step('info', '/api/info');
          await step('cases', '/api/cases?limit=50');
          await step('search', `/api/search?q=${encodeURIComponent(query(block))}&k=10`);
          const up = await step('upload CT-sized NIfTI (analyse)', '/api/upload', { method: 'POST', body: big });
          last = up.id!;
          await step('similar', `/api/similar?id=${last}&k=10`);
          await step('search', `/api/search?q=${encodeURIComponent(query(100 + block))}&k=10`);
          await step('upload volume', `/api/upload/volume?id=${last}`);
          await step('upload small NIfTI (analyse)', '/api/upload', { method: 'POST', body: small });
          await step('search', `/api/search?q=${encodeURIComponent(query(200 + block))}&k=10`);
          if (block === 2) await step('zip bomb', '/api/upload', { method: 'POST', body: bomb }, [413, 422]);
          else await step('search', `/api/search?q=${encodeURIComponent(query(300 + block))}&k=10`);
        }
        const idle = Number(process.env.IDLE_S ?? 30);
        await new Promise((r) => setTimeout(r, idle * 1000));
        console.log(`\nT3D_MALLOC=${malloc}: ${rss.length} requests`);
        for (const [kind, xs] of times) console.log(`  ${kind.padEnd(32)} ${ms(xs)}`);
        const mb = (x: number) => `${x.toFixed(0)} MB`;
        console.log(
          `  RSS after each request: ${rss.map((x) => x.toFixed(0)).join(' ')}\n  RSS peak ${mb(s.peak())}, ` +
            `at the end ${mb(rss.at(-1)!)}, after ${idle} s idle ${mb(s.rss())}`,
        );
      } finally {
        await s.stop();
      }
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
