// The 18 CT-RATE abnormalities: which a patient has (with realistic co-occurrence through latent
// clinical factors) and how each looks in the volume.
import { Rng } from '../../util/rng.js';
import { capsule, ellipsoid, type Grid, type Vec3 } from './raster.js';
import { type Body, LUNGS, ORGAN_LABELS as L, branch } from './anatomy.js';

/** CT-RATE's label columns, in the dataset's order. */
export const LABELS = [
  'Medical material',
  'Arterial wall calcification',
  'Cardiomegaly',
  'Pericardial effusion',
  'Coronary artery wall calcification',
  'Hiatal hernia',
  'Lymphadenopathy',
  'Emphysema',
  'Atelectasis',
  'Lung nodule',
  'Lung opacity',
  'Pulmonary fibrotic sequela',
  'Pleural effusion',
  'Mosaic attenuation pattern',
  'Peribronchial thickening',
  'Consolidation',
  'Bronchiectasis',
  'Interlobular septal thickening',
] as const;
export type Label = (typeof LABELS)[number];

export type Side = 'right' | 'left' | 'bilateral';
export type Lobe = 'upper' | 'middle' | 'lower';
export type Severity = 'mild' | 'moderate' | 'severe';

/** What the renderer drew, so that the report can say exactly that. */
export interface Finding {
  label: Label;
  side?: Side;
  lobe?: Lobe;
  sizeMm?: number;
  count?: number;
  severity?: Severity;
  kind?: string;
}

export interface Patient {
  age: number;
  sex: 'M' | 'F';
  findings: Finding[];
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

/** Latent factors (age, smoking, heart failure, infection, interstitial disease) drive co-occurrence. */
export function samplePatient(rng: Rng): Patient {
  const age = Math.round(rng.uniform(22, 90));
  const smoker = rng.bool(0.35) ? 1 : 0;
  const hf = rng.bool(sigmoid(-3 + 0.05 * (age - 50))) ? 1 : 0;
  const inf = rng.bool(0.25) ? 1 : 0;
  const ild = rng.bool(0.08 + 0.002 * (age - 40)) ? 1 : 0;
  const postop = rng.bool(0.08 + 0.002 * (age - 40)) ? 1 : 0;
  const p: Record<Label, number> = {
    'Medical material': 0.03 + 0.6 * postop,
    'Arterial wall calcification': sigmoid(-4 + 0.08 * (age - 30) + 0.8 * smoker),
    Cardiomegaly: 0.03 + 0.6 * hf,
    'Pericardial effusion': 0.03 + 0.3 * hf,
    'Coronary artery wall calcification': sigmoid(-4.5 + 0.08 * (age - 30) + 0.8 * smoker),
    'Hiatal hernia': 0.04 + 0.003 * (age - 22),
    Lymphadenopathy: 0.12 + 0.3 * inf + 0.2 * ild,
    Emphysema: 0.04 + 0.45 * smoker,
    Atelectasis: 0.12 + 0.3 * hf + 0.25 * inf,
    'Lung nodule': 0.3 + 0.2 * smoker,
    'Lung opacity': 0.15 + 0.5 * inf + 0.3 * ild,
    'Pulmonary fibrotic sequela': 0.1 + 0.5 * ild + 0.1 * inf,
    'Pleural effusion': 0.03 + 0.5 * hf + 0.15 * inf,
    'Mosaic attenuation pattern': 0.04 + 0.15 * ild + 0.08 * smoker,
    'Peribronchial thickening': 0.05 + 0.25 * inf + 0.1 * smoker,
    Consolidation: 0.04 + 0.5 * inf,
    Bronchiectasis: 0.04 + 0.3 * ild,
    'Interlobular septal thickening': 0.03 + 0.35 * ild + 0.2 * hf,
  };
  const findings = LABELS.filter((l) => rng.bool(Math.min(0.95, p[l]))).map((label) => describe(label, rng));
  return { age, sex: rng.bool() ? 'M' : 'F', findings };
}

function describe(label: Label, rng: Rng): Finding {
  const side = (): Side => rng.pick(['right', 'left', 'bilateral'] as const);
  const severity = (): Severity => rng.pick(['mild', 'moderate', 'severe'] as const);
  switch (label) {
    case 'Medical material':
      return { label, kind: rng.pick(['sternotomy wires', 'pacemaker', 'port catheter']) };
    case 'Arterial wall calcification':
    case 'Coronary artery wall calcification':
      return { label, severity: severity() };
    case 'Cardiomegaly':
    case 'Pericardial effusion':
    case 'Emphysema':
    case 'Mosaic attenuation pattern':
      return { label, severity: severity() };
    case 'Hiatal hernia':
      return { label, sizeMm: Math.round(rng.uniform(25, 50)) };
    case 'Lymphadenopathy':
      return { label, count: rng.int(1, 4), sizeMm: Math.round(rng.uniform(11, 24)) };
    case 'Lung nodule': {
      const s = rng.pick(['right', 'left'] as const);
      return {
        label,
        side: s,
        lobe: s === 'right' ? rng.pick(['upper', 'middle', 'lower'] as const) : rng.pick(['upper', 'lower'] as const),
        sizeMm: Math.round(rng.uniform(5, 22)),
        count: rng.bool(0.7) ? 1 : rng.int(2, 3),
      };
    }
    case 'Consolidation': {
      const s = rng.pick(['right', 'left'] as const);
      return {
        label,
        side: s,
        lobe: s === 'right' ? rng.pick(['upper', 'middle', 'lower'] as const) : rng.pick(['upper', 'lower'] as const),
        sizeMm: Math.round(rng.uniform(35, 70)),
      };
    }
    case 'Lung opacity':
      return { label, side: side(), count: rng.int(1, 4), kind: 'ground-glass' };
    case 'Atelectasis':
    case 'Pleural effusion':
    case 'Bronchiectasis':
    case 'Pulmonary fibrotic sequela':
    case 'Interlobular septal thickening':
    case 'Peribronchial thickening':
      return { label, side: side(), severity: severity() };
  }
}

const SEV: Record<Severity, number> = { mild: 0, moderate: 1, severe: 2 };
const sidesOf = (s: Side | undefined): (0 | 1)[] => (s === 'right' ? [0] : s === 'left' ? [1] : [0, 1]);

/** A random point inside one lung's lobe (0 = right, 1 = left). */
export function lobePoint(body: Body, side: 0 | 1, lobe: Lobe, rng: Rng): Vec3 {
  const c = body.lungCentre[side];
  const [rx, ry, rz] = body.lungRadii;
  const x = c[0] + rx * rng.uniform(-0.45, 0.45);
  switch (lobe) {
    case 'upper':
      return [x, c[1] + ry * rng.uniform(-0.4, 0.3), c[2] + rz * rng.uniform(0.15, 0.55)];
    case 'middle':
      return [x, c[1] - ry * rng.uniform(0.25, 0.55), c[2] + rz * rng.uniform(-0.3, 0.05)];
    case 'lower':
      return [x, c[1] + ry * rng.uniform(0.05, 0.5), c[2] - rz * rng.uniform(0.25, 0.6)];
  }
}

const within = (s: ReadonlySet<number>) => ({ within: s });
const BODY_SOFT: ReadonlySet<number> = new Set([L.body]);

/** Draws one finding. Order matters only for the heart: cardiomegaly is drawn before the effusion. */
export function renderFinding(g: Grid, body: Body, f: Finding, rng: Rng): void {
  const [hx, hy, hz] = body.heartCentre;
  const sev = f.severity ? SEV[f.severity] : 1;
  switch (f.label) {
    case 'Medical material': {
      const metal = rng.uniform(2200, 3000);
      if (f.kind === 'sternotomy wires') {
        for (let k = 0; k < 5; k++) {
          const z = hz + 20 + k * 18;
          capsule(g, [-10, -body.b * 0.86, z], [10, -body.b * 0.86, z], 1.8, metal);
        }
      } else {
        const sx = f.kind === 'pacemaker' ? body.a * 0.45 : -body.a * 0.45;
        const box: Vec3 = [sx, -body.b * 0.8, body.lungCentre[0][2] + body.lungRadii[2] * 0.6];
        ellipsoid(g, box, [18, 5, 14], metal);
        capsule(g, box, [hx - 10, hy, hz + 10], 1.5, metal);
      }
      return;
    }
    case 'Cardiomegaly': {
      const s = 1.2 + 0.1 * sev;
      ellipsoid(g, [hx, hy, hz], [body.heartRadii[0] * s, body.heartRadii[1] * s, body.heartRadii[2] * s], 40, {
        within: new Set([L.body, L.heart, L.lungLeft, L.lungRight]),
        setLabel: L.heart,
      });
      body.heartRadii = [body.heartRadii[0] * s, body.heartRadii[1] * s, body.heartRadii[2] * s];
      return;
    }
    case 'Pericardial effusion': {
      const t = 6 + 5 * sev;
      const [a, b, c] = body.heartRadii;
      ellipsoid(g, [hx, hy, hz], [a + t, b + t, c + t], 12, within(new Set([L.body, L.lungLeft, L.lungRight])));
      return;
    }
    case 'Arterial wall calcification':
    case 'Coronary artery wall calcification': {
      const n = 3 + 4 * sev;
      for (let k = 0; k < n; k++) {
        let p: Vec3;
        if (f.label === 'Arterial wall calcification') {
          const s = rng.int(0, body.aortaPath.length - 2);
          const a = body.aortaPath[s]!,
            b = body.aortaPath[s + 1]!,
            t = rng.next(),
            ang = rng.uniform(0, 2 * Math.PI);
          p = [
            a[0] + t * (b[0] - a[0]) + body.aortaRadius * Math.cos(ang),
            a[1] + t * (b[1] - a[1]) + body.aortaRadius * Math.sin(ang),
            a[2] + t * (b[2] - a[2]),
          ];
        } else {
          const ang = rng.uniform(-2.2, -0.6),
            [a, b, c] = body.heartRadii;
          p = [hx + a * Math.cos(ang), hy + b * Math.sin(ang), hz + c * rng.uniform(-0.1, 0.7)];
        }
        // coronary plaques are small specks (2.4–5 mm); aortic ones 5 mm
        const r = f.label === 'Arterial wall calcification' ? 2.5 : rng.uniform(1.2, 2.5);
        ellipsoid(g, p, [r, r, r], rng.uniform(450, 900));
      }
      return;
    }
    case 'Hiatal hernia': {
      const r = (f.sizeMm ?? 35) / 2;
      const c: Vec3 = [8, body.spineY - 35, body.lungCentre[0][2] - body.lungRadii[2] * 0.75];
      ellipsoid(g, c, [r, r * 0.8, r], 25, { setLabel: L.body });
      ellipsoid(g, [c[0], c[1] - r * 0.3, c[2] + r * 0.4], [r * 0.6, r * 0.4, r * 0.35], -1000);
      return;
    }
    case 'Lymphadenopathy': {
      const sites: Vec3[] = [body.carina, body.hila[0], body.hila[1], [10, -body.b * 0.15, body.carina[2] + 15]];
      for (let k = 0; k < (f.count ?? 1); k++) {
        const s = sites[k % sites.length]!;
        const r = (f.sizeMm ?? 15) / 2;
        ellipsoid(
          g,
          [s[0] + rng.uniform(-8, 8), s[1] + rng.uniform(-8, 8), s[2] - 12 + rng.uniform(-6, 6)],
          [r, r, r * 1.2],
          38,
          within(BODY_SOFT),
        );
      }
      return;
    }
    case 'Emphysema': {
      // Centrilobular: many small wall-less lucencies (2.4–6 mm), upper-lobe predominant, more with severity;
      // severe disease adds a few bullae. Thick slices average the small holes into the surrounding lung (the
      // lung's fraction below −950 HU falls with slice thickness), so most of this finding is fine-scale.
      const hole = (r: number) =>
        ellipsoid(
          g,
          lobePoint(body, rng.int(0, 1) as 0 | 1, rng.bool(0.75) ? 'upper' : 'lower', rng),
          [r, r, r],
          -990,
          within(LUNGS),
        );
      for (let k = 0; k < 1500 * (sev + 1); k++) hole(rng.uniform(1.2, 3));
      if (sev === 2) for (let k = rng.int(2, 4); k > 0; k--) hole(rng.uniform(8, 14));
      return;
    }
    case 'Lung nodule': {
      const side = f.side === 'left' ? 1 : 0;
      for (let k = 0; k < (f.count ?? 1); k++) {
        const r = ((f.sizeMm ?? 8) / 2) * (k === 0 ? 1 : 0.7);
        ellipsoid(g, lobePoint(body, side, f.lobe ?? 'upper', rng), [r, r, r], (q) => 35 - 60 * q * q, within(LUNGS));
      }
      return;
    }
    case 'Consolidation': {
      const side = f.side === 'left' ? 1 : 0;
      const c = lobePoint(body, side, f.lobe ?? 'lower', rng);
      const r = (f.sizeMm ?? 50) / 2;
      ellipsoid(g, c, [r * 0.8, r * 0.7, r], 38, within(LUNGS));
      branch(g, rng, [c[0], c[1], c[2] + r * 0.5], [0, 0.2, -1], 2, 2, -950, undefined); // air bronchograms
      return;
    }
    case 'Lung opacity': {
      for (const side of sidesOf(f.side)) {
        for (let k = 0; k < (f.count ?? 1); k++) {
          const r = rng.uniform(14, 32);
          ellipsoid(g, lobePoint(body, side, rng.pick(['upper', 'lower'] as const), rng), [r, r * 0.8, r], -480, {
            within: LUNGS,
            alpha: 0.85,
          });
        }
      }
      return;
    }
    case 'Atelectasis': {
      for (const side of sidesOf(f.side)) {
        const c = body.lungCentre[side];
        const [rx, ry, rz] = body.lungRadii;
        ellipsoid(
          g,
          [c[0], c[1] + ry * 0.7, c[2] - rz * 0.6],
          [rx * 0.6, 6 + 4 * sev, 14 + 8 * sev],
          30,
          within(LUNGS),
        );
      }
      return;
    }
    case 'Pleural effusion': {
      for (const side of sidesOf(f.side)) {
        const c = body.lungCentre[side];
        const [, ry, rz] = body.lungRadii;
        const depth = 0.2 + 0.15 * sev;
        const lab = side === 0 ? L.lungRight : L.lungLeft;
        g.forBox(
          [c[0] - body.lungRadii[0], c[1] + ry * (1 - 2 * depth), c[2] - rz],
          [c[0] + body.lungRadii[0], c[1] + ry, c[2] - rz * 0.1],
          (idx, _x, y, z) => {
            const level = c[1] + ry * (1 - 2 * depth) + (z - (c[2] - rz)) * 0.15; // meniscus rises at the back
            if (g.label[idx] === lab && y > level) {
              g.hu[idx] = 14;
              g.label[idx] = L.body;
            }
          },
        );
      }
      return;
    }
    case 'Mosaic attenuation pattern': {
      for (let k = 0; k < 12 + 6 * sev; k++) {
        const side = rng.int(0, 1) as 0 | 1;
        const r = rng.uniform(12, 22);
        ellipsoid(
          g,
          lobePoint(body, side, rng.pick(['upper', 'middle', 'lower'] as const), rng),
          [r, r, r],
          k % 2 ? -930 : -760,
          { within: LUNGS, alpha: 0.7 },
        );
      }
      return;
    }
    case 'Peribronchial thickening':
    case 'Bronchiectasis': {
      const dilated = f.label === 'Bronchiectasis';
      for (const side of sidesOf(f.side)) {
        const h = body.hila[side];
        const dir: Vec3 = [side === 0 ? -0.6 : 0.6, 0.3, -0.7];
        branch(g, rng, h, dir, 3, dilated ? 4.5 + sev : 2.5, -1000, L.airway, dilated ? 2 : 2.5 + sev);
      }
      return;
    }
    case 'Pulmonary fibrotic sequela':
    case 'Interlobular septal thickening': {
      const septal = f.label === 'Interlobular septal thickening';
      for (const side of sidesOf(f.side)) {
        const c = body.lungCentre[side];
        const n = septal ? 300 + 200 * sev : 6 + 4 * sev;
        for (let k = 0; k < n; k++) {
          const ang = rng.uniform(0, 2 * Math.PI);
          const zf = septal ? rng.uniform(-0.7, 0.6) : rng.uniform(-0.7, 0.1);
          const p: Vec3 = [
            c[0] + body.lungRadii[0] * 0.85 * Math.cos(ang),
            c[1] + body.lungRadii[1] * 0.85 * Math.sin(ang),
            c[2] + body.lungRadii[2] * zf,
          ];
          if (septal) {
            // thickened septa: 1.8 mm lines of 1–2 cm running in from the pleura (a fine-scale finding: thick
            // slices blur them into faint haze)
            const len = rng.uniform(10, 20),
              dx = -Math.cos(ang) + rng.uniform(-0.4, 0.4),
              dy = -Math.sin(ang) + rng.uniform(-0.4, 0.4),
              dz = rng.uniform(-0.3, 0.3);
            const norm = Math.hypot(dx, dy, dz);
            capsule(
              g,
              p,
              [p[0] + (dx / norm) * len, p[1] + (dy / norm) * len, p[2] + (dz / norm) * len],
              0.9,
              -100,
              within(LUNGS),
            );
          } else {
            const len = rng.uniform(15, 35);
            capsule(
              g,
              p,
              [p[0] + rng.uniform(-1, 1) * len, p[1] + rng.uniform(-1, 1) * len, p[2] + rng.uniform(-1, 1) * len * 0.5],
              2.2,
              -60,
              within(LUNGS),
            );
          }
        }
      }
      return;
    }
  }
}
