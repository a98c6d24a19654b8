// `npm run bench:data`: preprocessing of a generated 512×512×300 CT, one volume and a stream of copies (vs the
// CT-CLIP-style nibabel + torch pipeline in Python and vs gunzip alone, same run), and loader throughput for cpu-96.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeNiftiSync } from '../src/io/nifti-write.js';
import { gunzipEngine, gunzipSync as gunzipInto } from '../src/io/gzip.js';
import { loadPreset } from '../src/data/presets.js';
import { generateCase } from '../src/data/synth/generate.js';
import { lpsArrayAffine, writeSynthDataset } from '../src/data/synth/dataset.js';
import { readSource } from '../src/data/sources.js';
import { buildCache } from '../src/data/cache.js';
import { Loader } from '../src/data/loader.js';
import { getNumThreads, setNumThreads } from '../src/torch/index.js';
import { packageRoot } from '../src/util/paths.js';
import { pythonTwin, timed } from './timing.js';

const work = mkdtempSync(join(tmpdir(), 't3d-bench-data-'));
const results: Record<string, unknown> = {};

// 1. A 512×512×300 volume (CT-RATE scale), written as .nii.gz.
const big = generateCase(0, 0, { inPlane: 512, fovMm: [360, 360], sliceThicknessMm: [1, 1], zExtentMm: [300, 300] });
const volPath = join(work, 'big.nii.gz');
writeNiftiSync(volPath, {
  data: big.stored,
  shape: [512, 512, big.shape[0]],
  affine: lpsArrayAffine(big.shape, big.spacing),
  datatype: 'int16',
});
const inputMB = (big.stored.length * 2) / 1e6;
console.log(
  `volume: 512×512×${big.shape[0]} int16 (${inputMB.toFixed(0)} MB uncompressed, ${(statSync(volPath).size / 1e6).toFixed(0)} MB .nii.gz), spacing ${big.spacing.join('×')} mm`,
);
const preset = loadPreset('ct-rate-480');
const cores = availableParallelism();
const readers = Math.max(1, Math.floor(cores / 2)); // `t3d preprocess`'s defaults
setNumThreads(Math.max(1, cores - readers));
let cpuPerVolume = 0;
/** Seconds per volume for `t3d preprocess` of n copies of the volume (n = 1: the latency of one); sets
 * cpuPerVolume, the process's CPU seconds per volume (all threads): what N processes over one cache divide. */
async function cachePerVolume(n: number): Promise<number> {
  const lines = ['path,report'];
  for (let i = 0; i < n; i++) {
    const p = join(work, `copy${i}.nii.gz`);
    copyFileSync(volPath, p);
    lines.push(`${p},x`);
  }
  writeFileSync(join(work, 'manifest.csv'), lines.join('\n') + '\n');
  const out = join(work, 'cache');
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const r = await buildCache(readSource(join(work, 'manifest.csv')), preset, out, { readers, prefetch: readers + 1 });
  const secs = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  cpuPerVolume = (cpu.user + cpu.system) / 1e6 / n;
  if (r.done !== n) throw new Error(`preprocessing failed: ${JSON.stringify(r.quarantined)}`);
  rmSync(out, { recursive: true });
  return secs / n;
}
const median3 = (xs: number[]) => xs.sort((a, b) => a - b)[1]!;
const latency = median3([await cachePerVolume(1), await cachePerVolume(1), await cachePerVolume(1)]);
const STREAM = 8;
const stream = await cachePerVolume(STREAM);
const streamCpu = cpuPerVolume;
const file = readFileSync(volPath);
// gunzip alone, by Node's zlib and by the engine preprocessing used (libdeflate when built; io/gzip); libdeflate
// inflates into one buffer, reused as preprocessing reuses its buffers, so that it is timed without page faults
const gunzip = timed(
  () => {
    gunzipSync(file);
  },
  1,
  3,
);
const inflated = new Uint8Array(big.stored.length * 2 + 4096);
const engineGunzip = timed(
  () => {
    gunzipInto(file, inflated.length, inflated);
  },
  1,
  3,
);
const py = pythonTwin<{ seconds: number }>(
  'data_bench.py',
  [volPath, join(work, 'py.npy'), '1', String(big.rescaleIntercept), String(cores)],
  'torch, nibabel',
)?.seconds;
results.preprocess = {
  latencySeconds: latency,
  streamSecondsPerVolume: stream,
  streamCpuSecondsPerVolume: streamCpu,
  streamVolumes: STREAM,
  readers,
  resampleThreads: getNumThreads(),
  volumesPerMin: 60 / stream,
  mbPerS: inputMB / stream,
  gunzipSeconds: gunzip,
  gunzipEngine,
  engineGunzipSeconds: engineGunzip,
  python: py,
  ratioStreamToPython: py ? stream / py : undefined,
  ratioLatencyToPython: py ? latency / py : undefined,
  ratioStreamToGunzip: stream / gunzip,
  ratioStreamToEngineGunzip: stream / engineGunzip,
};
console.log(
  `preprocess to ct-rate-480 (${readers} reader(s), ${getNumThreads()} resampling thread(s)): one volume ${latency.toFixed(2)} s; a stream of ${STREAM} ` +
    `${stream.toFixed(2)} s per volume (${(60 / stream).toFixed(1)} volumes/min, ${(inputMB / stream).toFixed(0)} MB/s, ${streamCpu.toFixed(2)} CPU-s); gunzip alone: zlib ${gunzip.toFixed(2)} s (stream/gunzip ${(stream / gunzip).toFixed(2)}), ` +
    `${gunzipEngine} ${engineGunzip.toFixed(2)} s (stream/gunzip ${(stream / engineGunzip).toFixed(2)})` +
    (py
      ? `; nibabel + torch (${cores} threads) ${py.toFixed(2)} s; time ratio TS/Python: stream ${(stream / py).toFixed(2)}, one volume ${(latency / py).toFixed(2)}`
      : '; no python torch + nibabel'),
);
setNumThreads(cores);

// 2. Loader throughput on cpu-96: views per second vs batch size 8, 4 local views.
const synth = join(work, 'synth');
const t0 = performance.now();
await writeSynthDataset({ out: synth, count: 48, seed: 1, preset: loadPreset('cpu-96') });
const genS = (performance.now() - t0) / 1000;
await buildCache(readSource(synth), loadPreset('cpu-96'), join(work, 'cache96'));
for (const workers of [1, 2]) {
  const loader = new Loader({ cacheDir: join(work, 'cache96'), batchSize: 8, seed: 0, workers, prefetch: 2 });
  const start = performance.now();
  let batches = 0;
  for await (const b of loader.epoch(0)) {
    batches += 1;
    void b;
  }
  const secs = (performance.now() - start) / 1000;
  await loader.close();
  const views = batches * 8 * (1 + 4);
  results[`loader_${workers}w`] = {
    batchesPerS: batches / secs,
    viewsPerS: views / secs,
    maxRssMB: process.resourceUsage().maxRSS / 1024,
  };
  console.log(
    `loader cpu-96, batch 8 × (1 global + 4 local), ${workers} worker(s): ${(batches / secs).toFixed(2)} batches/s, ${(views / secs).toFixed(0)} views/s; peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`,
  );
}
results.synth = { volumes: 48, seconds: genS, volumesPerMin: (48 / genS) * 60 };
console.log(
  `synth cpu-96: ${((48 / genS) * 60).toFixed(0)} volumes/min (${((genS / 48) * 1000).toFixed(0)} ms per volume, all cores)`,
);
const outDir = join(packageRoot(), 'runs', 'bench');
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, 'data.json'), JSON.stringify({ date: new Date().toISOString(), results }, null, 2));
rmSync(work, { recursive: true });
