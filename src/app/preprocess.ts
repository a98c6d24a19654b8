// `t3d preprocess`: a dataset (CT-RATE layout or manifest) → preprocessed cache for a preset.
import { availableParallelism } from 'node:os';
import * as torch from '../torch/index.js';
import { loadPreset } from '../data/presets.js';
import { readSource } from '../data/sources.js';
import { buildCache } from '../data/cache.js';
import { Progress } from '../util/progress.js';
import { UsageError, parseOptions } from './args.js';

export async function runPreprocess(args: string[]): Promise<void> {
  const o = parseOptions(args, {
    data: 'string',
    preset: 'string',
    out: 'string',
    readers: 'number',
    prefetch: 'number',
  });
  if (!o.data || !o.out) throw new Error('preprocess: --data <dir|manifest> and --out <cache-dir> are required');
  const preset = loadPreset((o.preset as string | undefined) ?? 'cpu-96');
  const source = readSource(o.data as string);
  const progress = new Progress('preprocess', source.records.length);
  const t0 = Date.now();
  const cores = availableParallelism();
  const readers = (o.readers as number | undefined) ?? Math.max(1, Math.floor(cores / 2));
  if (!(Number.isInteger(readers) && readers >= 1))
    throw new UsageError(`preprocess: --readers must be a positive integer, got ${readers}`);
  // the main thread resamples on the cores the readers leave (measured: oversubscribing 2 cores costs 25 %)
  if (!process.env.T3D_NUM_THREADS) torch.setNumThreads(Math.max(1, cores - readers));
  const prefetch = (o.prefetch as number | undefined) ?? readers + 1;
  const r = await buildCache(source, preset, o.out as string, {
    readers,
    prefetch,
    onProgress: (d, _t, name) => progress.update(d, name),
  });
  const secs = (Date.now() - t0) / 1000;
  const elsewhere = r.elsewhere ? `, ${r.elsewhere} left to other processes` : '';
  console.log(
    `preprocess: ${r.done} processed, ${r.skipped} unchanged, ${r.quarantined.length} quarantined${elsewhere} in ${secs.toFixed(1)} s → ${o.out} (preset ${preset.name})`,
  );
  for (const q of r.quarantined) console.log(`  quarantined ${q.name}: ${q.reason}`);
}
