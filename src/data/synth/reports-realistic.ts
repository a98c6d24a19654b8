// The 'realistic' report style: reports written as radiologists write them, so that labels extracted from them by
// a rule-based extractor disagree with the image's truth about as often as on real reports (RESULTS.md measures by
// how much). 'templated' (reports.ts) stays the default, so existing data sets and results reproduce. On top of the
// templated sentences: synonyms and abbreviations (some that no rule set knows: "GGO", "air trapping", "Kerley B
// lines", "RLL"), hedged positives ("possible", "likely"), uncertain or historical mentions of absent findings
// ("cannot be excluded", "has resolved"), under-called mild findings ("no definite ..."), follow-up wording ("is not
// significantly changed"), negation lists with scope ("no effusion or pneumothorax", "without evidence of ..."),
// normal statements, typos at a low rate, and impressions that restate only some findings. The labels stay the
// image's truth: where the text says less or more than the image, an extractor reading it disagrees with them.
import { type CtRateLabel } from '../../domain/ct-rate.js';
import { Rng } from '../../util/rng.js';
import { CT_RATE_LABELS } from '../../domain/ct-rate.js';
import { type Finding, type Patient, samplePatient } from './findings.js';
import { NEGATIONS, ORDER, type ReportText, cap, cm, lat, lobeName, lungOf, positive, writeReport } from './reports.js';

/** How the synthetic reports are written: 'templated' (the default) or 'realistic' (this file). */
export type ReportStyle = 'templated' | 'realistic';
export const REPORT_STYLES: readonly ReportStyle[] = ['templated', 'realistic'];

// Rates, per finding present / label absent / word.
const SYNONYM = 0.4;
const HEDGED = 0.12;
const UNDER_CALLED = 0.04;
const FOLLOW_UP = 0.15;
const LOBE_ABBREVIATION = 0.35;
const NEGATED = 0.45;
const UNCERTAIN_ABSENT = 0.015;
const IN_IMPRESSION = 0.65;
const TYPO = 0.006;

const ABBREVIATED_LOBE: Record<string, string> = {
  'right upper lobe': 'RUL',
  'right middle lobe': 'RML',
  'right lower lobe': 'RLL',
  'left upper lobe': 'LUL',
  'left lower lobe': 'LLL',
};
const lobe = (f: Finding, rng: Rng): string =>
  rng.bool(LOBE_ABBREVIATION) ? ABBREVIATED_LOBE[lobeName(f)]! : `the ${lobeName(f)}`;
/** Where a finding is, as a phrase after "in": a lobe, a lung, or nothing. */
const where = (f: Finding, rng: Rng): string =>
  f.lobe ? ` in ${lobe(f, rng)}` : f.side ? ` in ${lungOf(f.side)}` : '';

/** Noun phrases per label, the extractor's own term first; the others are synonyms and abbreviations. */
const TERMS: Record<CtRateLabel, string[]> = {
  'Medical material': ['foreign material', 'surgical material', 'device'],
  'Arterial wall calcification': ['aortic calcification', 'aortic atherosclerosis', 'atherosclerotic aortic plaque'],
  Cardiomegaly: ['cardiomegaly', 'cardiac enlargement', 'enlarged heart'],
  'Pericardial effusion': ['pericardial effusion', 'pericardial fluid'],
  'Coronary artery wall calcification': ['coronary artery calcification', 'coronary atherosclerosis', 'CAC'],
  'Hiatal hernia': ['hiatal hernia', 'hiatus hernia', 'sliding hernia'],
  Lymphadenopathy: ['lymphadenopathy', 'enlarged lymph nodes', 'mediastinal LAP', 'enlarged mediastinal nodes'],
  Emphysema: ['emphysema', 'emphysematous change', 'bullae'],
  Atelectasis: ['atelectasis', 'subsegmental atelectasis', 'volume loss'],
  'Lung nodule': ['pulmonary nodule', 'nodule', 'mass', 'SPN'],
  'Lung opacity': ['ground-glass opacity', 'infiltrate', 'GGO'],
  'Pulmonary fibrotic sequela': ['fibrotic change', 'fibrosis', 'scarring'],
  'Pleural effusion': ['pleural effusion', 'effusion', 'pleural fluid'],
  'Mosaic attenuation pattern': ['mosaic attenuation', 'air trapping'],
  'Peribronchial thickening': ['peribronchial thickening', 'bronchial wall thickening', 'airway wall thickening'],
  Consolidation: ['consolidation', 'airspace disease'],
  Bronchiectasis: ['bronchiectasis', 'bronchial dilatation'],
  'Interlobular septal thickening': ['interlobular septal thickening', 'septal thickening', 'Kerley B lines'],
};

/** Other ways to describe a present finding: some the extractor reads, some it does not. */
function synonymSentence(f: Finding, rng: Rng): string {
  const sev = f.severity ?? 'mild';
  const inLung = ` in ${lungOf(f.side)}`;
  const options: Record<CtRateLabel, () => string[]> = {
    'Medical material': () =>
      f.kind === 'pacemaker'
        ? ['Pacemaker leads are seen in the right heart chambers.', 'Cardiac device with leads in the right ventricle.']
        : f.kind === 'port catheter'
          ? ['A central venous port is seen with its tip in the SVC.', 'Right-sided chest port in place.']
          : ['Median sternotomy wires are present.', 'Status post CABG with sternal cerclage.'],
    'Arterial wall calcification': () => [
      'Atherosclerotic changes of the thoracic aorta.',
      'Mural calcific plaques along the aortic arch.',
      `${cap(sev)} aortic atherosclerosis.`,
    ],
    Cardiomegaly: () => ['Cardiac enlargement is noted.', 'Enlarged cardiac silhouette.', 'Increased CTR.'],
    'Pericardial effusion': () => [
      'Small amount of fluid in the pericardial recesses.',
      `${cap(sev)} pericardial fluid.`,
      'Minimal fluid around the heart.',
    ],
    'Coronary artery wall calcification': () => [
      'Coronary calcifications in the LAD.',
      'Calcified plaques in the LAD and circumflex arteries.',
      'Three-vessel CAC.',
    ],
    'Hiatal hernia': () => [
      'Hiatus hernia.',
      'Small sliding hernia at the gastroesophageal junction.',
      'Part of the stomach herniates into the chest.',
    ],
    Lymphadenopathy: () => [
      `Enlarged mediastinal nodes, the largest measuring ${cm(f.sizeMm!)}.`,
      'Mediastinal LAP.',
      `Prominent subcarinal lymph node measuring ${cm(f.sizeMm!)} in short axis.`,
    ],
    Emphysema: () => [
      'Centrilobular emphysema in the upper lobes.',
      'Paraseptal bullae in both apices.',
      'Low-attenuation areas in both upper lobes, in keeping with COPD.',
    ],
    Atelectasis: () => [
      `Plate-like atelectasis in the ${lat(f.side)} lower lobe${f.side === 'bilateral' ? 's' : ''}.`,
      `Dependent volume loss in the ${lat(f.side)} lower lobe${f.side === 'bilateral' ? 's' : ''}.`,
      'Discoid atelectatic bands at the lung bases.',
    ],
    'Lung nodule': () => [
      `A ${cm(f.sizeMm!)} SPN${where(f, rng)}.`,
      `Small pulmonary nodule${where(f, rng)}.`,
      `Calcified granuloma${where(f, rng)}.`,
    ],
    'Lung opacity': () => [
      `Patchy GGO${inLung}.`,
      `Hazy densities${inLung}.`,
      `Areas of increased attenuation${inLung}.`,
    ],
    'Pulmonary fibrotic sequela': () => [
      `Parenchymal scarring${inLung}.`,
      `Fibrotic strands in the ${lat(f.side)} lower zones.`,
      `Post-inflammatory sequelae${inLung}.`,
    ],
    'Pleural effusion': () => [
      `${cap(sev)} ${lat(f.side)} pleural fluid.`,
      `${cap(lat(f.side))} effusion.`,
      `Fluid layering in the ${f.side === 'bilateral' ? 'pleural spaces' : `${f.side} pleural space`}.`,
      'Blunting of the costophrenic angle with a small amount of fluid.',
    ],
    'Mosaic attenuation pattern': () => [
      'Air trapping in both lungs.',
      'Mosaic perfusion.',
      'Heterogeneous lung attenuation.',
    ],
    'Peribronchial thickening': () => [
      `Bronchial wall thickening${inLung}.`,
      'Thickened airway walls.',
      'Peribronchial cuffing.',
    ],
    Consolidation: () => [
      `Airspace disease${where(f, rng)}.`,
      `Consolidative opacity${where(f, rng)}.`,
      `Dense consolidation with air bronchograms${where(f, rng)}.`,
    ],
    Bronchiectasis: () => [
      `Dilated bronchi${inLung}.`,
      `Traction bronchiectasis${inLung}.`,
      `Bronchial dilatation in the ${lat(f.side)} lower lobes.`,
    ],
    'Interlobular septal thickening': () => [
      `Kerley B lines${inLung}.`,
      `Thickened interlobular septa${inLung}.`,
      `Smooth septal thickening${inLung}.`,
    ],
  };
  return rng.pick(options[f.label]());
}

const FOLLOWED: ReadonlySet<CtRateLabel> = new Set(['Lung nodule', 'Lymphadenopathy', 'Pulmonary fibrotic sequela']);

/** The sentence for a present finding: templated or a synonym, hedged, under-called, or in follow-up wording. */
function presentSentence(f: Finding, rng: Rng): string {
  const term = rng.pick(TERMS[f.label]);
  if (f.label !== 'Medical material') {
    if (rng.bool(HEDGED)) {
      const hedge = rng.pick(['Possible', 'Probable', 'Suspected', 'Findings likely representing']);
      return `${hedge} ${term}${where(f, rng)}.`;
    }
    if ((f.severity ?? 'mild') === 'mild' && rng.bool(UNDER_CALLED)) return `No definite ${term}.`;
    if (FOLLOWED.has(f.label) && rng.bool(FOLLOW_UP)) {
      return `The previously described ${term}${where(f, rng)} is not significantly changed.`;
    }
  }
  if (rng.bool(SYNONYM)) return synonymSentence(f, rng);
  const s = positive(f, rng);
  return rng.bool(LOBE_ABBREVIATION)
    ? s.replace(/the (right|left) (upper|middle|lower) lobe/, (m) => ABBREVIATED_LOBE[m.slice(4)] ?? m)
    : s;
}

const list = (terms: string[]): string =>
  terms.length === 1 ? terms[0]! : `${terms.slice(0, -1).join(', ')} or ${terms[terms.length - 1]}`;

/** One sentence denying every label of `group` (and perhaps a pneumothorax), in one of the usual forms. */
function negationSentence(group: CtRateLabel[], rng: Rng): string {
  if (group.length === 1 && rng.bool(0.3)) return rng.pick(NEGATIONS[group[0]!]);
  const terms = group.map((l) => rng.pick(TERMS[l]));
  if (rng.bool(0.3)) terms.push('pneumothorax');
  const phrase = list(terms);
  return rng.pick([
    `No ${phrase}.`,
    `There is no ${phrase}.`,
    `No evidence of ${phrase}.`,
    `The examination is otherwise without evidence of ${phrase}.`,
    `Negative for ${phrase}.`,
    `${cap(phrase)} ${terms.length > 1 ? 'are' : 'is'} not seen.`,
  ]);
}

/** A mention of a finding the image does not hold: uncertain, questionable, or from a prior study. */
function uncertainAbsent(label: CtRateLabel, rng: Rng): string {
  if (label === 'Medical material') {
    const device = rng.pick(['central venous catheter', 'chest tube', 'nasogastric tube']);
    return `The previously seen ${device} has been removed.`;
  }
  const term = rng.pick(TERMS[label]);
  return rng.pick([
    `${cap(term)} cannot be excluded.`,
    `Questionable minimal ${term}.`,
    `Previously described ${term} has resolved.`,
  ]);
}

const OPENERS = [
  'Trachea and both main bronchi are in normal position and width.',
  'The central airways are patent.',
  'Mediastinal structures were evaluated as suboptimal since the examination was non-contrast.',
  'Thoracic esophagus calibration was normal.',
];
const CLOSERS = [
  'Upper abdominal organs included in the sections are unremarkable as far as can be seen.',
  'Osseous structures are unremarkable.',
  'Degenerative changes are observed in the thoracic vertebrae.',
  'Thyroid gland is unremarkable.',
];
const LUNG_LABELS: ReadonlySet<CtRateLabel> = new Set([
  'Peribronchial thickening',
  'Bronchiectasis',
  'Pleural effusion',
  'Emphysema',
  'Lung nodule',
  'Lung opacity',
  'Consolidation',
  'Atelectasis',
  'Pulmonary fibrotic sequela',
  'Mosaic attenuation pattern',
  'Interlobular septal thickening',
]);

/** Letters transposed, dropped or doubled in a few words (not the first letter, as dictation slips go). */
function typos(text: string, rng: Rng): string {
  return text.replace(/[A-Za-z]{5,}/g, (w) => {
    if (!rng.bool(TYPO)) return w;
    const i = rng.int(1, w.length - 2);
    switch (rng.int(0, 2)) {
      case 0:
        return w.slice(0, i) + w[i + 1] + w[i] + w.slice(i + 2);
      case 1:
        return w.slice(0, i) + w.slice(i + 1);
      default:
        return w.slice(0, i) + w[i] + w.slice(i);
    }
  });
}

function impression(positives: Finding[], rng: Rng): string {
  const named = positives.filter(() => rng.bool(IN_IMPRESSION));
  if (positives.length === 0)
    return rng.pick(['No significant pathology was detected.', 'No acute cardiopulmonary abnormality.', 'Not given.']);
  if (named.length === 0) return 'Findings as described above.';
  const items = named.map((f) => {
    const term = rng.pick(TERMS[f.label]);
    return cap(rng.bool(0.1) ? `possible ${term}` : term) + '.';
  });
  return rng.bool(0.3) ? items.map((s, i) => `${i + 1}. ${s}`).join(' ') : items.join(' ');
}

/** A report in the 'realistic' style for `patient` (the labels stay the patient's findings). */
export function writeRealisticReport(patient: Patient, rng: Rng, sliceThicknessMm: number): ReportText {
  const byLabel = new Map(patient.findings.map((f) => [f.label, f]));
  const sentences = [rng.pick(OPENERS)];
  let pending: CtRateLabel[] = [];
  let groupSize = rng.int(1, 3);
  const flush = () => {
    if (pending.length) sentences.push(negationSentence(pending, rng));
    pending = [];
    groupSize = rng.int(1, 3);
  };
  for (const label of ORDER) {
    const f = byLabel.get(label);
    if (f) {
      flush();
      sentences.push(presentSentence(f, rng));
    } else if (rng.bool(UNCERTAIN_ABSENT)) {
      flush();
      sentences.push(uncertainAbsent(label, rng));
    } else if (rng.bool(NEGATED)) {
      pending.push(label);
      if (pending.length >= groupSize) flush();
    }
  }
  flush();
  if (!patient.findings.some((f) => LUNG_LABELS.has(f.label)) && rng.bool(0.5))
    sentences.push(rng.pick(['Both lungs are well aerated.', 'The lung parenchyma is otherwise unremarkable.']));
  if (rng.bool(0.6)) sentences.push(rng.pick(CLOSERS));
  return {
    findings: typos(sentences.join(' '), rng),
    impressions: typos(
      impression(
        ORDER.flatMap((l) => byLabel.get(l) ?? []),
        rng,
      ),
      rng,
    ),
    clinical: rng.pick(['Cough.', 'Dyspnea.', 'Follow-up.', 'Chest pain.', 'Not given.']),
    technique: `Non-contrast thorax CT, ${sliceThicknessMm.toFixed(1)} mm sections.`,
  };
}

/** The report writer of a style; an error names the known ones. */
export function reportWriter(style: ReportStyle): typeof writeReport {
  if (style === 'templated') return writeReport;
  if (style === 'realistic') return writeRealisticReport;
  throw new Error(`unknown report style ${JSON.stringify(style)} (known: ${REPORT_STYLES.join(', ')})`);
}

/** A report and its labels for a patient drawn without an image (not generateCase's patient of the same index):
 * thousands of reports in a second, to measure label extraction on a report style. */
export function generateReport(
  seed: number,
  index: number,
  style: ReportStyle,
): { report: ReportText; labels: number[] } {
  const rng = new Rng(seed, index);
  const patient = samplePatient(rng);
  const present = new Set(patient.findings.map((f) => f.label));
  const report = reportWriter(style)(patient, rng, rng.pick([1, 1.5, 2]));
  return { report, labels: CT_RATE_LABELS.map((l) => (present.has(l) ? 1 : 0)) };
}
