// Radiology reports for synthetic patients: Findings and Impressions written from templates with varied
// phrasing, laterality, sizes, hedging and explicit negations. Every positive label is described; a
// negative label is either negated explicitly or not mentioned, so labels stay consistent with the text.
import { Rng } from '../../util/rng.js';
import { type CtRateLabel } from '../../domain/ct-rate.js';
import { type Finding, type Patient } from './findings.js';

export const lat = (s: Finding['side']): string => (s === 'bilateral' ? 'bilateral' : (s ?? 'right'));
export const lungOf = (s: Finding['side']): string => (s === 'bilateral' ? 'both lungs' : `the ${s ?? 'right'} lung`);
export const lobeName = (f: Finding): string => `${f.side ?? 'right'} ${f.lobe ?? 'lower'} lobe`;
export const cm = (mm: number): string => (mm >= 10 && mm % 5 === 0 ? `${mm / 10} cm` : `${mm} mm`);

function hedge(rng: Rng, text: string): string {
  return rng.bool(0.25)
    ? rng.pick([`findings suggestive of ${text}`, `likely ${text}`, `appearance consistent with ${text}`])
    : text;
}
export const cap = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);

/** Sentence(s) describing a positive finding. */
export function positive(f: Finding, rng: Rng): string {
  const sev = f.severity ?? 'mild';
  switch (f.label) {
    case 'Medical material':
      return rng
        .pick([`${cap(f.kind!)} are noted.`, `Postoperative changes with ${f.kind} are observed.`])
        .replace('Pacemaker are', 'A pacemaker is')
        .replace('Port catheter are', 'A port catheter is');
    case 'Arterial wall calcification':
      return rng.pick([
        `${cap(sev)} atherosclerotic calcifications are seen in the aortic wall.`,
        `Calcified atheroma plaques are observed in the thoracic aorta.`,
      ]);
    case 'Cardiomegaly':
      return rng.pick([
        `The heart is enlarged (${hedge(rng, 'cardiomegaly')}).`,
        `Cardiothoracic ratio is increased; ${sev} cardiomegaly.`,
      ]);
    case 'Pericardial effusion':
      return rng.pick([
        `Pericardial effusion reaching ${4 + 4 * ['mild', 'moderate', 'severe'].indexOf(sev)} mm ` +
          'in thickness is observed.',
        `There is ${sev} pericardial effusion.`,
      ]);
    case 'Coronary artery wall calcification':
      return rng.pick([
        `Calcifications are seen in the coronary arteries.`,
        `${cap(sev)} coronary artery wall calcification is present.`,
      ]);
    case 'Hiatal hernia':
      return rng.pick([
        `A hiatal hernia measuring ${cm(f.sizeMm!)} is observed.`,
        `Sliding type hiatal hernia is seen at the esophagogastric junction.`,
      ]);
    case 'Lymphadenopathy':
      return f.count! > 1
        ? 'Multiple enlarged mediastinal and hilar lymph nodes are observed, ' +
            `the largest measuring ${cm(f.sizeMm!)} in short axis.`
        : `An enlarged lymph node measuring ${cm(f.sizeMm!)} is seen in the ` +
            `${rng.pick(['subcarinal', 'right hilar', 'left hilar', 'prevascular'])} region, ` +
            `${hedge(rng, 'lymphadenopathy')}.`;
    case 'Emphysema':
      return rng.pick([
        `${cap(sev)} centrilobular emphysematous changes are seen in both lungs, more prominent in the upper lobes.`,
        `Emphysema is present in both lungs.`,
      ]);
    case 'Atelectasis':
      return (
        `${cap(rng.pick(['subsegmental', 'linear', 'passive']))} atelectasis is observed in the ` +
        `${f.side === 'bilateral' ? 'bilateral lower lobes' : `${f.side} lower lobe`}.`
      );
    case 'Lung nodule':
      return f.count! > 1
        ? `${f.count} nodules are observed in the ${lobeName(f)}, the largest ${cm(f.sizeMm!)} in diameter.`
        : rng.pick([
            `A ${cm(f.sizeMm!)} ${f.sizeMm! > 10 ? 'solid' : 'nodular'} lesion is seen in the ${lobeName(f)}.`,
            `There is a nodule with a diameter of ${cm(f.sizeMm!)} in the ${lobeName(f)}.`,
          ]);
    case 'Lung opacity':
      return rng.pick([
        `Patchy ground-glass opacities are observed in ${lungOf(f.side)}.`,
        `${cap(lat(f.side))} ground glass densities are noted.`,
      ]);
    case 'Pulmonary fibrotic sequela':
      return rng.pick([
        `Fibrotic bands are observed in ${lungOf(f.side)}, consistent with sequelae.`,
        `Linear fibrotic sequelae changes are seen in the ${lat(f.side)} lower zones.`,
      ]);
    case 'Pleural effusion':
      return rng.pick([
        `${cap(sev)} ${lat(f.side)} pleural effusion is present.`,
        `Pleural effusion is observed on the ${f.side === 'bilateral' ? 'both sides' : `${f.side} side`}, ` +
          `${sev} in amount.`,
      ]);
    case 'Mosaic attenuation pattern':
      return rng.pick([
        `A mosaic attenuation pattern is observed in both lungs.`,
        `Heterogeneous lung parenchyma with mosaic attenuation is noted, ${hedge(rng, 'small airway disease')}.`,
      ]);
    case 'Peribronchial thickening':
      return `Peribronchial wall thickening is noted in ${lungOf(f.side)}.`;
    case 'Consolidation':
      return rng.pick([
        `A consolidated area measuring ${cm(f.sizeMm!)} with air bronchograms is seen in the ${lobeName(f)}.`,
        `Consolidation is observed in the ${lobeName(f)}, ${hedge(rng, 'pneumonia')}.`,
      ]);
    case 'Bronchiectasis':
      return rng.pick([
        `${cap(sev)} cylindrical bronchiectasis is seen in ${lungOf(f.side)}.`,
        `Bronchiectatic changes are present in the ${lat(f.side)} lower lobes.`,
      ]);
    case 'Interlobular septal thickening':
      return `Interlobular septal thickening is observed in ${lungOf(f.side)}.`;
  }
}

export const NEGATIONS: Record<CtRateLabel, string[]> = {
  'Medical material': ['No foreign material or device is seen.'],
  'Arterial wall calcification': [
    'No calcification is seen in the aortic wall.',
    'The thoracic aorta is of normal caliber without calcified plaques.',
  ],
  Cardiomegaly: ['Heart size is normal.', 'Heart contour and size are within normal limits.'],
  'Pericardial effusion': ['No pericardial effusion is detected.', 'There is no pericardial thickening or effusion.'],
  'Coronary artery wall calcification': ['No coronary artery calcification is observed.'],
  'Hiatal hernia': ['No hiatal hernia is seen.'],
  Lymphadenopathy: [
    'No lymph node in pathological size or appearance is detected in the mediastinum or hila.',
    'No mediastinal lymphadenopathy.',
  ],
  Emphysema: ['No emphysematous change is seen.'],
  Atelectasis: ['No atelectasis is seen.'],
  'Lung nodule': ['No mass or nodule is detected in either lung.', 'No pulmonary nodule is observed.'],
  'Lung opacity': ['No ground-glass opacity is seen.', 'Lung parenchyma shows no infiltrative lesion.'],
  'Pulmonary fibrotic sequela': ['No fibrotic change is seen.'],
  'Pleural effusion': ['No pleural effusion is seen.', 'There is no pleural effusion or thickening.'],
  'Mosaic attenuation pattern': ['No mosaic attenuation is seen.'],
  'Peribronchial thickening': ['No peribronchial thickening is observed.'],
  Consolidation: ['No consolidation is observed in either lung.', 'No pneumonic consolidation.'],
  Bronchiectasis: ['No bronchiectasis is seen.'],
  'Interlobular septal thickening': ['No interlobular septal thickening is observed.'],
};

/** Findings in the usual reading order of a chest CT report. */
export const ORDER: CtRateLabel[] = [
  'Peribronchial thickening',
  'Bronchiectasis',
  'Lymphadenopathy',
  'Hiatal hernia',
  'Cardiomegaly',
  'Pericardial effusion',
  'Arterial wall calcification',
  'Coronary artery wall calcification',
  'Pleural effusion',
  'Emphysema',
  'Lung nodule',
  'Lung opacity',
  'Consolidation',
  'Atelectasis',
  'Pulmonary fibrotic sequela',
  'Mosaic attenuation pattern',
  'Interlobular septal thickening',
  'Medical material',
];

export const IMPRESSION: Record<CtRateLabel, string> = {
  'Medical material': 'postoperative changes',
  'Arterial wall calcification': 'aortic atherosclerosis',
  Cardiomegaly: 'cardiomegaly',
  'Pericardial effusion': 'pericardial effusion',
  'Coronary artery wall calcification': 'coronary artery calcification',
  'Hiatal hernia': 'hiatal hernia',
  Lymphadenopathy: 'mediastinal lymphadenopathy',
  Emphysema: 'emphysema',
  Atelectasis: 'atelectasis',
  'Lung nodule': 'pulmonary nodule',
  'Lung opacity': 'ground-glass opacities',
  'Pulmonary fibrotic sequela': 'fibrotic sequelae',
  'Pleural effusion': 'pleural effusion',
  'Mosaic attenuation pattern': 'mosaic attenuation',
  'Peribronchial thickening': 'peribronchial thickening',
  Consolidation: 'consolidation, pneumonia?',
  Bronchiectasis: 'bronchiectasis',
  'Interlobular septal thickening': 'interlobular septal thickening',
};

export interface ReportText {
  findings: string;
  impressions: string;
  clinical: string;
  technique: string;
}

export function writeReport(patient: Patient, rng: Rng, sliceThicknessMm: number): ReportText {
  const byLabel = new Map(patient.findings.map((f) => [f.label, f]));
  const sentences: string[] = ['Trachea and both main bronchi are in normal position and width.'];
  for (const label of ORDER) {
    const f = byLabel.get(label);
    if (f) sentences.push(positive(f, rng));
    else if (rng.bool(0.55)) sentences.push(rng.pick(NEGATIONS[label]));
  }
  if (rng.bool(0.5))
    sentences.push('Upper abdominal organs included in the sections are unremarkable as far as can be seen.');
  if (rng.bool(0.5))
    sentences.push(
      rng.pick([
        'Bone structures are age-appropriate.',
        'Degenerative changes are observed in the thoracic vertebrae.',
      ]),
    );
  const positives = ORDER.filter((l) => byLabel.has(l));
  const impressions =
    positives.length === 0
      ? rng.pick(['No significant pathology was detected.', 'Thorax CT within normal limits.', 'Not given.'])
      : positives.map((l) => cap(IMPRESSION[l]) + '.').join(' ');
  return {
    findings: sentences.join(' '),
    impressions,
    clinical: rng.pick(['Cough.', 'Dyspnea.', 'Follow-up.', 'Chest pain.', 'Not given.']),
    technique: `Non-contrast thorax CT, ${sliceThicknessMm.toFixed(1)} mm sections.`,
  };
}
