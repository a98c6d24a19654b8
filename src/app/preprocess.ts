// `t3d preprocess`: a dataset (CT-RATE layout or manifest) → preprocessed cache for a preset.
import { loadPreset } from '../data/presets.js';
import { readSource } from '../data/sources.js';
import { buildCache } from '../data/cache.js';
import { Progress } from '../util/progress.js';
import { parseOptions } from './args.js';

export async function runPreprocess(args: string[]): Promise<void> {
  const o = parseOptions(args, { data: 'string', preset: 'string', out: 'string', prefetch: 'number' });
  if (!o.data || !o.out) throw new Error('preprocess: --data <dir|manifest> and --out <cache-dir> are required');
  const preset = loadPreset((o.preset as string | undefined) ?? 'cpu-96');
  const source = readSource(o.data as string);
  const progress = new Progress('preprocess', source.records.length);
  const t0 = Date.now();
  const r = await buildCache(source, preset, o.out as string, { prefetch: o.prefetch as number | undefined, onProgress: (d, _t, name) => progress.update(d, name) });
  const secs = (Date.now() - t0) / 1000;
  console.log(`preprocess: ${r.done} processed, ${r.skipped} unchanged, ${r.quarantined.length} quarantined in ${secs.toFixed(1)} s → ${o.out} (preset ${preset.name})`);
  for (const q of r.quarantined) console.log(`  quarantined ${q.name}: ${q.reason}`);
}
