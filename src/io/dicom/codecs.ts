// JPEG lossless, JPEG-LS and JPEG 2000 slices are decoded by GDCM compiled to WebAssembly (@itk-wasm/dicom):
// its .wasm ships inside the npm package and is read from node_modules, nothing is fetched. It is loaded only
// when a series needs it. It decodes a whole list of files per call (~50 ms of start-up each), and it
// applies ONE RescaleSlope/Intercept to every file of a call, so files are grouped by their rescale first.

import { resolve } from 'node:path';
import { DicomError } from './errors.js';
import type { PixelFormat } from './pixels.js';

export interface CompressedSlice {
  path: string;
  /** Slice index in the sorted volume. */
  index: number;
  slope: number;
  intercept: number;
}

type ReadSeries = typeof import('@itk-wasm/dicom').readImageDicomFileSeriesNode;
let reader: Promise<ReadSeries> | undefined;

/** The Emscripten runtime stores its exit status in process.exitCode (0, or 1 after a C++ exception): keep ours. */
const keepExitCode =
  (read: ReadSeries): ReadSeries =>
  async (options) => {
    const code = process.exitCode;
    try {
      return await read(options);
    } finally {
      process.exitCode = code;
    }
  };

function loadReader(): Promise<ReadSeries> {
  reader ??= import('@itk-wasm/dicom').then(
    (m) => keepExitCode(m.readImageDicomFileSeriesNode),
    (e: Error) => {
      reader = undefined;
      throw new Error(`decoding JPEG-family DICOM needs the @itk-wasm/dicom package (${e.message})`);
    },
  );
  return reader;
}

/** Decodes the slices and writes their rescaled values at out[index·rows·columns ..]. */
export async function decodeCompressed(
  slices: CompressedSlice[],
  f: PixelFormat,
  out: Float32Array,
  series: string,
): Promise<void> {
  const read = await loadReader();
  const n = f.rows * f.columns;
  const groups = new Map<string, CompressedSlice[]>();
  for (const s of slices) {
    const key = `${s.slope}/${s.intercept}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key)!.push(s);
  }
  for (const group of groups.values()) {
    const byPath = new Map(group.map((s) => [resolve(s.path), s.index]));
    let result: Awaited<ReturnType<ReadSeries>>;
    try {
      // singleSortedSeries: take the files as given instead of letting GDCM regroup and resort them.
      result = await read({ inputImages: [...byPath.keys()], singleSortedSeries: true });
    } catch (e) {
      throw await culprit(read, group, series, e);
    }
    const { outputImage: img, sortedFilenames } = result;
    const names = sortedFilenames as string[];
    const data = img.data;
    if (
      !data ||
      data instanceof BigInt64Array ||
      data instanceof BigUint64Array ||
      data.length !== n * group.length ||
      names.length !== group.length
    ) {
      throw new Error(
        `series ${series}: GDCM returned an image of size [${img.size}] ` +
          `for ${group.length} files of ${f.columns}x${f.rows}`,
      );
    }
    names.forEach((name, s) => {
      const index = byPath.get(name);
      if (index === undefined) throw new Error(`series ${series}: GDCM returned an unknown file ${name}`);
      out.set(data.subarray(s * n, (s + 1) * n), index * n);
    });
  }
}

/** GDCM fails a whole call without naming the file: decode one at a time (failure path only) to find it. */
async function culprit(
  read: ReadSeries,
  group: CompressedSlice[],
  series: string,
  groupError: unknown,
): Promise<Error> {
  // A release-built pipeline throws a bare number for C++ exceptions (and prints a note of its own).
  const reason = (e: unknown): string =>
    e instanceof Error && e.message.trim() ? e.message.trim() : 'corrupt or unsupported stream';
  for (const s of group) {
    try {
      await read({ inputImages: [resolve(s.path)], singleSortedSeries: true });
    } catch (e) {
      return new DicomError(s.path, `GDCM could not decode the compressed pixel data (${reason(e)})`);
    }
  }
  return new Error(
    `${series}: GDCM could not decode ${group.length} compressed files together (${reason(groupError)})`,
  );
}
