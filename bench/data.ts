// `npm run bench:data`: preprocessing throughput on a generated 512×512×300 CT (vs the CT-CLIP-style
// nibabel + torch pipeline in Python, same run) and loader throughput for the cpu-96 preset.
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeNiftiSync } from '../src/io/nifti.js';
import { loadPreset } from '../src/data/presets.js';
import { generateCase } from '../src/data/synth/generate.js';
import { lpsArrayAffine, writeSynthDataset } from '../src/data/synth/dataset.js';
import { readSource } from '../src/data/sources.js';
import { buildCache } from '../src/data/cache.js';
import { Loader } from '../src/data/loader.js';
import { getNumThreads } from '../src/torch/index.js';
import { packageRoot } from '../src/util/paths.js';
import { pythonTwin } from './timing.js';

const work = mkdtempSync(join(tmpdir(), 't3d-bench-data-'));
const results: Record<string, unknown> = {};

// 1. A 512×512×300 volume (CT-RATE scale), written as .nii.gz.
const big = generateCase(0, 0, { inPlane: 512, fovMm: [360, 360], sliceThicknessMm: [1, 1], zExtentMm: [300, 300] });
const volPath = join(work, 'big.nii.gz');
writeNiftiSync(volPath, { data: big.stored, shape: [512, 512, big.shape[0]], affine: lpsArrayAffine(big.shape, big.spacing), datatype: 'int16' });
const inputMB = (big.stored.length * 2) / 1e6;
console.log(`volume: 512×512×${big.shape[0]} int16 (${inputMB.toFixed(0)} MB uncompressed, ${(statSync(volPath).size / 1e6).toFixed(0)} MB .nii.gz), spacing ${big.spacing.join('×')} mm`);
const manifest = join(work, 'manifest.csv');
writeFileSync(manifest, `path,report\n${volPath},x\n`);
const preset = loadPreset('ct-rate-480');
const tsTimes: number[] = [];
for (let rep = 0; rep < 3; rep++) {
  const out = join(work, `cache${rep}`);
  const t0 = performance.now();
  const r = await buildCache(readSource(manifest), preset, out);
  tsTimes.push((performance.now() - t0) / 1000);
  if (r.done !== 1) throw new Error(`preprocessing failed: ${JSON.stringify(r.quarantined)}`);
  rmSync(out, { recursive: true });
}
const ts = tsTimes.sort((a, b) => a - b)[1]!;
const py = pythonTwin<{ seconds: number }>('data_bench.py', [volPath, join(work, 'py.npy'), '1', String(big.rescaleIntercept), String(getNumThreads())], 'torch, nibabel')?.seconds;
results.preprocess = { seconds: ts, mbPerS: inputMB / ts, volumesPerMin: 60 / ts, python: py, ratio: py ? ts / py : undefined };
console.log(`preprocess to ct-rate-480: TypeScript ${ts.toFixed(2)} s (${(inputMB / ts).toFixed(0)} MB/s, ${(60 / ts).toFixed(1)} volumes/min)` +
  (py ? `; nibabel + torch ${py.toFixed(2)} s; time ratio TS/Python ${(ts / py).toFixed(2)}` : '; no python torch + nibabel'));

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
  for await (const b of loader.epoch(0)) { batches += 1; void b; }
  const secs = (performance.now() - start) / 1000;
  await loader.close();
  const views = batches * 8 * (1 + 4);
  results[`loader_${workers}w`] = { batchesPerS: batches / secs, viewsPerS: views / secs, maxRssMB: process.resourceUsage().maxRSS / 1024 };
  console.log(`loader cpu-96, batch 8 × (1 global + 4 local), ${workers} worker(s): ${(batches / secs).toFixed(2)} batches/s, ${(views / secs).toFixed(0)} views/s; peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`);
}
results.synth = { volumes: 48, seconds: genS, volumesPerMin: (48 / genS) * 60 };
console.log(`synth cpu-96: ${((48 / genS) * 60).toFixed(0)} volumes/min (${(genS / 48 * 1000).toFixed(0)} ms per volume, all cores)`);
const outDir = join(packageRoot(), 'runs', 'bench');
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, 'data.json'), JSON.stringify({ date: new Date().toISOString(), results }, null, 2));
rmSync(work, { recursive: true });
