// Writes a volume as a CT Image Storage series: one explicit-VR-little-endian file per slice, the
// inverse of the reader's convention (columns i, rows j, slices k; RAS affine → DICOM LPS).
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';

const CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';
const LONG_VR = new Set(['OB', 'OW', 'OF', 'SQ', 'UT', 'UN']);

/** A deterministic UID under the 2.25 (UUID-derived) root. */
export function uidFrom(...parts: (string | number)[]): string {
  const hex = createHash('sha256').update(parts.join('/')).digest('hex').slice(0, 30);
  return `2.25.${BigInt(`0x${hex}`).toString()}`;
}

class Writer {
  private readonly chunks: Buffer[] = [];
  element(group: number, elem: number, vr: string, value: Buffer | string): void {
    let v = typeof value === 'string' ? Buffer.from(value, 'latin1') : value;
    if (v.length % 2) v = Buffer.concat([v, Buffer.from([vr === 'UI' || vr === 'OB' ? 0 : 0x20])]);
    const long = LONG_VR.has(vr);
    const head = Buffer.alloc(long ? 12 : 8);
    head.writeUInt16LE(group, 0);
    head.writeUInt16LE(elem, 2);
    head.write(vr, 4, 'latin1');
    if (long) head.writeUInt32LE(v.length, 8);
    else {
      if (v.length > 0xffff)
        throw new Error(`DICOM element (${group.toString(16)},${elem.toString(16)}) too long for ${vr}`);
      head.writeUInt16LE(v.length, 6);
    }
    this.chunks.push(head, v);
  }
  us(group: number, elem: number, n: number): void {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(n);
    this.element(group, elem, 'US', b);
  }
  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

const ds = (v: number) => String(Math.round(v * 1e6) / 1e6);

export interface CtSeriesOptions {
  /** stored values, (slices, rows, columns) C-order = NIfTI x-fastest */
  data: Int16Array;
  /** [columns, rows, slices] */
  shape: [number, number, number];
  /** RAS affine of (i, j, k); must be axis-aligned with i → L and j → P (what the synthetic generator writes) */
  affine: number[][];
  rescaleSlope: number;
  rescaleIntercept: number;
  patientId: string;
  seriesDescription?: string;
}

/** Writes IM0001.dcm … into `dir` (each file atomically); returns the file paths. */
export function writeCtSeries(dir: string, o: CtSeriesOptions): string[] {
  const [cols, rows, slices] = o.shape;
  const a = o.affine;
  // LPS direction cosines of the row (i) and column (j) directions
  const norm = (c: number) => Math.hypot(a[0]![c]!, a[1]![c]!, a[2]![c]!);
  const lps = (c: number) => [-a[0]![c]! / norm(c), -a[1]![c]! / norm(c), a[2]![c]! / norm(c)];
  const iop = [...lps(0), ...lps(1)];
  const study = uidFrom('study', o.patientId);
  const series = uidFrom('series', o.patientId, o.seriesDescription ?? '');
  mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  for (let k = 0; k < slices; k++) {
    const sop = uidFrom('sop', o.patientId, k);
    const pos = [0, 1, 2].map((r) => a[r]![2]! * k + a[r]![3]!);
    const ipp = [-pos[0]!, -pos[1]!, pos[2]!];
    const meta = new Writer();
    meta.element(0x0002, 0x0001, 'OB', Buffer.from([0, 1]));
    meta.element(0x0002, 0x0002, 'UI', CT_IMAGE_STORAGE);
    meta.element(0x0002, 0x0003, 'UI', sop);
    meta.element(0x0002, 0x0010, 'UI', EXPLICIT_LE);
    meta.element(0x0002, 0x0012, 'UI', uidFrom('t3d implementation'));
    const metaBytes = meta.bytes();
    const group = new Writer();
    const len = Buffer.alloc(4);
    len.writeUInt32LE(metaBytes.length);
    group.element(0x0002, 0x0000, 'UL', len);
    const w = new Writer();
    w.element(0x0008, 0x0016, 'UI', CT_IMAGE_STORAGE);
    w.element(0x0008, 0x0018, 'UI', sop);
    w.element(0x0008, 0x0060, 'CS', 'CT');
    w.element(0x0008, 0x103e, 'LO', o.seriesDescription ?? 'synthetic chest CT');
    w.element(0x0010, 0x0010, 'PN', o.patientId);
    w.element(0x0010, 0x0020, 'LO', o.patientId);
    w.element(0x0018, 0x0050, 'DS', ds(norm(2)));
    w.element(0x0020, 0x000d, 'UI', study);
    w.element(0x0020, 0x000e, 'UI', series);
    w.element(0x0020, 0x0011, 'IS', '1');
    w.element(0x0020, 0x0013, 'IS', String(k + 1));
    w.element(0x0020, 0x0032, 'DS', ipp.map(ds).join('\\'));
    w.element(0x0020, 0x0037, 'DS', iop.map(ds).join('\\'));
    w.us(0x0028, 0x0002, 1);
    w.element(0x0028, 0x0004, 'CS', 'MONOCHROME2');
    w.us(0x0028, 0x0010, rows);
    w.us(0x0028, 0x0011, cols);
    w.element(0x0028, 0x0030, 'DS', `${ds(norm(1))}\\${ds(norm(0))}`); // row spacing \ column spacing
    w.us(0x0028, 0x0100, 16);
    w.us(0x0028, 0x0101, 16);
    w.us(0x0028, 0x0102, 15);
    w.us(0x0028, 0x0103, 1);
    w.element(0x0028, 0x1052, 'DS', ds(o.rescaleIntercept));
    w.element(0x0028, 0x1053, 'DS', ds(o.rescaleSlope));
    w.element(0x0028, 0x1054, 'LO', 'HU');
    const n = rows * cols;
    w.element(0x7fe0, 0x0010, 'OW', Buffer.from(o.data.buffer, o.data.byteOffset + k * n * 2, n * 2));
    const file = join(dir, `IM${String(k + 1).padStart(4, '0')}.dcm`);
    const tmp = `${file}.tmp-${process.pid}`;
    writeFileSync(
      tmp,
      Buffer.concat([Buffer.alloc(128), Buffer.from('DICM', 'latin1'), group.bytes(), metaBytes, w.bytes()]),
    );
    renameSync(tmp, file);
    files.push(file);
  }
  return files;
}
