// One synthetic CT case: patient, anatomy, findings, report, volume (stored values + HU) and organ mask.
import { Rng } from '../../util/rng.js';
import { type SynthGeometry } from './geometry.js';
import { Grid, addNoise, smooth } from './raster.js';
import { MASK_CLASSES } from '../../domain/ct-rate.js';
import { paintAnatomy, sampleBody, ORGAN_LABELS } from './anatomy.js';
import { type Finding, renderFinding, samplePatient } from './findings.js';
import { type ReportText } from './reports.js';
import { type ReportStyle, reportWriter } from './reports-realistic.js';
import {
  type LocalFinding,
  type SynthVersion,
  renderLocalFinding,
  sampleLocalFindings,
  synthLabels,
} from './local-findings.js';
import { withLocalFindings } from './local-reports.js';

export interface SynthCase {
  /** (D, H, W) */
  shape: [number, number, number];
  /** (x, y, z) mm */
  spacing: [number, number, number];
  /** stored values, int16: HU − intercept (CT-RATE v1 style) or HU itself (v2 style) */
  stored: Int16Array;
  rescaleSlope: number;
  rescaleIntercept: number;
  /** organ classes (MASK_CLASSES indices) per voxel */
  mask: Uint8Array;
  /** one per column of synthLabels(version): CT-RATE's 18, then version 2's local findings */
  labels: number[];
  findings: Finding[];
  /** version 2's local findings, where they were drawn (none in version 1) */
  localFindings: LocalFinding[];
  report: ReportText;
  age: number;
  sex: 'M' | 'F';
}

/** How stored values relate to HU: 'raw' needs the metadata's slope/intercept (v1), 'hu' is HU already (v2). */
export type HuStorage = 'raw' | 'hu';

const MASK_OF_LABEL = new Map<number, number>([
  [ORGAN_LABELS.lungRight, MASK_CLASSES.indexOf('lung_right')],
  [ORGAN_LABELS.lungLeft, MASK_CLASSES.indexOf('lung_left')],
  [ORGAN_LABELS.heart, MASK_CLASSES.indexOf('heart')],
  [ORGAN_LABELS.aorta, MASK_CLASSES.indexOf('aorta')],
  [ORGAN_LABELS.spine, MASK_CLASSES.indexOf('spine')],
  [ORGAN_LABELS.airway, MASK_CLASSES.indexOf('airway')],
]);

/**
 * Deterministic in (seed, index, version): the same case comes out on any worker, in any order. Version 2 samples and
 * draws its local findings after version 1's findings (so its patients and anatomy are version 1's; its noise and
 * report wording differ); version 1 draws no extra random number, so its cases are unchanged.
 */
export function generateCase(
  seed: number,
  index: number,
  geo: SynthGeometry,
  storage: HuStorage = 'raw',
  o: { version?: SynthVersion; reportStyle?: ReportStyle } = {},
): SynthCase {
  const { version = 1, reportStyle = 'templated' } = o;
  const rng = new Rng(seed, index);
  const fov = rng.uniform(geo.fovMm[0], geo.fovMm[1]);
  const thickness = Math.round(rng.uniform(geo.sliceThicknessMm[0], geo.sliceThicknessMm[1]) * 4) / 4;
  const zExtent = rng.uniform(geo.zExtentMm[0], geo.zExtentMm[1]);
  const inPlane = geo.inPlane;
  const slices = Math.max(8, Math.round(zExtent / thickness));
  const xy = Math.round((fov / inPlane) * 1000) / 1000;
  const g = new Grid([slices, inPlane, inPlane], [xy, xy, thickness]);

  const body = sampleBody(rng, slices * thickness * 0.98);
  paintAnatomy(g, body, rng);
  const patient = samplePatient(rng);
  // Cardiomegaly reshapes the heart that other cardiac findings are drawn on.
  const ordered = [...patient.findings].sort(
    (a, b) => Number(b.label === 'Cardiomegaly') - Number(a.label === 'Cardiomegaly'),
  );
  for (const f of ordered) renderFinding(g, body, f, rng);
  const local = version >= 2 ? sampleLocalFindings(rng, version) : [];
  for (const f of local) renderLocalFinding(g, body, f, rng, version);
  smooth(g, 1);
  addNoise(g, rng, rng.uniform(8, 20));

  const intercept = storage === 'raw' ? -1024 : 0;
  const stored = new Int16Array(g.n);
  for (let i = 0; i < g.n; i++) stored[i] = Math.max(-1024, Math.min(3071, Math.round(g.hu[i]!))) - intercept;
  const mask = new Uint8Array(g.n);
  for (let i = 0; i < g.n; i++) mask[i] = MASK_OF_LABEL.get(g.label[i]!) ?? 0;
  const present = new Set<string>([...patient.findings, ...local].map((f) => f.label));
  const report = reportWriter(reportStyle)(patient, rng, thickness);
  return {
    shape: g.shape,
    spacing: g.spacing,
    stored,
    rescaleSlope: 1,
    rescaleIntercept: intercept,
    mask,
    labels: synthLabels(version).map((l) => (present.has(l) ? 1 : 0)),
    findings: patient.findings,
    localFindings: local,
    report: version >= 2 ? withLocalFindings(report, local, patient.findings.length, rng) : report,
    age: patient.age,
    sex: patient.sex,
  };
}
