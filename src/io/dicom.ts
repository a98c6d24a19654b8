// DICOM series → volumes, in the NIfTI/nibabel convention:
// - data holds the slices' pixels unflipped, column index fastest: data[i + columns·(j + rows·k)] is column i,
//   row j of the k-th slice, slices sorted by position along the normal (row direction × column direction);
// - shape is [columns, rows, slices]; spacing is [column spacing, row spacing, slice step] in mm;
// - affine maps (i, j, k) to RAS+ mm: DICOM's LPS patient coordinates with x and y negated, as nibabel does;
// - values are slope·stored + intercept per slice (HU for CT): Int16Array when every value is an integer
//   that fits, else Float32Array.
// Transfer syntaxes: implicit/explicit VR little endian, deflated explicit LE, explicit VR big endian and RLE
// lossless are decoded here; JPEG lossless (process 14, any predictor), JPEG-LS and JPEG 2000 by GDCM in
// WebAssembly (dicom/codecs.ts). Single-frame grayscale images only (no enhanced multi-frame objects).
// Failures throw DicomError naming the file or folder and the reason (DicomError.kind tells which sort).
// Reading is two passes: headers of every file (grouping, sorting and checks, cheap), then pixel data of the
// chosen series only, so a bad series fails before anything big is allocated.

export { DicomError, type DicomErrorKind } from './dicom/errors.js';
export type { SliceGap } from './dicom/series.js';
export {
  readDicomSeries,
  readDicomVolume,
  scanDicomSeries,
  type DicomSeries,
  type DicomVolume,
  type ReadDicomOptions,
} from './dicom/volume.js';
export { convertDicomToNifti, type WrittenNifti } from './dicom/to-nifti.js';
