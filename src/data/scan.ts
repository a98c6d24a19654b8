// Reading one scan as a user gives it: a NIfTI file or a DICOM series folder, in HU, with an optional constant
// added first (raw CT-RATE volumes store values without their intercept) and a warning when air is not near −1000.
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import * as torch from '../torch/index.js';
import { readDicomVolume } from '../io/dicom.js';
import { loadVolume } from './cache.js';
import { type Volume } from './volume.js';

export interface ReadScanOptions {
  /** added to every value first (−1024 for raw CT-RATE volumes) */
  intercept?: number;
  /** a DICOM series with irregular steps between slices (missing slices) is an error instead of read as is */
  rejectGaps?: boolean;
  /** the SeriesInstanceUID to read from a DICOM folder that holds several series */
  series?: string;
  warn?: (line: string) => void;
}

export async function readScan(scan: string, o: ReadScanOptions = {}): Promise<Volume> {
  if (!existsSync(scan)) throw new Error(`${scan}: no such file or folder`);
  let vol: Volume;
  if (o.series !== undefined && !statSync(scan).isDirectory())
    throw new Error(`${scan}: --series ${o.series} applies to a DICOM series folder, not a file`);
  if (statSync(scan).isDirectory()) {
    const d = await readDicomVolume(scan, { seriesInstanceUID: o.series });
    if (o.rejectGaps && d.gaps.length > 0) {
      throw new Error(`${scan}: partial series: ${d.gaps.length} irregular step(s) between slices (missing slices?)`);
    }
    const [x, y, z] = d.shape;
    vol = { data: torch.tensor(d.data, [z, y, x]), spacing: d.spacing, affine: d.affine };
  } else vol = await loadVolume(scan, new Uint8Array(await readFile(scan)), 'image');
  const intercept = o.intercept;
  if (intercept !== undefined) {
    const shifted = torch.tidy(() => vol.data.to('float32').add(intercept));
    vol.data.dispose();
    vol = { ...vol, data: shifted };
  }
  const min = torch.tidy(() => vol.data.min().item());
  if (min > -200) {
    o.warn?.(
      `${scan}: lowest value is ${min}, but air is ≈ −1000 HU; if these are stored values, pass --intercept ` +
        '(−1024 for raw CT-RATE volumes)',
    );
  }
  return vol;
}
