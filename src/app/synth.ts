// `t3d synth`: writes the built-in synthetic CT-RATE-like dataset.
import { availableParallelism } from 'node:os';
import { loadPreset } from '../data/presets.js';
import { writeSynthDataset } from '../data/synth/dataset.js';
import { REPORT_STYLES, type ReportStyle } from '../data/synth/reports-realistic.js';
import { type SynthVersion } from '../data/synth/local-findings.js';
import { Progress } from '../util/progress.js';
import { UsageError, parseOptions } from './args.js';

export async function runSynth(args: string[]): Promise<void> {
  const o = parseOptions(args, {
    string: ['out', 'preset', 'storage', 'report-style'],
    number: ['count', 'seed', 'workers', 'valid-fraction', 'version'],
    boolean: ['dicom'],
  });
  if (!o.out) throw new UsageError('synth: --out <dir> is required');
  const storage = o.storage ?? 'raw';
  if (storage !== 'raw' && storage !== 'hu')
    throw new Error(
      `synth: --storage must be 'raw' (CT-RATE v1: HU via metadata intercept) or 'hu' (v2), got '${storage}'`,
    );
  const reportStyle = o['report-style'] ?? 'templated';
  if (!(REPORT_STYLES as readonly string[]).includes(reportStyle))
    throw new UsageError(`synth: --report-style must be one of ${REPORT_STYLES.join(', ')}, got '${reportStyle}'`);
  const preset = loadPreset(o.preset ?? 'cpu-96');
  const count = o.count ?? 100;
  const progress = new Progress('synth', count);
  const t0 = Date.now();
  const r = await writeSynthDataset({
    out: o.out,
    count,
    seed: o.seed ?? 0,
    preset,
    storage,
    reportStyle: reportStyle as ReportStyle,
    validFraction: o['valid-fraction'],
    version: o.version as SynthVersion | undefined,
    dicom: o.dicom === true,
    workers: o.workers ?? availableParallelism(),
    onProgress: (done, _total, name) => progress.update(done, name),
  });
  const secs = (Date.now() - t0) / 1000;
  console.log(
    `synth: ${r.generated} generated, ${r.skipped} already present, in ${secs.toFixed(1)} s → ` +
      `${o.out}/dataset (preset ${preset.name})`,
  );
  if (r.failed.length)
    throw new Error(`synth: ${r.failed.length} cases failed (rerun to retry):\n  ${r.failed.join('\n  ')}`);
}
