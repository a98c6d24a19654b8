// Scanning inputs into checked series, and decoding a series into a volume (conventions: ../dicom.ts).

import { decodeCompressed, type CompressedSlice } from './codecs.js';
import { DicomError } from './errors.js';
import { listInputs, readBytes } from './files.js';
import { parseDicom, type DicomHeader } from './parse.js';
import { decodeSlice } from './pixels.js';
import { planVolume, seriesLabel, type PlanOptions, type SliceGap, type SliceInfo, type VolumePlan } from './series.js';

export interface ReadDicomOptions extends PlanOptions {
  /** Reject series of any other modality, e.g. 'CT' (case-insensitive). */
  modality?: string;
  /** Read only this series. */
  seriesInstanceUID?: string;
}

export interface DicomVolume {
  data: Int16Array | Float32Array;
  shape: [number, number, number];
  spacing: [number, number, number];
  /** 4x4 voxel → RAS+ mm. */
  affine: number[][];
  /** RAS+ mm of voxel (0, 0, 0), the first pixel of the lowest slice. */
  origin: [number, number, number];
  /** 3x3, columns are the RAS+ unit vectors of the i, j, k axes. */
  direction: number[][];
  seriesInstanceUID: string;
  seriesNumber?: number;
  modality?: string;
  description?: string;
  /** Source files in slice order. */
  files: string[];
  warnings: string[];
  /** Irregular steps between slices (missing slices, mixed spacing); empty when evenly spaced. */
  gaps: SliceGap[];
  /** false when the files state no PixelSpacing (1 mm was assumed in-plane) */
  pixelSpacingStated: boolean;
  /** the first slice's RescaleSlope and RescaleIntercept, already applied to data */
  rescale: { slope: number; intercept: number };
}

/** A checked series whose pixels are not read yet. */
export interface DicomSeries {
  seriesInstanceUID: string;
  seriesNumber?: number;
  modality?: string;
  description?: string;
  files: string[];
  shape: [number, number, number];
  read(): Promise<DicomVolume>;
}

/**
 * Finds, groups and checks the series in a folder (recursive), a file or a list of files, without decoding
 * pixels. In a folder, files that are not DICOM or hold no image are skipped (and reported in warnings);
 * in a file list they are errors. Series come in SeriesNumber, then SeriesInstanceUID, order.
 */
export async function scanDicomSeries(input: string | string[], opts: ReadDicomOptions = {}): Promise<DicomSeries[]> {
  const { files, where, folder } = await listInputs(input);
  const skipped: string[] = [];
  const groups = new Map<string, SliceInfo[]>();
  for (const path of files) {
    let header: DicomHeader;
    try {
      header = imageHeader(await readBytes(path), path);
    } catch (e) {
      if (folder && e instanceof DicomError && (e.kind === 'not-dicom' || e.kind === 'no-pixels')) {
        skipped.push(e.message);
        continue;
      }
      throw e;
    }
    const uid = header.seriesInstanceUID ?? '';
    if (!groups.has(uid)) groups.set(uid, []);
    groups.get(uid)!.push({ path, header });
  }
  if (groups.size === 0)
    throw new DicomError(
      where,
      `no DICOM images among ${files.length} file${files.length > 1 ? 's' : ''}: ${brief(skipped)}`,
    );
  let uids = [...groups.keys()].sort(
    (a, b) =>
      (groups.get(a)![0]!.header.seriesNumber ?? 0) - (groups.get(b)![0]!.header.seriesNumber ?? 0) || (a < b ? -1 : 1),
  );
  if (opts.seriesInstanceUID !== undefined) {
    if (!groups.has(opts.seriesInstanceUID))
      throw new DicomError(where, `no series ${opts.seriesInstanceUID}; found ${listSeries(uids, groups)}`);
    uids = [opts.seriesInstanceUID];
  }
  const skipNote = skipped.length
    ? [`skipped ${skipped.length} file${skipped.length > 1 ? 's' : ''} that hold no DICOM image: ${brief(skipped)}`]
    : [];
  return uids.map((uid) => {
    const slices = groups.get(uid)!;
    const h = slices[0]!.header;
    if (opts.modality && (h.modality ?? '').toUpperCase() !== opts.modality.toUpperCase()) {
      throw new DicomError(
        where,
        `${seriesLabel(uid, h)} (${slices.length} files, first ${slices[0]!.path}) ` +
          `has modality ${h.modality ?? '(none)'}, expected ${opts.modality}`,
      );
    }
    const plan = planVolume(where, uid, slices, opts);
    plan.warnings.unshift(...skipNote);
    if (!uid) plan.warnings.push(`${slices.length} files have no SeriesInstanceUID; they were grouped as one series`);
    return {
      seriesInstanceUID: uid,
      seriesNumber: h.seriesNumber,
      modality: h.modality,
      description: h.description,
      files: plan.slices.map((s) => s.path),
      shape: [plan.format.columns, plan.format.rows, plan.slices.length],
      read: () => readVolume(uid, plan),
    };
  });
}

/** Every series in the input, decoded. */
export async function readDicomSeries(input: string | string[], opts: ReadDicomOptions = {}): Promise<DicomVolume[]> {
  const volumes: DicomVolume[] = [];
  for (const s of await scanDicomSeries(input, opts)) volumes.push(await s.read());
  return volumes;
}

/** The input's only series (or the one named by seriesInstanceUID); several series are an error. */
export async function readDicomVolume(input: string | string[], opts: ReadDicomOptions = {}): Promise<DicomVolume> {
  const series = await scanDicomSeries(input, opts);
  if (series.length > 1) {
    const where = Array.isArray(input) ? `${input.length} files` : input;
    const names = series.map(
      (s) => `${s.seriesInstanceUID} "${s.description ?? ''}" (${s.modality ?? '?'}, ${s.files.length} files)`,
    );
    throw new DicomError(
      where,
      `found ${series.length} series, expected one: ${names.join('; ')}; choose one with ` +
        '--series <SeriesInstanceUID> (t3d analyze and t3d similar; option seriesInstanceUID in code), or write ' +
        'each as NIfTI with t3d convert',
    );
  }
  return series[0]!.read();
}

function imageHeader(bytes: Uint8Array, path: string): DicomHeader {
  const p = parseDicom(bytes, path);
  if (!p.pixels)
    throw new DicomError(
      path,
      'no pixel data (7FE0,0010): not an image (a DICOMDIR, report or presentation state?)',
      'no-pixels',
    );
  return p.header;
}

const brief = (reasons: string[]): string =>
  reasons.slice(0, 3).join('; ') + (reasons.length > 3 ? `; and ${reasons.length - 3} more` : '');

function listSeries(uids: string[], groups: Map<string, SliceInfo[]>): string {
  return uids.map((u) => `${seriesLabel(u, groups.get(u)![0]!.header)} (${groups.get(u)!.length} files)`).join('; ');
}

async function readVolume(uid: string, plan: VolumePlan): Promise<DicomVolume> {
  const { format: f, slices, affine } = plan;
  const first = slices[0]!.header;
  const n = f.rows * f.columns;
  const values = new Float32Array(n * slices.length);
  const compressed: CompressedSlice[] = [];
  const warnings = [...plan.warnings];
  const lossy = slices.filter((s) => s.header.transferSyntax.lossy);
  if (lossy.length)
    warnings.push(`${lossy.length} slices use the lossy ${lossy[0]!.header.transferSyntax.name} syntax`);
  for (const [k, s] of slices.entries()) {
    const { codec } = s.header.transferSyntax;
    if (codec !== 'native' && codec !== 'rle') {
      compressed.push({ path: s.path, index: k, slope: s.header.slope, intercept: s.header.intercept });
      continue;
    }
    const p = parseDicom(await readBytes(s.path), s.path);
    try {
      decodeSlice(p, f, values, k * n);
    } catch (e) {
      throw new DicomError(s.path, (e as Error).message);
    }
  }
  if (compressed.length) await decodeCompressed(compressed, f, values, seriesLabel(uid, first));
  return {
    data: int16IfExact(values),
    shape: [f.columns, f.rows, slices.length],
    spacing: plan.spacing,
    affine,
    origin: [affine[0]![3]!, affine[1]![3]!, affine[2]![3]!],
    direction: [0, 1, 2].map((r) => [0, 1, 2].map((c) => affine[r]![c]! / plan.spacing[c]!)),
    seriesInstanceUID: uid,
    seriesNumber: first.seriesNumber,
    modality: first.modality,
    description: first.description,
    files: slices.map((s) => s.path),
    warnings,
    gaps: plan.gaps,
    pixelSpacingStated: first.pixelSpacing !== undefined,
    rescale: { slope: first.slope, intercept: first.intercept },
  };
}

function int16IfExact(values: Float32Array): Int16Array | Float32Array {
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!(v >= -32768 && v <= 32767 && (v | 0) === v)) return values; // (v | 0) is ~5x faster than Number.isInteger
  }
  return new Int16Array(values);
}
