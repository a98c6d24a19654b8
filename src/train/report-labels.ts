// The labels a run's objective.labels trains on: read from each training report by the rule-based extractor once,
// before training (the data-preparation step of the field's "CLIP + extracted labels" recipe). The cache's true
// labels are read only to log how far the extracted ones are from them; they never reach the loss.
import { type CacheEntry } from '../data/cache.js';
import { LABEL_EXTRACTOR_VERSION, extractLabels, extractorScores } from '../text/label-extractor.js';

/** Extracted labels per loader entry (the collator indexes them by entry), and a line describing them. */
export function extractReportLabels(entries: readonly Pick<CacheEntry, 'report' | 'labels'>[]): {
  labels: number[][];
  summary: string;
} {
  const reports = entries.map((e) => e.report);
  const labels = reports.map((r) => extractLabels(r));
  const s = extractorScores(
    reports,
    entries.map((e) => e.labels),
  );
  const positives = labels.reduce((n, row) => n + row.reduce((a, v) => a + v, 0), 0);
  return {
    labels,
    summary:
      `labels extracted (${LABEL_EXTRACTOR_VERSION}) from ${reports.length} training reports: ` +
      `${(positives / reports.length).toFixed(2)} positives per report; against the data set's labels ` +
      `macro F1 ${s.macroF1.toFixed(3)}, accuracy ${s.macroAccuracy.toFixed(3)}`,
  };
}
