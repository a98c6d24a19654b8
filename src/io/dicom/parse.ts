// DICOM Part 10 parsing: file meta, then the top-level dataset up to the pixel data, in any supported
// encoding. Only the tags a volume needs are kept; sequences (defined or undefined length) are skipped
// without being interpreted. Every read is bounds-checked, so a damaged file fails with its offset.

import { inflateRawSync } from 'node:zlib';
import { DicomError } from './errors.js';
import { transferSyntax, type TransferSyntax } from './syntax.js';

export interface DicomHeader {
  transferSyntax: TransferSyntax;
  seriesInstanceUID?: string;
  seriesNumber?: number;
  modality?: string;
  description?: string;
  instanceNumber?: number;
  /** ImagePositionPatient: LPS mm of the centre of the first transmitted pixel. */
  position?: number[];
  /** ImageOrientationPatient: row direction (increasing column index), then column direction, LPS. */
  orientation?: number[];
  /** PixelSpacing: [between rows, between columns] mm. */
  pixelSpacing?: number[];
  sliceThickness?: number;
  rows?: number;
  columns?: number;
  samplesPerPixel: number;
  photometric?: string;
  frames: number;
  bitsAllocated?: number;
  bitsStored?: number;
  pixelRepresentation: number;
  slope: number;
  intercept: number;
}

/** Where the pixel data lies in `ParsedDicom.bytes`: one native block, or the fragments of one frame. */
export type PixelLocation =
  | { kind: 'native'; offset: number; length: number }
  | { kind: 'encapsulated'; fragments: { offset: number; length: number }[] };

export interface ParsedDicom {
  header: DicomHeader;
  /** The buffer the locations refer to: the file, or the inflated dataset of a deflated file. */
  bytes: Uint8Array;
  pixels?: PixelLocation;
}

const UNDEFINED = 0xffffffff;
const PIXEL_DATA = 0x7fe00010;
const ITEM = 0xfffee000;
const ITEM_END = 0xfffee00d;
const SEQUENCE_END = 0xfffee0dd;
const MAX_DEPTH = 64; // nested sequences deeper than this are a corrupt or hostile file
const MAX_INFLATED = 2 ** 31 - 1;
// VRs whose explicit header has 2 reserved bytes and a 4-byte length.
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);
const ALL_VRS = new Set([
  ...LONG_VRS,
  'AE',
  'AS',
  'AT',
  'CS',
  'DA',
  'DS',
  'DT',
  'FD',
  'FL',
  'IS',
  'LO',
  'LT',
  'PN',
  'SH',
  'SL',
  'SS',
  'ST',
  'TM',
  'UI',
  'UL',
  'US',
]);
const latin1 = new TextDecoder('latin1');

const TAG = {
  transferSyntax: 0x00020010,
  modality: 0x00080060,
  description: 0x0008103e,
  sliceThickness: 0x00180050,
  seriesInstanceUID: 0x0020000e,
  seriesNumber: 0x00200011,
  instanceNumber: 0x00200013,
  position: 0x00200032,
  orientation: 0x00200037,
  samplesPerPixel: 0x00280002,
  photometric: 0x00280004,
  frames: 0x00280008,
  rows: 0x00280010,
  columns: 0x00280011,
  pixelSpacing: 0x00280030,
  bitsAllocated: 0x00280100,
  bitsStored: 0x00280101,
  pixelRepresentation: 0x00280103,
  intercept: 0x00281052,
  slope: 0x00281053,
} as const;
const WANTED: ReadonlySet<number> = new Set(Object.values(TAG));

interface Element {
  tag: number;
  vr: string;
  length: number;
  value: number;
}

/** Reads elements of one encoding from one buffer; `fail` names the file in every error. */
class Reader {
  readonly view: DataView;
  constructor(
    readonly bytes: Uint8Array,
    readonly le: boolean,
    readonly explicit: boolean,
    readonly fail: (why: string) => never,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  need(pos: number, n: number, what: string): void {
    if (pos + n > this.bytes.length)
      this.fail(`truncated: ${what} at offset ${pos} needs ${n} bytes, ${Math.max(0, this.bytes.length - pos)} remain`);
  }

  u16(pos: number): number {
    return this.view.getUint16(pos, this.le);
  }
  u32(pos: number): number {
    return this.view.getUint32(pos, this.le);
  }

  element(pos: number, explicit = this.explicit): Element {
    this.need(pos, 8, 'element header');
    const tag = ((this.u16(pos) << 16) | this.u16(pos + 2)) >>> 0;
    if (tag >>> 16 === 0xfffe || !explicit) return { tag, vr: '', length: this.u32(pos + 4), value: pos + 8 };
    const vr = String.fromCharCode(this.bytes[pos + 4]!, this.bytes[pos + 5]!);
    if (!LONG_VRS.has(vr)) return { tag, vr, length: this.u16(pos + 6), value: pos + 8 };
    this.need(pos, 12, 'element header');
    return { tag, vr, length: this.u32(pos + 8), value: pos + 12 };
  }

  /** Position after a defined-length value, checked against the end of the buffer. */
  skip(el: Element): number {
    this.need(el.value, el.length, `value of ${tagName(el.tag)}`);
    return el.value + el.length;
  }

  /** Skips the items of an undefined-length sequence; UN sequences are implicit VR by definition. */
  skipSequence(pos: number, explicit: boolean, depth: number): number {
    if (depth > MAX_DEPTH) this.fail(`sequences nested deeper than ${MAX_DEPTH} at offset ${pos}`);
    for (;;) {
      const item = this.element(pos, false);
      if (item.tag === SEQUENCE_END) return item.value;
      if (item.tag !== ITEM) this.fail(`expected a sequence item at offset ${pos}, found ${tagName(item.tag)}`);
      pos = item.length === UNDEFINED ? this.skipItem(item.value, explicit, depth + 1) : this.skip(item);
    }
  }

  private skipItem(pos: number, explicit: boolean, depth: number): number {
    for (;;) {
      const el = this.element(pos, explicit);
      if (el.tag === ITEM_END) return el.value;
      pos = this.skipValue(el, explicit, depth);
    }
  }

  skipValue(el: Element, explicit: boolean, depth: number): number {
    if (el.length !== UNDEFINED) return this.skip(el);
    return this.skipSequence(el.value, explicit && el.vr !== 'UN', depth);
  }

  /** Encapsulated pixel data: the basic offset table item, then fragments, then a sequence delimiter. */
  fragments(pos: number): { offset: number; length: number }[] {
    const out: { offset: number; length: number }[] = [];
    for (let first = true; ; first = false) {
      const item = this.element(pos, false);
      if (item.tag === SEQUENCE_END) return out;
      if (item.tag !== ITEM || item.length === UNDEFINED)
        this.fail(`bad encapsulated pixel data item ${tagName(item.tag)} at offset ${pos}`);
      pos = this.skip(item);
      if (!first) out.push({ offset: item.value, length: item.length });
    }
  }
}

const tagName = (tag: number): string =>
  `(${(tag >>> 16).toString(16).padStart(4, '0')},${(tag & 0xffff).toString(16).padStart(4, '0')})`.toUpperCase();

/**
 * Parses a DICOM file. Files without the 128-byte preamble and 'DICM' marker are accepted when they start
 * like a dataset (group 0002 or 0008): old ACR-NEMA-style exports are implicit VR little endian.
 */
export function parseDicom(file: Uint8Array, path: string): ParsedDicom {
  const fail = (why: string): never => {
    throw new DicomError(path, why);
  };
  const hasMarker = file.length >= 132 && latin1.decode(file.subarray(128, 132)) === 'DICM';
  const start = hasMarker ? 132 : 0;
  const raw = hasMarker ? undefined : rawEncoding(file);
  if (!hasMarker && !raw) {
    throw new DicomError(
      path,
      `not a DICOM file (no 'DICM' marker at byte 128 and no dataset at the start; ${file.length} bytes)`,
      'not-dicom',
    );
  }
  const metaReader = new Reader(file, true, raw !== 'implicit-le', fail);
  let pos = start;
  let tsUid: string | undefined;
  while (pos + 8 <= file.length && metaReader.u16(pos) === 0x0002) {
    const el = metaReader.element(pos);
    const next = metaReader.skipValue(el, true, 0);
    if (el.tag === TAG.transferSyntax) tsUid = text(file.subarray(el.value, next));
    pos = next;
  }
  if (hasMarker && !tsUid) fail('file meta has no TransferSyntaxUID (0002,0010)');
  let ts: TransferSyntax;
  try {
    ts = transferSyntax(tsUid ?? (raw === 'explicit-le' ? '1.2.840.10008.1.2.1' : '1.2.840.10008.1.2'));
  } catch (e) {
    return fail((e as Error).message);
  }
  let bytes = file;
  if (ts.encoding === 'deflated-le') {
    try {
      bytes = inflateRawSync(file.subarray(pos), { maxOutputLength: MAX_INFLATED });
    } catch (e) {
      fail(`corrupt deflated dataset (${(e as Error).message})`);
    }
    pos = 0;
  }
  const r = new Reader(bytes, ts.encoding !== 'explicit-be', ts.encoding !== 'implicit-le', fail);
  const values = new Map<number, { vr: string; value: Uint8Array }>();
  let pixels: PixelLocation | undefined;
  while (pos < bytes.length) {
    const el = r.element(pos);
    if (el.tag === PIXEL_DATA) {
      pixels =
        el.length === UNDEFINED
          ? { kind: 'encapsulated', fragments: r.fragments(el.value) }
          : { kind: 'native', offset: el.value, length: el.length };
      if (pixels.kind === 'native') r.skip(el);
      break;
    }
    const next = r.skipValue(el, r.explicit, 0);
    if (WANTED.has(el.tag) && el.length !== UNDEFINED)
      values.set(el.tag, { vr: el.vr, value: bytes.subarray(el.value, next) });
    pos = next;
  }
  return { header: header(values, ts, r), bytes, pixels };
}

/** A preamble-less file must start with a group 0002 or 0008 element whose header is plausible. */
function rawEncoding(file: Uint8Array): 'implicit-le' | 'explicit-le' | undefined {
  if (file.length < 8) return undefined;
  const group = file[0]! | (file[1]! << 8);
  if (group !== 0x0002 && group !== 0x0008) return undefined;
  if (ALL_VRS.has(String.fromCharCode(file[4]!, file[5]!))) return 'explicit-le';
  const length = (file[4]! | (file[5]! << 8) | (file[6]! << 16)) + file[7]! * 2 ** 24;
  return length <= file.length - 8 ? 'implicit-le' : undefined;
}

const text = (b: Uint8Array): string =>
  latin1
    .decode(b)
    .replace(/[\0 ]+$/, '')
    .trim();

function header(values: Map<number, { vr: string; value: Uint8Array }>, ts: TransferSyntax, r: Reader): DicomHeader {
  const str = (tag: number): string | undefined => {
    const v = values.get(tag);
    return v && v.value.length > 0 ? text(v.value) : undefined;
  };
  const nums = (tag: number, name: string, count?: number): number[] | undefined => {
    const s = str(tag);
    if (s === undefined) return undefined;
    const out = s.split('\\').map((p) => Number(p.trim()));
    if (out.some((n) => !Number.isFinite(n)) || (count !== undefined && out.length !== count)) {
      r.fail(`${name} ${tagName(tag)} is '${s}', expected ${count ?? 'a list of'} number${count === 1 ? '' : 's'}`);
    }
    return out;
  };
  const num = (tag: number, name: string): number | undefined => nums(tag, name, 1)?.[0];
  // US values in the dataset's byte order; in implicit VR the dictionary says US for all of these.
  const us = (tag: number, name: string): number | undefined => {
    const v = values.get(tag);
    if (!v) return undefined;
    if (v.value.length !== 2) r.fail(`${name} ${tagName(tag)} has ${v.value.length} bytes, expected 2`);
    return new DataView(v.value.buffer, v.value.byteOffset, 2).getUint16(0, r.le);
  };
  return {
    transferSyntax: ts,
    seriesInstanceUID: str(TAG.seriesInstanceUID),
    seriesNumber: num(TAG.seriesNumber, 'SeriesNumber'),
    modality: str(TAG.modality),
    description: str(TAG.description),
    instanceNumber: num(TAG.instanceNumber, 'InstanceNumber'),
    position: nums(TAG.position, 'ImagePositionPatient', 3),
    orientation: nums(TAG.orientation, 'ImageOrientationPatient', 6),
    pixelSpacing: nums(TAG.pixelSpacing, 'PixelSpacing', 2),
    sliceThickness: num(TAG.sliceThickness, 'SliceThickness'),
    rows: us(TAG.rows, 'Rows'),
    columns: us(TAG.columns, 'Columns'),
    samplesPerPixel: us(TAG.samplesPerPixel, 'SamplesPerPixel') ?? 1,
    photometric: str(TAG.photometric),
    frames: num(TAG.frames, 'NumberOfFrames') ?? 1,
    bitsAllocated: us(TAG.bitsAllocated, 'BitsAllocated'),
    bitsStored: us(TAG.bitsStored, 'BitsStored'),
    pixelRepresentation: us(TAG.pixelRepresentation, 'PixelRepresentation') ?? 0,
    slope: num(TAG.slope, 'RescaleSlope') ?? 1,
    intercept: num(TAG.intercept, 'RescaleIntercept') ?? 0,
  };
}
