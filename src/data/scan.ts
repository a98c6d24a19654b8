// Reading one scan as a user gives it: a NIfTI file or a DICOM series folder, in HU, with an optional constant
// added first (raw CT-RATE volumes store values without their intercept), and what its header said about it (the
// stated voxel size, where the orientation came from, the rescale, missing slices), which the scan checks judge
// (data/scan-checks.ts).
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import * as torch from '../torch/index.js';
import { readDicomVolume, type SliceGap } from '../io/dicom.js';
import { readNifti, sformAffine, type Mat4 } from '../io/nifti.js';
import { niftiVolume } from './cache.js';
import { columnNorm, type Volume } from './volume.js';

export interface ReadScanOptions {
  /** added to every value first (−1024 for raw CT-RATE volumes) */
  intercept?: number;
  /** a DICOM series with irregular steps between slices (missing slices) is an error instead of read as is */
  rejectGaps?: boolean;
  /** the SeriesInstanceUID to read from a DICOM folder that holds several series */
  series?: string;
}

/** What a scan's header says, beside the volume it describes. */
export interface ScanHeader {
  format: 'nifti' | 'dicom';
  /** where the affine came from; 'none': a NIfTI file with neither qform nor sform (axes assumed) */
  orientation: 'sform' | 'qform' | 'none' | 'dicom';
  /** voxel size (x, y, z) mm as the header states it; 0 where it states none (then 1 mm was assumed) */
  statedSpacing: [number, number, number];
  /** the header's own rescale (NIfTI scl_slope/scl_inter, DICOM RescaleSlope/Intercept), already applied */
  rescale: { slope: number; intercept: number };
  /** the constant added after it (--intercept), 0 when none */
  intercept: number;
  /** irregular steps between DICOM slices (missing slices) */
  gaps: SliceGap[];
}

export interface Scan extends Volume {
  header: ScanHeader;
}

export async function readScan(scan: string, o: ReadScanOptions = {}): Promise<Scan> {
  if (!existsSync(scan)) throw new Error(`${scan}: no such file or folder`);
  const intercept = o.intercept ?? 0;
  let vol: Volume, header: ScanHeader;
  if (o.series !== undefined && !statSync(scan).isDirectory())
    throw new Error(`${scan}: --series ${o.series} applies to a DICOM series folder, not a file`);
  if (statSync(scan).isDirectory()) {
    const d = await readDicomVolume(scan, { seriesInstanceUID: o.series });
    if (o.rejectGaps && d.gaps.length > 0) {
      throw new Error(`${scan}: partial series: ${d.gaps.length} irregular step(s) between slices (missing slices?)`);
    }
    const [x, y, z] = d.shape;
    vol = { data: torch.tensor(d.data, [z, y, x]), spacing: d.spacing, affine: d.affine };
    const s = d.spacing;
    header = {
      format: 'dicom',
      orientation: 'dicom',
      statedSpacing: d.pixelSpacingStated ? [s[0], s[1], s[2]] : [0, 0, s[2]],
      rescale: d.rescale,
      intercept,
      gaps: d.gaps,
    };
  } else {
    const img = await readNifti(new Uint8Array(await readFile(scan)), { name: scan, rejectNonFinite: true });
    vol = niftiVolume(img, scan);
    vol.affine = withUnitColumns(vol.affine);
    const h = img.header;
    const pixdim = [1, 2, 3].map((i) => (Number.isFinite(h.pixdim[i]) ? Math.abs(h.pixdim[i]!) : 0));
    const sform = sformAffine(h);
    const stated = img.affineSource === 'sform' ? [0, 1, 2].map((c) => columnNorm(sform, c)) : pixdim;
    header = {
      format: 'nifti',
      orientation: img.affineSource === 'fallback' ? 'none' : img.affineSource,
      statedSpacing: stated as [number, number, number],
      // nibabel's rule: a slope of 0 or NaN means the values are stored unscaled
      rescale:
        h.sclSlope && Number.isFinite(h.sclSlope)
          ? { slope: h.sclSlope, intercept: Number.isFinite(h.sclInter) ? h.sclInter : 0 }
          : noRescale,
      intercept,
      gaps: [],
    };
  }
  if (intercept !== 0) {
    const shifted = torch.tidy(() => vol.data.to('float32').add(intercept));
    vol.data.dispose();
    vol = { ...vol, data: shifted };
  }
  return { ...vol, header };
}

const noRescale = { slope: 1, intercept: 0 };

/** An sform column of zero length (no voxel size) becomes 1 mm along the world axis no other column takes, as
 * nibabel does for a zero pixdim, so that a scan analysed anyway (--force) has a usable geometry. */
function withUnitColumns(a: Mat4): Mat4 {
  const zero = [0, 1, 2].filter((c) => !(columnNorm(a, c) > 0));
  if (zero.length === 0) return a;
  const out = a.map((r) => r.slice());
  const dominant = (c: number) => [0, 1, 2].reduce((m, r) => (Math.abs(a[r]![c]!) > Math.abs(a[m]![c]!) ? r : m), 0);
  const taken = new Set([0, 1, 2].filter((c) => !zero.includes(c)).map(dominant));
  const free = [0, 1, 2].filter((r) => !taken.has(r));
  zero.forEach((c, k) => [0, 1, 2].forEach((r) => (out[r]![c] = r === free[k] ? 1 : 0)));
  return out;
}
