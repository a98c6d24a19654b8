// The safetensors container (8-byte little-endian header length, JSON header, raw little-endian data),
// parsed and written without the tensor engine so worker threads and tools can use it. Every offset is validated
// before any data is touched.
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, fsyncSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { fsyncDir, tempName } from './files.js';

/** Bytes per element of each safetensors dtype this project reads and writes. */
export const ST_ELEMENT_SIZE: Record<string, number> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  I16: 2,
  I32: 4,
  I64: 8,
  F16: 2,
  BF16: 2,
  F32: 4,
  F64: 8,
};
const MAX_HEADER = 100 * 1024 * 1024;

export interface SafetensorsEntry {
  name: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}
export interface SafetensorsHeader {
  entries: SafetensorsEntry[];
  metadata: Record<string, string>;
  dataStart: number;
}

function bad(path: string, reason: string): Error {
  return new Error(`${path}: not a valid safetensors file: ${reason}`);
}

export function readExactly(fd: number, length: number, position: number, path: string): Buffer {
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, length - done, position + done);
    if (n === 0) throw bad(path, `unexpected end of file at byte ${position + done}`);
    done += n;
  }
  return buf;
}

export function parseHeader(fd: number, path: string): SafetensorsHeader {
  const size = fstatSync(fd).size;
  if (size < 8) throw bad(path, `file is ${size} bytes, shorter than the 8-byte header length`);
  const n = readExactly(fd, 8, 0, path).readBigUInt64LE(0);
  if (n > BigInt(Math.min(MAX_HEADER, size - 8)))
    throw bad(path, `header length ${n} exceeds the file (${size} bytes) or the 100 MB limit`);
  const headerLen = Number(n);
  let json: unknown;
  try {
    json = JSON.parse(readExactly(fd, headerLen, 8, path).toString('utf8'));
  } catch (e) {
    throw bad(path, `header is not JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw bad(path, 'header is not a JSON object');
  const dataStart = 8 + headerLen;
  const dataLen = size - dataStart;
  const entries: SafetensorsEntry[] = [];
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Object.values(raw).some((v) => typeof v !== 'string')) {
        throw bad(path, '__metadata__ must map strings to strings');
      }
      metadata = raw as Record<string, string>;
      continue;
    }
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const dtype = typeof e?.dtype === 'string' && e.dtype in ST_ELEMENT_SIZE ? e.dtype : undefined;
    if (!dtype)
      throw bad(
        path,
        `tensor '${name}' has unsupported dtype ${JSON.stringify(e?.dtype)} ` +
          `(supported: ${Object.keys(ST_ELEMENT_SIZE).join(', ')})`,
      );
    if (!Array.isArray(e.shape) || !e.shape.every((s) => Number.isSafeInteger(s) && s >= 0))
      throw bad(path, `tensor '${name}' has an invalid shape ${JSON.stringify(e.shape)}`);
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      throw bad(path, `tensor '${name}' has invalid data_offsets ${JSON.stringify(offs)}`);
    }
    const [begin, end] = offs as [number, number];
    const shape = e.shape as number[];
    const need = shape.reduce((a, b) => a * b, 1) * ST_ELEMENT_SIZE[dtype]!;
    if (end < begin || end - begin !== need)
      throw bad(path, `tensor '${name}' spans ${end - begin} bytes but ${dtype}[${shape.join(', ')}] needs ${need}`);
    if (end > dataLen)
      throw bad(path, `tensor '${name}' ends at byte ${end} beyond the ${dataLen} data bytes (truncated file?)`);
    entries.push({ name, dtype, shape, begin, end });
  }
  const sorted = [...entries].sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]!.begin < sorted[i - 1]!.end)
      throw bad(path, `tensors '${sorted[i - 1]!.name}' and '${sorted[i]!.name}' overlap`);
  }
  return { entries, metadata, dataStart };
}

export function readSafetensorsHeader(path: string): SafetensorsHeader {
  const fd = openSync(path, 'r');
  try {
    return parseHeader(fd, path);
  } finally {
    closeSync(fd);
  }
}

/** Raw bytes of the named tensors (8-byte aligned copies, so typed-array views always work). */
export function readSafetensorsRaw(
  path: string,
  names: string[],
): Map<string, { dtype: string; shape: number[]; bytes: Uint8Array }> {
  const fd = openSync(path, 'r');
  try {
    const h = parseHeader(fd, path);
    const out = new Map<string, { dtype: string; shape: number[]; bytes: Uint8Array }>();
    for (const name of names) {
      const e = h.entries.find((x) => x.name === name);
      if (!e) throw new Error(`${path}: no tensor named '${name}'`);
      const bytes = new Uint8Array(new ArrayBuffer(e.end - e.begin));
      let done = 0;
      while (done < bytes.length) {
        const n = readSync(fd, bytes, done, bytes.length - done, h.dataStart + e.begin + done);
        if (n === 0) throw bad(path, `unexpected end of file in tensor '${name}'`);
        done += n;
      }
      out.set(name, { dtype: e.dtype, shape: e.shape, bytes });
    }
    return out;
  } finally {
    closeSync(fd);
  }
}

/** A tensor to write: its bytes are asked for one tensor at a time, so a writer holds one copy at most. */
export interface RawTensorSource {
  name: string;
  dtype: string;
  shape: number[];
  bytes: () => Uint8Array;
}

/**
 * Writes tensors atomically and durably (temp file, fsync, rename, fsync of the folder), one at a time; returns
 * the file's sha256 (hex, hashed as it is written) and size.
 */
export function writeSafetensorsRaw(
  path: string,
  list: RawTensorSource[],
  metadata: Record<string, string> = {},
): { sha256: string; size: number } {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const t of list) {
    const bytes = t.shape.reduce((a, b) => a * b, 1) * ST_ELEMENT_SIZE[t.dtype]!;
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil(json.length / 8) * 8; // keeps tensor data 8-byte aligned, as the reference writer does
  json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
  const tmp = tempName(path);
  const fd = openSync(tmp, 'w');
  const hash = createHash('sha256');
  let size = 0;
  const write = (b: Uint8Array) => {
    hash.update(b);
    for (let done = 0; done < b.byteLength;) done += writeSync(fd, b, done, b.byteLength - done);
    size += b.byteLength;
  };
  try {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    write(len);
    write(json);
    for (const t of list) write(t.bytes());
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, path);
  } catch (err) {
    try {
      closeSync(fd);
    } catch {
      /* already closed */
    }
    rmSync(tmp, { force: true });
    throw err;
  }
  fsyncDir(dirname(path));
  return { sha256: hash.digest('hex'), size };
}
