// Synthetic report styles: the default ('templated') writes byte for byte what it wrote before the styles existed;
// 'realistic' leaves the image and labels alone, and makes the rule-based extractor disagree with the true labels
// (below 1, above a floor) through the phenomena real reports have.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Rng } from '../src/util/rng.js';
import { loadPreset } from '../src/data/presets.js';
import { samplePatient } from '../src/data/synth/findings.js';
import { writeReport } from '../src/data/synth/reports.js';
import { generateReport, reportWriter } from '../src/data/synth/reports-realistic.js';
import { generateCase } from '../src/data/synth/generate.js';
import { synthGeometry } from '../src/data/synth/geometry.js';
import { reportText } from '../src/text/report.js';
import { EXTRACTED_LABELS, extractorScores } from '../src/text/label-extractor.js';
import { validateConfig, loadConfig } from '../src/train/config.js';

test('the default report style writes the same bytes as before report styles existed (seed 7, 300 patients)', () => {
  const hash = createHash('sha256');
  for (let i = 0; i < 300; i++) {
    const rng = new Rng(7, i);
    hash.update(JSON.stringify(writeReport(samplePatient(rng), rng, 1.5)));
  }
  // computed from the generator before the 'realistic' style was added
  assert.equal(hash.digest('hex'), '7327184bdf794f9022fde008acb7f091cc59ffde6e4479b7af60b1a9647ce581');
  assert.equal(reportWriter('templated'), writeReport);
  assert.throws(() => reportWriter('fancy' as never), /unknown report style "fancy".*templated, realistic/);
});

test("a case's image and labels do not depend on the report style; its report does", () => {
  const geo = synthGeometry(loadPreset('cpu-96'));
  const a = generateCase(5, 3, geo);
  const b = generateCase(5, 3, geo, 'raw', { reportStyle: 'realistic' });
  assert.deepEqual(a.stored, b.stored);
  assert.deepEqual(a.labels, b.labels);
  assert.notEqual(a.report.findings, b.report.findings);
  assert.equal(generateCase(5, 3, geo, 'raw', { reportStyle: 'templated' }).report.findings, a.report.findings);
});

test("'realistic' reports: extractor agreement below 1 and above a floor (2,000 reports, seed 3)", (t) => {
  const drawn = Array.from({ length: 2000 }, (_, i) => generateReport(3, i, 'realistic'));
  const reports = drawn.map((d) => reportText(d.report));
  const s = extractorScores(
    reports,
    drawn.map((d) => d.labels),
  );
  t.diagnostic(
    `macro F1 ${s.macroF1.toFixed(3)}, accuracy ${s.macroAccuracy.toFixed(3)}; ` +
      EXTRACTED_LABELS.map((l, i) => `${l} ${s.perLabel[i]!.f1.toFixed(3)}`).join(', '),
  );
  assert.ok(s.macroF1 < 0.95 && s.macroF1 > 0.8, `macro F1 ${s.macroF1}`);
  assert.ok(s.macroAccuracy < 0.99 && s.macroAccuracy > 0.93, `macro accuracy ${s.macroAccuracy}`);
  for (const [i, p] of s.perLabel.entries()) {
    assert.ok(p.f1 > 0.65 && p.f1 < 1, `${EXTRACTED_LABELS[i]}: F1 ${p.f1}`);
    assert.ok(p.prevalence > 0.03, `${EXTRACTED_LABELS[i]}: prevalence ${p.prevalence}`);
  }
  // the phenomena behind the disagreement are all there
  const share = (re: RegExp) => reports.filter((r) => re.test(r)).length / reports.length;
  for (const re of [
    /\b(?:Possible|Probable|Suspected|likely)\b/, // hedged positives
    /cannot be excluded|Questionable|has resolved|has been removed/, // uncertain or past mentions
    /\bNo [^.]* or [^.]*\./, // negation lists
    /\b(?:GGO|LAP|SPN|CAC|RLL|RUL|LUL|LLL|RML|CTR)\b/, // abbreviations
  ]) {
    assert.ok(share(re) > 0.005, `${re}: in ${share(re)} of the reports`);
  }
  // typos: the writers' vocabulary is small, so nearly every word seen once in 2,000 reports is a slip
  const seen = new Map<string, number>();
  for (const r of reports) for (const w of r.match(/[A-Za-z]{5,}/g) ?? []) seen.set(w, (seen.get(w) ?? 0) + 1);
  const once = [...seen].filter(([, n]) => n === 1).length;
  assert.ok(once > 30, `${once} words seen once`);
  // some findings are named in the findings section only
  const onlyInFindings = drawn.filter(
    (d) => d.labels.some((v) => v) && d.report.impressions.split('.').length - 1 < d.labels.filter((v) => v).length,
  ).length;
  assert.ok(onlyInFindings / drawn.length > 0.2, `impressions shorter than the findings in ${onlyInFindings} reports`);
});

test('data.synth.reportStyle is validated by name', () => {
  const cfg = loadConfig('cpu-96');
  validateConfig({ ...cfg, data: { ...cfg.data, synth: { count: 4, seed: 0, reportStyle: 'realistic' } } });
  assert.throws(
    () =>
      validateConfig({
        ...cfg,
        data: { ...cfg.data, synth: { count: 4, seed: 0, reportStyle: 'florid' as never } },
      }),
    /data\.synth\.reportStyle must be one of templated, realistic \(got "florid"\)/,
  );
});
