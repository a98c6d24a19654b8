// `npm run experiment:extractor`: how well the rule-based label extractor (src/text/label-extractor.ts) recovers the
// true labels from synthetic reports of a style, per label and as macro F1 and accuracy. Reports come from patients
// drawn without images (generateReport: thousands per second), or from a built cache (CACHE, every split), whose
// reports are those a run trains on. Prints a markdown table.
// Env: STYLE (realistic; or templated), COUNT (5000), SEED (0), CACHE (a cache folder; STYLE, COUNT, SEED unused).
import { readCacheIndex } from '../src/data/cache.js';
import { REPORT_STYLES, type ReportStyle, generateReport } from '../src/data/synth/reports-realistic.js';
import { reportText } from '../src/text/report.js';
import { EXTRACTED_LABELS, LABEL_EXTRACTOR_VERSION, extractorScores } from '../src/text/label-extractor.js';

const style = (process.env.STYLE ?? 'realistic') as ReportStyle;
if (!REPORT_STYLES.includes(style)) throw new Error(`STYLE must be one of ${REPORT_STYLES.join(', ')}, got ${style}`);
const count = Number(process.env.COUNT ?? 5000);
const seed = Number(process.env.SEED ?? 0);
let reports: string[], labels: number[][], source: string;
if (process.env.CACHE) {
  const index = readCacheIndex(process.env.CACHE);
  reports = index.entries.map((e) => e.report);
  labels = index.entries.map((e) => e.labels);
  source = `cache ${process.env.CACHE}`;
} else {
  const drawn = Array.from({ length: count }, (_, i) => generateReport(seed, i, style));
  reports = drawn.map((d) => reportText(d.report));
  labels = drawn.map((d) => d.labels);
  source = `${count} '${style}' reports, seed ${seed}`;
}
const s = extractorScores(reports, labels);
const f = (v: number) => (Number.isNaN(v) ? '—' : v.toFixed(3));
console.log(`extractor ${LABEL_EXTRACTOR_VERSION} on ${source}\n`);
console.log('| label | prevalence | accuracy | precision | recall | F1 |\n|---|---|---|---|---|---|');
s.perLabel.forEach((p, i) =>
  console.log(
    `| ${EXTRACTED_LABELS[i]} | ${f(p.prevalence)} | ${f(p.accuracy)} | ${f(p.precision)} | ${f(p.recall)} | ${f(p.f1)} |`,
  ),
);
console.log(`| **macro** | | **${f(s.macroAccuracy)}** | | | **${f(s.macroF1)}** |`);
console.log(`\nreports with all ${EXTRACTED_LABELS.length} labels right: ${f(s.exactMatch)}`);
