// Writes a synthetic dataset in CT-RATE's layout (volumes, reports, metadata, labels) plus organ masks.
// Cases are generated on worker threads; each finished case leaves a small record so that a rerun
// skips it, and the CSVs are written (atomically) once every case is done.
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { type Mat4 } from '../../io/nifti.js';
import { writeNiftiSync } from '../../io/nifti-write.js';
import { writeCtSeries } from '../../io/dicom/write.js';
import { toCsv } from '../../text/csv.js';
import { runPool } from '../../util/pool.js';
import { readJsonFile } from '../../util/files.js';
import { type Preset } from '../presets.js';
import { MASK_CLASSES } from '../../domain/ct-rate.js';
import { generateCase, type HuStorage } from './generate.js';
import { SYNTH_VERSIONS, synthLabels, type SynthVersion } from './local-findings.js';
import { synthGeometry, type SynthGeometry } from './geometry.js';
import { type ReportStyle } from './reports-realistic.js';

export interface SynthOptions {
  out: string;
  count: number;
  seed: number;
  preset: Preset;
  storage?: HuStorage;
  /** generator version (default 1; 2 adds the local findings and their label columns, local-findings.ts) */
  version?: SynthVersion;
  /** fraction of cases in the validation split */
  validFraction?: number;
  /** also write each volume as a DICOM CT series under dicom/<name>/ */
  dicom?: boolean;
  /** how the reports are written (default 'templated'; the images and labels do not depend on it) */
  reportStyle?: ReportStyle;
  workers?: number;
  onProgress?: (done: number, total: number, name: string) => void;
}

export interface CaseTask {
  index: number;
  split: 'train' | 'valid';
  name: string;
  volumePath: string;
  maskPath: string;
  recordPath: string;
  dicomDir: string;
}
export interface WorkerInit {
  seed: number;
  geometry: SynthGeometry;
  storage: HuStorage;
  dicom: boolean;
  reportStyle?: ReportStyle;
  version: SynthVersion;
}

/** What each case contributes to the CSVs. */
interface CaseRecord {
  name: string;
  split: 'train' | 'valid';
  report: { clinical: string; technique: string; findings: string; impressions: string };
  labels: number[];
  metadata: { slope: number; intercept: number; xy: number; z: number; position: number[] };
}

/** CT-RATE naming: <split>_<patient>_<scan>_<reconstruction>, in split/patient/scan folders. */
export function caseTasks(out: string, count: number, validFraction: number): CaseTask[] {
  const nValid = Math.round(count * validFraction);
  return Array.from({ length: count }, (_, index) => {
    const split = index < count - nValid ? ('train' as const) : ('valid' as const);
    const n = split === 'train' ? index + 1 : index - (count - nValid) + 1;
    const name = `${split}_${n}_a_1`;
    const rel = join(split, `${split}_${n}`, `${split}_${n}_a`);
    return {
      index,
      split,
      name,
      volumePath: join(out, 'dataset', rel, `${name}.nii.gz`),
      maskPath: join(out, 'dataset', 'masks', rel, `${name}_mask.nii.gz`),
      recordPath: join(out, '.synth', `${index}.json`),
      dicomDir: join(out, 'dicom', name),
    };
  });
}

/** RAS affine of a (W, H, D) array whose i runs to the patient's left, j to posterior, k superior. */
export function lpsArrayAffine(shape: [number, number, number], spacing: [number, number, number]): Mat4 {
  const [d, h, w] = shape;
  const [sx, sy, sz] = spacing;
  return [
    [-sx, 0, 0, ((w - 1) / 2) * sx],
    [0, -sy, 0, ((h - 1) / 2) * sy],
    [0, 0, sz, (-(d - 1) / 2) * sz],
    [0, 0, 0, 1],
  ];
}

export function generateCaseFiles(task: CaseTask, init: WorkerInit): CaseRecord {
  const c = generateCase(init.seed, task.index, init.geometry, init.storage, {
    version: init.version,
    reportStyle: init.reportStyle,
  });
  const [d, h, w] = c.shape;
  const affine = lpsArrayAffine(c.shape, c.spacing);
  mkdirSync(dirname(task.volumePath), { recursive: true });
  mkdirSync(dirname(task.maskPath), { recursive: true });
  writeNiftiSync(task.maskPath, {
    data: c.mask,
    shape: [w, h, d],
    affine,
    datatype: 'uint8',
    description: MASK_CLASSES.join(','),
  });
  writeNiftiSync(task.volumePath, { data: c.stored, shape: [w, h, d], affine, datatype: 'int16' });
  if (init.dicom) {
    // A series appears under its final name only once every slice is written.
    const tmp = `${task.dicomDir}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    writeCtSeries(tmp, {
      data: c.stored,
      shape: [w, h, d],
      affine,
      rescaleSlope: c.rescaleSlope,
      rescaleIntercept: c.rescaleIntercept,
      patientId: task.name,
    });
    rmSync(task.dicomDir, { recursive: true, force: true });
    renameSync(tmp, task.dicomDir);
  }
  const record: CaseRecord = {
    name: task.name,
    split: task.split,
    report: c.report,
    labels: c.labels,
    // DICOM ImagePositionPatient is LPS: the RAS origin with x and y negated.
    metadata: {
      slope: c.rescaleSlope,
      intercept: c.rescaleIntercept,
      xy: c.spacing[0],
      z: c.spacing[2],
      position: [-affine[0]![3]!, -affine[1]![3]!, affine[2]![3]!],
    },
  };
  mkdirSync(dirname(task.recordPath), { recursive: true });
  writeAtomic(task.recordPath, JSON.stringify(record));
  return record;
}

function writeAtomic(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

const fmt = (v: number) => String(Math.round(v * 1e6) / 1e6);

function writeCsvs(out: string, records: CaseRecord[], labelNames: string[]): void {
  for (const split of ['train', 'valid'] as const) {
    const rows = records.filter((r) => r.split === split);
    const file = (sub: string, name: string) => join(out, 'dataset', sub, name);
    const tag = split === 'train' ? 'train' : 'validation';
    mkdirSync(join(out, 'dataset', 'radiology_text_reports'), { recursive: true });
    mkdirSync(join(out, 'dataset', 'metadata'), { recursive: true });
    mkdirSync(join(out, 'dataset', 'multi_abnormality_labels'), { recursive: true });
    writeAtomic(
      file('radiology_text_reports', `${tag}_reports.csv`),
      toCsv(
        rows.map((r) => ({
          VolumeName: `${r.name}.nii.gz`,
          ClinicalInformation_EN: r.report.clinical,
          Technique_EN: r.report.technique,
          Findings_EN: r.report.findings,
          Impressions_EN: r.report.impressions,
        })),
        ['VolumeName', 'ClinicalInformation_EN', 'Technique_EN', 'Findings_EN', 'Impressions_EN'],
      ),
    );
    writeAtomic(
      file('metadata', `${tag}_metadata.csv`),
      toCsv(
        rows.map((r) => ({
          VolumeName: `${r.name}.nii.gz`,
          RescaleSlope: fmt(r.metadata.slope),
          RescaleIntercept: fmt(r.metadata.intercept),
          XYSpacing: `[${fmt(r.metadata.xy)}, ${fmt(r.metadata.xy)}]`,
          ZSpacing: fmt(r.metadata.z),
          ImagePositionPatient: `[${r.metadata.position.map(fmt).join(', ')}]`,
          ImageOrientationPatient: '[1, 0, 0, 0, 1, 0]',
        })),
        [
          'VolumeName',
          'RescaleSlope',
          'RescaleIntercept',
          'XYSpacing',
          'ZSpacing',
          'ImagePositionPatient',
          'ImageOrientationPatient',
        ],
      ),
    );
    writeAtomic(
      file('multi_abnormality_labels', `${split === 'train' ? 'train' : 'valid'}_predicted_labels.csv`),
      toCsv(
        rows.map((r) => ({
          VolumeName: `${r.name}.nii.gz`,
          ...Object.fromEntries(labelNames.map((l, i) => [l, String(r.labels[i])])),
        })),
        ['VolumeName', ...labelNames],
      ),
    );
  }
}

/** Generates (or completes) a dataset; returns how many cases were generated in this run. */
export async function writeSynthDataset(
  o: SynthOptions,
): Promise<{ generated: number; skipped: number; failed: string[] }> {
  if (!Number.isInteger(o.count) || o.count < 1) throw new Error(`--count must be a positive integer, got ${o.count}`);
  const version = o.version ?? 1;
  if (!SYNTH_VERSIONS.includes(version))
    throw new Error(`synthetic generator version must be one of ${SYNTH_VERSIONS.join(', ')}, got ${String(version)}`);
  const tasks = caseTasks(o.out, o.count, o.validFraction ?? 0.2);
  const records = new Map<number, CaseRecord>();
  const todo: CaseTask[] = [];
  for (const t of tasks) {
    if (
      existsSync(t.recordPath) &&
      existsSync(t.volumePath) &&
      existsSync(t.maskPath) &&
      (!o.dicom || existsSync(t.dicomDir))
    ) {
      records.set(t.index, readJsonFile<CaseRecord>(t.recordPath));
    } else todo.push(t);
  }
  const infoPath = join(o.out, 'dataset', 'synth.json');
  const info = {
    generator: 't3d synth',
    seed: o.seed,
    preset: o.preset.name,
    count: o.count,
    storage: o.storage ?? 'raw',
    // written only when not the default, so that a default dataset's synth.json stays as it was
    ...(version === 1 ? {} : { version }),
    ...(o.reportStyle && o.reportStyle !== 'templated' ? { reportStyle: o.reportStyle } : {}),
    labels: synthLabels(version),
    maskClasses: MASK_CLASSES,
  };
  if (existsSync(infoPath)) {
    const prev = readJsonFile<typeof info & { version?: SynthVersion; reportStyle?: string }>(infoPath);
    const was = prev.version ?? 1;
    const style = (i: { reportStyle?: string }) => i.reportStyle ?? 'templated';
    if (
      prev.seed !== info.seed ||
      prev.preset !== info.preset ||
      prev.storage !== info.storage ||
      was !== version ||
      style(prev) !== style(info)
    ) {
      throw new Error(
        `${o.out}: holds a dataset made with seed ${prev.seed}, preset ${prev.preset}, storage ${prev.storage}, ` +
          `generator version ${was}, report style ${style(prev)}; use another --out or the same settings to resume`,
      );
    }
  }
  mkdirSync(join(o.out, 'dataset'), { recursive: true });
  writeAtomic(infoPath, JSON.stringify(info, null, 2) + '\n');
  const failed: string[] = [];
  let done = tasks.length - todo.length;
  await runPool<CaseTask, CaseRecord>(new URL('./worker.js', import.meta.url), todo, {
    size: o.workers ?? availableParallelism(),
    init: {
      seed: o.seed,
      geometry: synthGeometry(o.preset),
      storage: o.storage ?? 'raw',
      dicom: o.dicom ?? false,
      version,
      reportStyle: o.reportStyle,
    } satisfies WorkerInit,
    onResult: (r) => {
      done += 1;
      if (r.result) records.set(r.task.index, r.result);
      else failed.push(`${r.task.name}: ${r.error}`);
      o.onProgress?.(done, tasks.length, r.task.name);
    },
  });
  if (failed.length === 0)
    writeCsvs(
      o.out,
      tasks.map((t) => records.get(t.index)!),
      synthLabels(version),
    );
  return { generated: todo.length - failed.length, skipped: tasks.length - todo.length, failed };
}
