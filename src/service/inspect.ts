// `t3d inspect`: one scan's checks (data/scan-checks.ts) against a model's preset — a checkpoint's own (read from its
// config, without loading the model) or a named preset — and their text form, which `analyze` prints too.
import { join } from 'node:path';
import { readScan } from '../data/scan.js';
import { ScanRefusedError, inspectScan, type ScanInspection, type ScanWarning } from '../data/scan-checks.js';
import { resolvePreset, type Preset } from '../data/presets.js';
import { MODEL_FILES, resolveCheckpoint } from '../train/checkpoint.js';
import { type PretrainConfig } from '../train/config.js';
import { readJsonFile } from '../util/files.js';

/** The preset a checkpoint (or a run's newest intact checkpoint) was trained with. */
export function checkpointPreset(given: string, log: (line: string) => void): Preset {
  const dir = resolveCheckpoint(given, { requires: MODEL_FILES, log });
  if (!dir) throw new Error(`${given}: neither a checkpoint folder nor a run folder with checkpoints`);
  return resolvePreset(readJsonFile<PretrainConfig>(join(dir, 'config.json')).data.preset);
}

export type FileInspection = ScanInspection & {
  scan: string;
  /** why the scan is refused (what `analyze` and `index` say without --force), when a check refuses it */
  refused?: string;
};

/** A scan file's checks against a checkpoint's preset or a named one (given the model, `preset` or `checkpoint`). */
export async function inspectScanFile(
  scan: string,
  o: { checkpoint?: string; preset?: string | Preset; intercept?: number; log: (line: string) => void },
): Promise<FileInspection> {
  if (!o.checkpoint === !o.preset) throw new Error('inspect: give the model: --checkpoint <run> or --preset <name>');
  const preset = o.checkpoint ? checkpointPreset(o.checkpoint, o.log) : resolvePreset(o.preset!);
  const s = await readScan(scan, { intercept: o.intercept });
  let inspection: ScanInspection;
  try {
    inspection = inspectScan(s, preset);
  } finally {
    s.data.dispose();
  }
  const refused = inspection.warnings.some((w) => w.severity === 'refuse')
    ? new ScanRefusedError(scan, inspection.warnings).message
    : undefined;
  return { scan, ...inspection, ...(refused ? { refused } : {}) };
}

/** One line per warning: severity, code, message. */
export const warningLines = (warnings: ScanWarning[]): string[] =>
  warnings.map((w) => `  ${w.severity === 'refuse' ? 'REFUSED' : 'warning'} [${w.code}] ${w.message}`);

export function inspectionLines(i: FileInspection): string[] {
  const g = i.geometry,
    m = i.measures;
  const n = (v: number, d = 0) => v.toFixed(d);
  return [
    `${i.scan} — checked against preset ${i.preset}`,
    `  geometry: ${g.shape.join('×')} voxels of ${g.spacing.map((s) => n(s, 3)).join(' × ')} mm, axes ${g.axes} ` +
      `(orientation from ${g.orientation}), ${n(g.obliquityDeg, 1)}° oblique; extent ` +
      `${m.extentMm.map((e) => n(e)).join(' × ')} mm`,
    `  values: ${n(m.min)} … ${n(m.max)}, air at ${n(m.air)}` +
      `${m.padding !== null ? `, padding ${n(m.padding)}` : ''}; ` +
      `${n(100 * m.inWindow, 1)} % inside the model's HU window`,
    `  body: ${n(100 * m.body.fraction, 1)} % of voxels, largest cross-section ${n(m.body.maxCrossSectionCm2)} cm², ` +
      `lung-density air ${n(100 * m.body.enclosedAir, 1)} % of it; looks like ` +
      `${m.region === 'other' ? 'neither a head nor a chest CT' : `a ${m.region} CT`}`,
    ...(i.warnings.length ? warningLines(i.warnings) : ['  no warnings']),
  ];
}
