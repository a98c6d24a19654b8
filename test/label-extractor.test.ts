// The rule-based CT-RATE label extractor: agreement with the generator's labels on seeded synthetic reports (as
// written and after a WordPiece round trip, i.e. as a model would produce them), and hand-written CT-RATE-style
// sentences with negations, hedges and look-alikes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../src/util/rng.js';
import { samplePatient } from '../src/data/synth/findings.js';
import { CT_RATE_LABELS as LABELS } from '../src/domain/ct-rate.js';
import { writeReport } from '../src/data/synth/reports.js';
import { reportText } from '../src/text/report.js';
import { trainWordPiece } from '../src/text/wordpiece-trainer.js';
import {
  EXTRACTED_LABELS,
  LABEL_EXTRACTOR_VERSION,
  extractLabels,
  extractorAgreement,
} from '../src/text/label-extractor.js';
import { detokenize } from '../src/eval/tasks/report-text.js';

function synthetic(n: number, seed: number): { reports: string[]; labels: number[][] } {
  const reports: string[] = [],
    labels: number[][] = [];
  for (let i = 0; i < n; i++) {
    const rng = new Rng(seed, i);
    const patient = samplePatient(rng);
    reports.push(reportText(writeReport(patient, rng, rng.pick([1, 1.5, 2]))));
    labels.push(LABELS.map((l) => (patient.findings.some((f) => f.label === l) ? 1 : 0)));
  }
  return { reports, labels };
}

function assertAgreement(
  what: string,
  reports: string[],
  labels: number[][],
  t: { diagnostic(msg: string): void },
): void {
  const a = extractorAgreement(reports, labels);
  t.diagnostic(
    `${what}: overall ${a.overall.toFixed(4)}; ${EXTRACTED_LABELS.map((l, i) => `${l} ${a.perLabel[i]!.toFixed(4)}`).join(', ')}`,
  );
  const low = EXTRACTED_LABELS.filter((_, i) => a.perLabel[i]! < 0.99);
  if (low.length === 0) return;
  const example = reports.find((r, n) => extractLabels(r).some((v, i) => v !== labels[n]![i]));
  assert.fail(`${what}: labels below 0.99 agreement: ${low.join(', ')}; first disagreement: ${example}`);
}

test("the extractor reports the CT-RATE columns in the synthetic generator's order and has a version", () => {
  assert.deepEqual([...EXTRACTED_LABELS], [...LABELS]);
  assert.match(LABEL_EXTRACTOR_VERSION, /\S/);
});

test('agreement ≥ 0.99 per label with the labels of 2,000 synthetic reports', (t) => {
  const { reports, labels } = synthetic(2000, 101);
  assertAgreement('synthetic reports', reports, labels, t);
});

test('agreement ≥ 0.99 per label on detokenised (lower-cased, re-spaced) synthetic reports', (t) => {
  const tok = trainWordPiece(synthetic(300, 7).reports, { vocabSize: 600 });
  const { reports, labels } = synthetic(600, 202);
  const roundTrip = reports.map((r) =>
    detokenize(tok, tok.encode(r, { addSpecialTokens: false, truncation: false }).inputIds),
  );
  assert.notEqual(roundTrip[0], reports[0]); // the round trip really changes the text (case, spacing)
  assertAgreement('detokenised reports', roundTrip, labels, t);
});

/** Hand-written in CT-RATE's style: text → labels present. */
const CASES: [string, string[]][] = [
  [
    'Calcific atherosclerotic plaques are observed in the aortic arch and coronary arteries.',
    ['Arterial wall calcification', 'Coronary artery wall calcification'],
  ],
  ['Atherosclerotic changes are observed in the thoracic aorta.', ['Arterial wall calcification']],
  ['No calcific plaque was observed in the coronary arteries.', []],
  [
    'Aorta diameter is normal. Minimal calcification is present in the wall of the aorta.',
    ['Arterial wall calcification'],
  ],
  ['Heart contour and size are normal. Pericardial effusion-thickening was not observed.', []],
  ['The heart is enlarged. Minimal pericardial effusion is observed.', ['Cardiomegaly', 'Pericardial effusion']],
  ['Enlarged heart; cardiothoracic ratio increased.', ['Cardiomegaly']],
  ['Mediastinal lymph nodes are not enlarged.', []],
  ['Lymph nodes of pathological size and appearance were not detected in the mediastinum and hilar regions.', []],
  ['Pathological lymph nodes were not seen in the mediastinum.', []],
  [
    'Mediastinal lymphadenopathy, likely reactive; the largest lymph node measures 15 mm in short axis.',
    ['Lymphadenopathy'],
  ],
  ['Bilateral minimal pleural effusion is present.', ['Pleural effusion']],
  ['Pleural effusion was not observed.', []],
  ['Atelectatic changes and pleural effusion were not observed.', []],
  ['Findings suggestive of centrilobular emphysema are seen in both upper lobes.', ['Emphysema']],
  ['Emphysema was not detected, but there is minimal atelectasis in the left lower lobe.', ['Atelectasis']],
  ['A 4 mm nonspecific nodule is observed in the upper lobe of the left lung.', ['Lung nodule']],
  ['No mass or nodule was observed in both lungs.', []],
  [
    'No significant change was observed in the size of the nodule in the left upper lobe compared to the previous examination.',
    ['Lung nodule'],
  ],
  ['Thyroid gland: a 12 mm hypodense nodule in the right lobe.', []],
  ['The previously described nodule in the RUL is not significantly changed.', ['Lung nodule']],
  ['Mediastinal lymphadenopathy has not increased in size; no pleural effusion.', ['Lymphadenopathy']],
  ['The bronchiectasis was not changed. Emphysema is not seen.', ['Bronchiectasis']],
  [
    'Ground-glass opacities with septal thickening (crazy paving) are observed in both lungs, likely infection.',
    ['Lung opacity', 'Interlobular septal thickening'],
  ],
  ['Nodular opacities are observed in the right lower lobe.', ['Lung nodule', 'Lung opacity']],
  ['There are no findings in favor of consolidation or ground-glass opacity.', []],
  ['Linear fibrotic changes are observed in the middle lobe of the right lung.', ['Pulmonary fibrotic sequela']],
  [
    'Minimal bronchiectasis and peribronchial thickening in the lower lobes.',
    ['Bronchiectasis', 'Peribronchial thickening'],
  ],
  ['Appearance is suggestive of bronchiectasis in the right lower lobe.', ['Bronchiectasis']],
  ['Consolidation areas containing air bronchograms in the left lower lobe, pneumonia?', ['Consolidation']],
  [
    'Mosaic attenuation pattern is observed in both lungs, which may be compatible with small airway disease.',
    ['Mosaic attenuation pattern'],
  ],
  ['Interlobular septal thickening is not observed.', []],
  [
    'Diffuse interlobular septal thickening and bilateral pleural effusion, consistent with pulmonary edema.',
    ['Interlobular septal thickening', 'Pleural effusion'],
  ],
  ['Sliding type hiatal hernia is observed.', ['Hiatal hernia']],
  ['Possible small hiatal hernia.', ['Hiatal hernia']],
  ['Early consolidation cannot be excluded in the right lower lobe.', ['Consolidation']],
  ['Bilateral pleural effusion has been ruled out; there is no pericardial effusion.', []],
  ['A cardiac pacemaker is present; its lead is in the right ventricle.', ['Medical material']],
  ['Status post sternotomy; sternal wires and surgical clips are observed.', ['Medical material']],
  ['Port catheter is seen in the right subclavian vein.', ['Medical material']],
  ['No pneumothorax. Heart size is within normal limits.', []],
  [
    'Findings: Trachea and both main bronchi are open. Mediastinal main vascular structures, heart contour, size are normal. ' +
      'Thoracic aorta diameter is normal. Pericardial effusion-thickening was not observed. Thoracic esophagus calibration was normal and no ' +
      'significant tumoral wall thickening was detected. No lymph node was detected in mediastinal and bilateral hilar pathological size and ' +
      'appearance. When examined in the lung parenchyma window; Ground-glass areas are observed in the bilateral lower lobes. No pleural ' +
      'effusion was detected. Impressions: Bilateral ground-glass opacities, infection?',
    ['Lung opacity'],
  ],
  [
    'findings: mild cardiomegaly ( likely due to hypertension ). ground - glass densities in the right lower lobe. no pleural effusion.',
    ['Cardiomegaly', 'Lung opacity'],
  ],
];

test('hand-written CT-RATE-style sentences: negations, hedges, look-alikes', () => {
  assert.ok(CASES.length >= 20);
  const wrong: string[] = [];
  for (const [text, expected] of CASES) {
    const got = EXTRACTED_LABELS.filter((_, i) => extractLabels(text)[i] === 1);
    if (JSON.stringify(got) !== JSON.stringify(EXTRACTED_LABELS.filter((l) => expected.includes(l))))
      wrong.push(`${JSON.stringify(text.slice(0, 80))}: got [${got.join(', ')}], expected [${expected.join(', ')}]`);
  }
  assert.deepEqual(wrong, []);
  for (const l of CASES.flatMap(([, e]) => e))
    assert.ok((EXTRACTED_LABELS as readonly string[]).includes(l), `unknown label ${l}`);
});

test('errors name the bad input', () => {
  assert.throws(() => extractLabels(undefined as unknown as string), /report must be a string/);
  assert.throws(() => extractorAgreement(['a'], []), /1 reports but 0 label rows/);
  assert.throws(() => extractorAgreement(['a'], [[1, 0]]), /label row 0 has 2 values, expected 18/);
});
