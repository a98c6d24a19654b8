// Scan checks: is this scan what the model's preset expects, and is it intact? A scan as read (data/scan.ts) is
// judged against a preset — the model's own, whichever model it is — for its geometry (voxel size, orientation,
// obliquity, missing slices), its value scale (HU, or the signs of a missing, doubled or −8192 intercept), its
// content (all air, constant) and its body region and extent against the preset's field of view. Each warning has a
// code, a severity and a message that names the fix; 'refuse' marks a result that would be meaningless, which
// `analyze`, `index` and the server refuse unless told to go on (--force).
import { affineToAxcodes } from '../io/nifti.js';
import { type Preset } from './presets.js';
import { type Scan } from './scan.js';
import {
  BODY_HU,
  bodyMeasures,
  fractionInside,
  levels,
  sampleVolume,
  type Body,
  type Levels,
} from './scan-measures.js';
import { columnNorm } from './volume.js';

export type Severity = 'warn' | 'refuse';
export interface ScanWarning {
  code: string;
  severity: Severity;
  /** what is wrong and how to fix it (the option to pass, where there is one) */
  message: string;
  /** the option that addresses it, for a caller that offers the fix (the page): --intercept <value> or --force */
  fix?: { option: 'intercept'; value: number } | { option: 'force' };
}

export type Region = 'head' | 'chest' | 'other';
export interface ScanInspection {
  preset: string;
  /** (x, y, z) voxels and mm, the axis codes of the voxel axes, the largest angle between one and a patient axis */
  geometry: { shape: number[]; spacing: number[]; axes: string; obliquityDeg: number; orientation: string };
  /** the value scale (air: ≈ −1000 in HU), the scan's extent, and the body measures the region guess rests on */
  measures: Levels & {
    /** voxels strictly inside the preset's HU window, as the model would see them */
    inWindow: number;
    extentMm: number[];
    body: Body;
    region: Region;
  };
  warnings: ScanWarning[];
}

/** A scan refused by its checks (severity 'refuse'); its message names each reason and the override. */
export class ScanRefusedError extends Error {
  constructor(
    readonly scan: string,
    readonly warnings: ScanWarning[],
  ) {
    const reasons = warnings.filter((w) => w.severity === 'refuse');
    super(
      `${scan}: refused: ${reasons.map((w) => `[${w.code}] ${w.message}`).join('; ')}` +
        ' (--force analyses it anyway; the result would not be meaningful)',
    );
  }
}

/** Throws ScanRefusedError when a check refuses the scan, unless `force`. */
export function assertAcceptable(scan: string, inspection: ScanInspection, force = false): void {
  if (!force && inspection.warnings.some((w) => w.severity === 'refuse'))
    throw new ScanRefusedError(scan, inspection.warnings);
}

const OBLIQUE_DEG = 5;
/** Air belongs at ≈ −1000 HU; outside this band the value scale is off. */
const AIR_BAND: [number, number] = [-1300, -700];
/** Fewer body voxels than this: an empty scan. Fewer voxels inside the HU window: the model sees a constant. */
const MIN_BODY = 1e-3;
const MIN_IN_WINDOW = 0.01;
/** Extent along z against the preset's field of view: shorter leaves most of the input padding; longer is cut. */
const SHORT_EXTENT = 0.6;
const LONG_EXTENT = 1.6;
/**
 * The region guess. A chest CT's body encloses its lungs: lung-density air is ~15–40 % of the enclosed body area
 * (less where the scan reaches far into the abdomen), against < 5 % in a head (sinuses, mastoids) or an abdomen
 * (bowel gas). A head's largest axial cross-section is ~150–250 cm², an adult chest's or abdomen's 400–1000 cm².
 */
const CHEST_AIR = 0.08;
const HEAD_AIR = 0.05;
const HEAD_AREA_CM2 = 350;
/** The regions a model trained on a preset's region accepts; a region not listed here is not checked. */
const ACCEPTS: Record<string, Region[]> = { chest: ['chest'], head: ['head'], abdomen: ['other', 'chest'] };

const fmt = (v: number, digits = 0) => v.toFixed(digits);
const pct = (f: number) => `${(100 * f).toFixed(f < 0.01 ? 2 : 1)} %`;

export function guessRegion(b: Body): Region {
  if (b.enclosedAir >= CHEST_AIR) return 'chest';
  if (b.enclosedAir < HEAD_AIR && b.maxCrossSectionCm2 < HEAD_AREA_CM2) return 'head';
  return 'other';
}

/** The largest angle (degrees) between a voxel axis and the patient axis it runs closest to. */
export function obliquity(affine: number[][]): number {
  let worst = 0;
  for (let c = 0; c < 3; c++) {
    const n = columnNorm(affine, c);
    if (!(n > 0)) continue;
    const cos = Math.max(...[0, 1, 2].map((r) => Math.abs(affine[r]![c]!) / n));
    worst = Math.max(worst, (Math.acos(Math.min(1, cos)) * 180) / Math.PI);
  }
  return worst;
}

/** The value-scale warning, if air is not where HU put it: a missing, doubled or −8192 intercept, or other. */
function valueScale(l: Levels, s: Scan): { warning?: ScanWarning; shift: number } {
  const { air, min } = l;
  if (air >= AIR_BAND[0] && air <= AIR_BAND[1]) return { shift: 0 };
  const given = s.header.intercept;
  const fixWith = (shift: number, code: string, why: string): { warning: ScanWarning; shift: number } => {
    const value = given + shift;
    return {
      shift,
      warning: {
        code,
        severity: 'warn',
        message:
          `air lies at ≈ ${fmt(air)} (lowest value ${fmt(min)}) where HU put it at ≈ −1000: ${why}; ` +
          `pass --intercept ${value}`,
        fix: { option: 'intercept', value },
      },
    };
  };
  const header = s.header.rescale.intercept;
  const headerNote = header !== 0 ? ` (the file's own rescale intercept is ${header}, already applied)` : '';
  if (air > -200)
    return fixWith(
      -1024,
      'no-intercept',
      `the values look stored without their intercept${min >= 0 ? ', all ≥ 0 as in CT-RATE v1 files' : ''}` +
        `${given !== 0 ? ` even after --intercept ${given}` : ''}; if they are HU of a scan with no air in view, ` +
        'ignore this',
    );
  if (air < -1500 && air >= -2600)
    return fixWith(
      1024,
      'double-rescale',
      "the rescale intercept was applied twice (as when CT-RATE v2 values, already HU, get the metadata's −1024 " +
        `again; a slope applied twice looks alike, with soft tissue near +80 instead of −980)${headerNote}`,
    );
  if (air < -7000 && air >= -10500)
    return fixWith(
      8192,
      'intercept-8192',
      `an intercept of −8192 (as CT-RATE's metadata and some v2 headers list) was applied to values already in HU` +
        headerNote,
    );
  return {
    shift: 0,
    warning: {
      code: 'hu-range',
      severity: 'warn',
      message:
        `air lies at ≈ ${fmt(air)} (values ${fmt(min)} … ${fmt(l.max)}), not at ≈ −1000: the values may not be HU ` +
        `(another slope or intercept, or not CT)${headerNote}; fix the file's rescale or pass --intercept`,
    },
  };
}

/** Judges a scan against the preset of the model it is for. */
export function inspectScan(s: Scan, preset: Preset): ScanInspection {
  const warnings: ScanWarning[] = [];
  const add = (code: string, severity: Severity, message: string, fix?: ScanWarning['fix']) =>
    warnings.push({ code, severity, message, ...(fix ? { fix } : {}) });
  const force = { option: 'force' } as const;
  const h = s.header;
  const shape = [...s.data.shape].reverse();
  const axes = (() => {
    try {
      return affineToAxcodes(s.affine)
        .map((c) => c ?? '?')
        .join('');
    } catch {
      return '???';
    }
  })();

  // geometry
  const unstated = ['x', 'y', 'z'].filter((_, i) => !(h.statedSpacing[i]! > 0));
  if (unstated.length)
    add(
      'no-spacing',
      'refuse',
      `the voxel size along ${unstated.join(', ')} is not stated ` +
        `(${h.format === 'nifti' ? 'pixdim 0' : 'no PixelSpacing'}): ` +
        '1 mm was assumed, so the model would see the anatomy at a wrong scale; write the voxel size into the file ' +
        '(or pass --force to analyse it as 1 mm voxels)',
      force,
    );
  if (h.orientation === 'none')
    add(
      'no-orientation',
      'warn',
      `the header states no orientation (qform_code and sform_code 0): the axes are taken as stored (${axes}), so ` +
        'left/right, front/back or head/feet may be swapped; write the orientation into the file (e.g. convert ' +
        'the DICOM series again with `t3d convert`)',
    );
  const oblique = obliquity(s.affine);
  if (oblique > OBLIQUE_DEG)
    add(
      'oblique',
      'warn',
      `the voxel axes are ${fmt(oblique, 1)}° off the patient axes (an oblique acquisition or gantry tilt): ` +
        'preprocessing only permutes and flips axes, so the model sees the anatomy rotated by that much; resample ' +
        'the scan to an axis-aligned grid first',
    );
  if (h.gaps.length) {
    const missing = h.gaps.reduce((n, g) => n + Math.max(0, Math.round(g.distance / g.expected) - 1), 0);
    const worst = h.gaps.reduce((a, g) => (g.distance > a.distance ? g : a));
    add(
      'slice-gap',
      'warn',
      `${h.gaps.length} irregular step(s) between slices, about ${missing} missing slice(s) (up to ` +
        `${fmt(worst.distance, 2)} mm where the series steps ${fmt(worst.expected, 2)} mm): the volume is stretched ` +
        'across them, so anatomy is misplaced along z; fetch or export the complete series',
    );
  }

  // values and content
  const sample = sampleVolume(s);
  const l = levels(sample.values);
  const [lo, hi] = preset.huWindow;
  const inWindow = fractionInside(sample.values, lo, hi);
  const scale = valueScale(l, s);
  const constant = l.max - l.min < 1;
  const body = bodyMeasures(sample, scale.shift);
  const airOnly = !constant && body.fraction < MIN_BODY && bodyMeasures(sample).fraction < MIN_BODY;
  if (constant)
    add(
      'constant',
      'refuse',
      `every voxel is ${fmt(l.min)}: there is no image (pass --force to analyse it anyway)`,
      force,
    );
  else if (airOnly)
    add(
      'all-air',
      'refuse',
      `${pct(body.fraction)} of the voxels are denser than ${BODY_HU} HU: the volume holds only air (an empty or ` +
        'failed reconstruction), nothing to analyse (pass --force to analyse it anyway)',
      force,
    );
  if (scale.warning && !constant) warnings.push(scale.warning);
  if (!constant && !airOnly && inWindow < MIN_IN_WINDOW)
    add(
      'window-empty',
      'refuse',
      `only ${pct(inWindow)} of the voxels fall inside the model's HU window [${lo}, ${hi}]: it would see a ` +
        `constant image; ${scale.warning ? 'fix the value scale as above' : 'check the values are HU'} ` +
        '(or pass --force to analyse it anyway)',
      scale.warning?.fix ?? force,
    );

  // region and field of view
  const region = guessRegion(body);
  if (!constant && !airOnly) {
    const fovZ = preset.shape[0] * preset.spacing[2];
    const z = sample.extentMm[2]!;
    const what = preset.region ? `${/^[aeiou]/.test(preset.region) ? 'an' : 'a'} ${preset.region} CT` : 'a scan';
    // a 'resize' preset stretches the whole scan onto its input whatever its extent: nothing is padded or cut
    const fixedFov = preset.geometry !== 'resize';
    if (fixedFov && z < SHORT_EXTENT * fovZ)
      add(
        'short-extent',
        'warn',
        `the scan spans ${fmt(z)} mm from feet to head, the model's input ${fmt(fovZ)} mm (preset ${preset.name}): ` +
          `${fmt(100 * (1 - z / fovZ))} % of it will be padding; give it ${what} that covers its field of view`,
      );
    else if (fixedFov && z > LONG_EXTENT * fovZ)
      add(
        'long-extent',
        'warn',
        `the scan spans ${fmt(z)} mm from feet to head, the model's input ${fmt(fovZ)} mm (preset ${preset.name}): ` +
          `only the central ${fmt(fovZ)} mm are kept; crop the scan to ` +
          `${preset.region ?? 'the region of interest'} first`,
      );
    const accepts = preset.region ? ACCEPTS[preset.region] : undefined;
    if (accepts && !accepts.includes(region)) {
      const looks = region === 'other' ? `does not look like ${what}` : `looks like a ${region} CT`;
      add(
        'region',
        'warn',
        `this ${looks} (largest body cross-section ${fmt(body.maxCrossSectionCm2)} cm², lung-density air ` +
          `${pct(body.enclosedAir)} of the body; a chest CT has ≥ ${fmt(100 * CHEST_AIR)} %, a head < ` +
          `${HEAD_AREA_CM2} cm²), but the model (preset ${preset.name}) was trained on ${preset.region} CT: its ` +
          `findings mean nothing here; use a model trained on ${region === 'other' ? 'this region' : `${region} CT`}`,
      );
    }
  }
  return {
    preset: preset.name,
    geometry: { shape, spacing: [...s.spacing], axes, obliquityDeg: oblique, orientation: h.orientation },
    measures: { ...l, inWindow, extentMm: sample.extentMm, body, region },
    warnings,
  };
}
