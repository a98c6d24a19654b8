// `t3d eval compare`'s outputs: the study table over <study>/<method>-s<seed>/eval records as markdown and as
// a self-contained HTML report.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readJsonFile } from '../../util/files.js';
import { collectStudy, studyMarkdown, studyTable } from './compare.js';
import { type LabelSubset } from './headlines.js';
import { studyReportHtml } from './html.js';

/** A labels file: {"name": ..., "labels": [...]} (name defaults to 'subset'). */
export function readLabelSubset(path: string): LabelSubset {
  const s = readJsonFile<{ name?: string; labels?: unknown }>(path);
  if (!Array.isArray(s.labels) || !s.labels.every((l) => typeof l === 'string')) {
    throw new Error(`--subset ${path}: expected {"name": ..., "labels": ["Lung nodule", ...]}`);
  }
  return { name: s.name ?? 'subset', labels: s.labels as string[] };
}

export interface StudyOptions {
  /** output folder (default: the study folder) */
  out?: string;
  /** HTML report path (default: <out>/study.html) */
  report?: string;
  treatment?: string;
  baseline?: string;
  resamples?: number;
  subset?: LabelSubset;
}

export interface StudyWritten {
  md: string;
  mdPath: string;
  report: string;
}

/** Writes <out>/study.md and the HTML report; returns the markdown and where both went. */
export async function writeStudy(runs: string, o: StudyOptions): Promise<StudyWritten> {
  const methods = collectStudy(runs, 'eval', o.subset);
  if (!methods.length) throw new Error(`${runs}: no <method>-s<seed>/eval/*.json records found`);
  const t = studyTable(methods, { treatment: o.treatment, baseline: o.baseline, resamples: o.resamples });
  const out = o.out ?? runs;
  mkdirSync(out, { recursive: true });
  const md = studyMarkdown(methods, t, `Study: ${methods.map((m) => m.name).join(', ')}`);
  const mdPath = join(out, 'study.md');
  writeFileSync(mdPath, md);
  const report = o.report ?? join(out, 'study.html');
  writeFileSync(report, await studyReportHtml(methods, t, { title: 'T3D evaluation study' }));
  return { md, mdPath, report };
}
