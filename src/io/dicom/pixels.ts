// Native and RLE pixel data → rescaled values (HU for CT) written into one slice of the output volume.

import type { DicomHeader, ParsedDicom } from './parse.js';

/** What a slice must agree on with its series, checked before any decoding. */
export interface PixelFormat {
  rows: number;
  columns: number;
  bitsAllocated: 8 | 16 | 32;
  bitsStored: number;
  signed: boolean;
}

/** Validates the image pixel module of a single-frame grayscale image; returns a reason when unusable. */
export function pixelFormat(h: DicomHeader): PixelFormat | string {
  const { rows, columns, bitsAllocated } = h;
  if (!rows || !columns) return `missing or zero Rows/Columns (${rows}x${columns})`;
  if (bitsAllocated !== 8 && bitsAllocated !== 16 && bitsAllocated !== 32)
    return `BitsAllocated ${bitsAllocated} is not 8, 16 or 32`;
  const bitsStored = h.bitsStored ?? bitsAllocated;
  if (bitsStored < 1 || bitsStored > bitsAllocated)
    return `BitsStored ${bitsStored} does not fit BitsAllocated ${bitsAllocated}`;
  if (h.samplesPerPixel !== 1) return `SamplesPerPixel ${h.samplesPerPixel}: only grayscale images make a volume`;
  if (h.photometric && !h.photometric.startsWith('MONOCHROME'))
    return `PhotometricInterpretation ${h.photometric} is not grayscale`;
  if (h.frames !== 1) return `NumberOfFrames ${h.frames}: multi-frame images are not supported`;
  if (h.slope === 0) return 'RescaleSlope is 0';
  return { rows, columns, bitsAllocated, bitsStored, signed: h.pixelRepresentation === 1 };
}

/** Decodes a native or RLE frame and writes slope·stored + intercept at out[offset ..]. */
export function decodeSlice(p: ParsedDicom, f: PixelFormat, out: Float32Array, offset: number): void {
  const n = f.rows * f.columns;
  const size = n * (f.bitsAllocated / 8);
  const loc = p.pixels!;
  const ts = p.header.transferSyntax;
  if ((ts.codec === 'native') !== (loc.kind === 'native'))
    throw new Error(`${ts.name} pixel data must ${ts.codec === 'native' ? 'not ' : ''}be encapsulated`);
  let le = ts.encoding !== 'explicit-be';
  let bytes: Uint8Array;
  if (loc.kind === 'native') {
    if (loc.length < size)
      throw new Error(
        `pixel data has ${loc.length} bytes, ${f.columns}x${f.rows}x${f.bitsAllocated / 8} needs ${size}`,
      );
    bytes = p.bytes.subarray(loc.offset, loc.offset + size);
  } else {
    bytes = decodeRle(joinFragments(p.bytes, loc.fragments), f.bitsAllocated / 8, n);
    le = true;
  }
  const stored = storedView(bytes, f, le);
  const { slope, intercept } = p.header;
  if (f.bitsStored === f.bitsAllocated) {
    for (let i = 0; i < n; i++) out[offset + i] = stored[i]! * slope + intercept;
    return;
  }
  // Bits above BitsStored may hold overlays or garbage; signed values are sign-extended from BitsStored.
  const mask = 2 ** f.bitsStored - 1;
  const half = 2 ** (f.bitsStored - 1);
  for (let i = 0; i < n; i++) {
    let v = stored[i]! & mask;
    if (f.signed && v >= half) v -= 2 * half;
    out[offset + i] = v * slope + intercept;
  }
}

const HOST_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** A typed view in host order: signed only when all allocated bits are value bits (else masked above). */
function storedView(bytes: Uint8Array, f: PixelFormat, le: boolean): ArrayLike<number> {
  const width = f.bitsAllocated / 8;
  const own = le !== HOST_LE ? byteswapped(bytes, width) : bytes.byteOffset % width !== 0 ? bytes.slice() : bytes;
  const signed = f.signed && f.bitsStored === f.bitsAllocated;
  const count = bytes.length / width;
  if (width === 1) return signed ? new Int8Array(own.buffer, own.byteOffset, count) : own;
  if (width === 2)
    return signed
      ? new Int16Array(own.buffer, own.byteOffset, count)
      : new Uint16Array(own.buffer, own.byteOffset, count);
  return signed
    ? new Int32Array(own.buffer, own.byteOffset, count)
    : new Uint32Array(own.buffer, own.byteOffset, count);
}

function byteswapped(bytes: Uint8Array, width: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i += width) for (let b = 0; b < width; b++) out[i + b] = bytes[i + width - 1 - b]!;
  return out;
}

export function joinFragments(bytes: Uint8Array, fragments: { offset: number; length: number }[]): Uint8Array {
  if (fragments.length === 0) throw new Error('encapsulated pixel data has no fragments');
  if (fragments.length === 1) return bytes.subarray(fragments[0]!.offset, fragments[0]!.offset + fragments[0]!.length);
  const out = new Uint8Array(fragments.reduce((s, f) => s + f.length, 0));
  let at = 0;
  for (const f of fragments) {
    out.set(bytes.subarray(f.offset, f.offset + f.length), at);
    at += f.length;
  }
  return out;
}

/**
 * DICOM RLE (PS3.5 Annex G): a 64-byte header with the segment count and offsets, then one PackBits segment
 * per byte plane, most significant plane first. Returns little-endian samples.
 */
export function decodeRle(frame: Uint8Array, width: number, n: number): Uint8Array {
  if (frame.length < 64) throw new Error(`RLE frame of ${frame.length} bytes is shorter than its 64-byte header`);
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const segments = view.getUint32(0, true);
  if (segments !== width)
    throw new Error(`RLE frame has ${segments} segments, expected ${width} for ${width * 8}-bit grayscale`);
  const out = new Uint8Array(n * width);
  for (let s = 0; s < segments; s++) {
    const start = view.getUint32(4 + 4 * s, true);
    const end = s + 1 < segments ? view.getUint32(8 + 4 * s, true) : frame.length;
    if (start < 64 || end > frame.length || start > end)
      throw new Error(`RLE segment ${s} offsets ${start}..${end} lie outside the ${frame.length}-byte frame`);
    const plane = width - 1 - s; // segment 0 holds the most significant bytes
    let o = 0;
    for (let i = start; i < end && o < n;) {
      const c = (frame[i++]! << 24) >> 24;
      if (c >= 0) {
        if (i + c + 1 > end) throw new Error(`RLE segment ${s} literal run overruns the segment`);
        for (let k = 0; k <= c && o < n; k++) out[o++ * width + plane] = frame[i++]!;
      } else if (c !== -128) {
        if (i >= end) throw new Error(`RLE segment ${s} ends inside a replicate run`);
        const v = frame[i++]!;
        for (let k = 0; k < 1 - c && o < n; k++) out[o++ * width + plane] = v;
      }
    }
    if (o < n) throw new Error(`RLE segment ${s} decodes to ${o} of ${n} bytes`);
  }
  return out;
}
