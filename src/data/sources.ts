// Where volumes come from: a CT-RATE-layout folder (what `t3d synth` writes, or the real dataset) or a
// generic manifest (CSV or JSONL with path, report, labels, optional mask).
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { csvRows } from '../text/csv.js';
import { reportSections, reportText } from '../text/report.js';

export interface SourceRecord {
  name: string;
  path: string;
  split: string;
  report: string;
  labels: number[];
  maskPath?: string;
  /** stored → HU, when the dataset's metadata gives it */
  rescale?: { slope: number; intercept: number };
}
export interface Source {
  records: SourceRecord[];
  labelNames: string[];
}

const SPLITS = [
  {
    split: 'train',
    folder: 'train',
    reports: 'train_reports.csv',
    metadata: 'train_metadata.csv',
    labels: 'train_predicted_labels.csv',
  },
  {
    split: 'valid',
    folder: 'valid',
    reports: 'validation_reports.csv',
    metadata: 'validation_metadata.csv',
    labels: 'valid_predicted_labels.csv',
  },
];

function walk(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (/\.nii(\.gz)?$/.test(e.name)) out.push(p);
  }
  return out;
}

const stem = (p: string) => basename(p).replace(/\.nii(\.gz)?$/, '');

/** Reads a CT-RATE-style folder (the folder holding `dataset/`, or `dataset/` itself). */
export function readCtRate(root: string): Source {
  const ds = existsSync(join(root, 'dataset')) ? join(root, 'dataset') : root;
  const found = SPLITS.filter((s) => existsSync(join(ds, 'radiology_text_reports', s.reports)));
  if (found.length === 0)
    throw new Error(
      `${root}: no CT-RATE layout found ` +
        '(expected dataset/radiology_text_reports/train_reports.csv or validation_reports.csv)',
    );
  const records: SourceRecord[] = [];
  let labelNames: string[] = [];
  for (const s of found) {
    const csv = (sub: string, file: string) => {
      const p = join(ds, sub, file);
      return existsSync(p) ? csvRows(readFileSync(p, 'utf8'), p) : [];
    };
    const reports = new Map(csv('radiology_text_reports', s.reports).map((r) => [stem(r.VolumeName ?? ''), r]));
    const meta = new Map(csv('metadata', s.metadata).map((r) => [stem(r.VolumeName ?? ''), r]));
    const labelRows = csv('multi_abnormality_labels', s.labels);
    if (labelRows.length) labelNames = Object.keys(labelRows[0]!).filter((k) => k !== 'VolumeName');
    const labels = new Map(labelRows.map((r) => [stem(r.VolumeName ?? ''), labelNames.map((l) => Number(r[l] ?? 0))]));
    const volumes = existsSync(join(ds, s.folder)) ? walk(join(ds, s.folder)) : [];
    for (const path of volumes.sort()) {
      const name = stem(path);
      const rep = reports.get(name);
      const m = meta.get(name);
      const rel = dirname(path).slice(join(ds, s.folder).length);
      const maskPath = join(ds, 'masks', s.folder, rel, `${name}_mask.nii.gz`);
      records.push({
        name,
        path,
        split: s.split,
        report: rep ? reportText(reportSections(rep)) : '',
        labels: labels.get(name) ?? [],
        maskPath: existsSync(maskPath) ? maskPath : undefined,
        rescale:
          m && m.RescaleSlope !== undefined
            ? { slope: Number(m.RescaleSlope), intercept: Number(m.RescaleIntercept) }
            : undefined,
      });
    }
  }
  return { records, labelNames };
}

/**
 * A manifest: CSV with columns path, report, [split], [mask], and one 0/1 column per label; or JSONL with
 * {path, report, split?, mask?, labels?: {name: 0|1}}. Relative paths are relative to the manifest.
 */
export function readManifest(file: string): Source {
  const base = dirname(resolve(file));
  const abs = (p: string) => (isAbsolute(p) ? p : join(base, p));
  const text = readFileSync(file, 'utf8');
  const rows: Record<string, unknown>[] = file.endsWith('.jsonl')
    ? text
        .split('\n')
        .filter((l) => l.trim())
        .map((l, i) => {
          try {
            return JSON.parse(l) as Record<string, unknown>;
          } catch (e) {
            throw new Error(`${file}:${i + 1}: not JSON (${(e as Error).message})`);
          }
        })
    : csvRows(text, file);
  const fixed = new Set(['path', 'report', 'split', 'mask', 'labels', 'name']);
  const labelNames = file.endsWith('.jsonl')
    ? [...new Set(rows.flatMap((r) => Object.keys((r.labels as Record<string, number> | undefined) ?? {})))]
    : Object.keys(rows[0] ?? {}).filter((k) => !fixed.has(k));
  const records = rows.map((r, i) => {
    if (typeof r.path !== 'string' || !r.path) throw new Error(`${file}: row ${i + 1} has no path`);
    const lab = file.endsWith('.jsonl')
      ? ((r.labels as Record<string, number> | undefined) ?? {})
      : (r as Record<string, string>);
    return {
      name: typeof r.name === 'string' && r.name ? r.name : stem(r.path),
      path: abs(r.path),
      split: typeof r.split === 'string' && r.split ? r.split : 'train',
      report: typeof r.report === 'string' ? r.report : '',
      labels: labelNames.map((l) => Number(lab[l] ?? 0)),
      maskPath: typeof r.mask === 'string' && r.mask ? abs(r.mask) : undefined,
    };
  });
  return { records, labelNames };
}

export function readSource(pathOrDir: string): Source {
  if (!existsSync(pathOrDir)) throw new Error(`${pathOrDir}: no such file or folder`);
  return statSync(pathOrDir).isDirectory() ? readCtRate(pathOrDir) : readManifest(pathOrDir);
}
