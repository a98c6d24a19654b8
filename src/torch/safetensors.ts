// safetensors read/write (https://github.com/huggingface/safetensors format): 8-byte little-endian
// header length, JSON header, raw little-endian tensor bytes. Reading is streamed tensor by tensor and
// validates every offset before touching data; writing goes to a temp file that is renamed at the end.
import { closeSync, fstatSync, fsyncSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { type DType, ELEMENT_SIZE } from './dtype.js';
import { fromBytes } from './creation.js';
import { type Tensor } from './tensor.js';

const TO_ST: Record<DType, string> = {
  bool: 'BOOL', uint8: 'U8', int8: 'I8', int16: 'I16', int32: 'I32', int64: 'I64',
  float16: 'F16', bfloat16: 'BF16', float32: 'F32', float64: 'F64',
};
const FROM_ST = new Map(Object.entries(TO_ST).map(([k, v]) => [v, k as DType]));
const MAX_HEADER = 100 * 1024 * 1024;

export interface SafetensorsEntry { name: string; dtype: DType; shape: number[]; begin: number; end: number }
export interface SafetensorsHeader { entries: SafetensorsEntry[]; metadata: Record<string, string>; dataStart: number }

function bad(path: string, reason: string): Error {
  return new Error(`${path}: not a valid safetensors file: ${reason}`);
}

function readExactly(fd: number, length: number, position: number, path: string): Buffer {
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, length - done, position + done);
    if (n === 0) throw bad(path, `unexpected end of file at byte ${position + done}`);
    done += n;
  }
  return buf;
}

function parseHeader(fd: number, path: string): SafetensorsHeader {
  const size = fstatSync(fd).size;
  if (size < 8) throw bad(path, `file is ${size} bytes, shorter than the 8-byte header length`);
  const n = readExactly(fd, 8, 0, path).readBigUInt64LE(0);
  if (n > BigInt(Math.min(MAX_HEADER, size - 8))) throw bad(path, `header length ${n} exceeds the file (${size} bytes) or the 100 MB limit`);
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
    const dtype = typeof e?.dtype === 'string' ? FROM_ST.get(e.dtype) : undefined;
    if (!dtype) throw bad(path, `tensor '${name}' has unsupported dtype ${JSON.stringify(e?.dtype)} (supported: ${[...FROM_ST.keys()].join(', ')})`);
    if (!Array.isArray(e.shape) || !e.shape.every((s) => Number.isSafeInteger(s) && s >= 0)) throw bad(path, `tensor '${name}' has an invalid shape ${JSON.stringify(e.shape)}`);
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      throw bad(path, `tensor '${name}' has invalid data_offsets ${JSON.stringify(offs)}`);
    }
    const [begin, end] = offs as [number, number];
    const shape = e.shape as number[];
    const need = shape.reduce((a, b) => a * b, 1) * ELEMENT_SIZE[dtype];
    if (end < begin || end - begin !== need) throw bad(path, `tensor '${name}' spans ${end - begin} bytes but ${dtype}[${shape.join(', ')}] needs ${need}`);
    if (end > dataLen) throw bad(path, `tensor '${name}' ends at byte ${end} beyond the ${dataLen} data bytes (truncated file?)`);
    entries.push({ name, dtype, shape, begin, end });
  }
  const sorted = [...entries].sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]!.begin < sorted[i - 1]!.end) throw bad(path, `tensors '${sorted[i - 1]!.name}' and '${sorted[i]!.name}' overlap`);
  }
  return { entries, metadata, dataStart };
}

export function readSafetensorsHeader(path: string): SafetensorsHeader {
  const fd = openSync(path, 'r');
  try { return parseHeader(fd, path); } finally { closeSync(fd); }
}

/** Loads tensors (all, or those named) one at a time; they are CPU tensors unless device is given. */
export function loadSafetensors(path: string, o: { names?: string[]; device?: string } = {}): { tensors: Map<string, Tensor>; metadata: Record<string, string> } {
  const fd = openSync(path, 'r');
  const tensors = new Map<string, Tensor>();
  try {
    const header = parseHeader(fd, path);
    const wanted = o.names ? new Set(o.names) : undefined;
    if (wanted) {
      const missing = [...wanted].filter((n) => !header.entries.some((e) => e.name === n));
      if (missing.length) throw new Error(`${path}: no tensors named ${missing.join(', ')}`);
    }
    for (const e of header.entries) {
      if (wanted && !wanted.has(e.name)) continue;
      const bytes = readExactly(fd, e.end - e.begin, header.dataStart + e.begin, path);
      let t = fromBytes(bytes, e.shape, e.dtype);
      if (o.device && o.device !== 'cpu') {
        const moved = t.to({ device: o.device });
        t.dispose();
        t = moved;
      }
      tensors.set(e.name, t);
    }
    return { tensors, metadata: header.metadata };
  } catch (err) {
    for (const t of tensors.values()) t.dispose();
    throw err;
  } finally {
    closeSync(fd);
  }
}

/** Writes tensors atomically (temp file + fsync + rename); tensors are streamed one at a time. */
export function saveSafetensors(path: string, tensors: Map<string, Tensor> | Record<string, Tensor>, metadata: Record<string, string> = {}): void {
  const list = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  const sized = list.map(([name, t]) => {
    const dtype = t.dtype;
    const bytes = t.numel * ELEMENT_SIZE[dtype];
    header[name] = { dtype: TO_ST[dtype], shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
    return t;
  });
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil(json.length / 8) * 8; // keeps tensor data 8-byte aligned, as the reference writer does
  json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)]);
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    writeSync(fd, len);
    writeSync(fd, json);
    for (const t of sized) {
      const b = t.toBytes();
      let done = 0;
      while (done < b.byteLength) done += writeSync(fd, b, done, b.byteLength - done);
    }
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, path);
  } catch (err) {
    try { closeSync(fd); } catch { /* already closed */ }
    rmSync(tmp, { force: true });
    throw err;
  }
}
