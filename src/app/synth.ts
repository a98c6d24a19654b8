// `t3d synth`: writes the built-in synthetic CT-RATE-like dataset.
import { availableParallelism } from 'node:os';
import { loadPreset } from '../data/presets.js';
import { writeSynthDataset } from '../data/synth/dataset.js';
import { Progress } from '../util/progress.js';
import { UsageError, parseOptions } from './args.js';

export async function runSynth(args: string[]): Promise<void> {
  const o = parseOptions(args, {
    out: 'string',
    count: 'number',
    seed: 'number',
    preset: 'string',
    storage: 'string',
    workers: 'number',
    'valid-fraction': 'number',
    dicom: 'boolean',
  });
  if (!o.out) throw new UsageError('synth: --out <dir> is required');
  const storage = (o.storage as string | undefined) ?? 'raw';
  if (storage !== 'raw' && storage !== 'hu')
    throw new Error(
      `synth: --storage must be 'raw' (CT-RATE v1: HU via metadata intercept) or 'hu' (v2), got '${storage}'`,
    );
  const preset = loadPreset((o.preset as string | undefined) ?? 'cpu-96');
  const count = (o.count as number | undefined) ?? 100;
  const progress = new Progress('synth', count);
  const t0 = Date.now();
  const r = await writeSynthDataset({
    out: o.out as string,
    count,
    seed: (o.seed as number | undefined) ?? 0,
    preset,
    storage,
    validFraction: o['valid-fraction'] as number | undefined,
    dicom: o.dicom === true,
    workers: (o.workers as number | undefined) ?? availableParallelism(),
    onProgress: (done, _total, name) => progress.update(done, name),
  });
  const secs = (Date.now() - t0) / 1000;
  console.log(
    `synth: ${r.generated} generated, ${r.skipped} already present, in ${secs.toFixed(1)} s → ${o.out}/dataset (preset ${preset.name})`,
  );
  if (r.failed.length)
    throw new Error(`synth: ${r.failed.length} cases failed (rerun to retry):\n  ${r.failed.join('\n  ')}`);
}
