// DICOM series → .nii / .nii.gz files, one per series.

import { writeNifti } from '../nifti-write.js';
import { scanDicomSeries, type ReadDicomOptions } from './volume.js';

export interface WrittenNifti {
  path: string;
  seriesInstanceUID: string;
  description?: string;
  modality?: string;
  shape: [number, number, number];
  spacing: [number, number, number];
  dtype: 'int16' | 'float32';
  warnings: string[];
}

/**
 * Writes each series of `input` as NIfTI (int16 HU when exact, else float32; affine in sform and qform).
 * One series goes to `outPath`; several go to `<stem>_1.nii.gz`, `<stem>_2.nii.gz`, … in SeriesNumber order.
 * Every series is checked before the first file is written, and volumes are decoded one at a time.
 */
export async function convertDicomToNifti(
  input: string | string[],
  outPath: string,
  opts: ReadDicomOptions = {},
): Promise<WrittenNifti[]> {
  const m = /^(.*?)(\.nii(?:\.gz)?)$/.exec(outPath);
  if (!m) throw new Error(`${outPath}: output name must end in .nii or .nii.gz`);
  const series = await scanDicomSeries(input, opts);
  const written: WrittenNifti[] = [];
  for (const [n, s] of series.entries()) {
    const v = await s.read();
    const path = series.length === 1 ? outPath : `${m[1]}_${n + 1}${m[2]}`;
    // NIfTI descrip: printable ASCII, 80 bytes with the terminating NUL.
    const description = (v.description ?? v.modality ?? '').replace(/[^\x20-\x7e]/g, '?').slice(0, 79);
    await writeNifti(path, { data: v.data, shape: v.shape, affine: v.affine, description });
    written.push({
      path,
      seriesInstanceUID: v.seriesInstanceUID,
      description: v.description,
      modality: v.modality,
      shape: v.shape,
      spacing: v.spacing,
      dtype: v.data instanceof Int16Array ? 'int16' : 'float32',
      warnings: v.warnings,
    });
  }
  return written;
}
