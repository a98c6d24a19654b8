// safetensors files ↔ tensors. Reading streams tensor by tensor over the validated container parser
// (util/safetensors-file.ts); writing goes to a temp file that is hashed, fsynced and renamed at the end.
import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { fsyncDir, tempName } from '../util/files.js';
import { parseHeader, readExactly } from '../util/safetensors-file.js';
import { type DType, ELEMENT_SIZE } from './dtype.js';
import { fromBytes } from './creation.js';
import { type Tensor } from './tensor.js';

const TO_ST: Record<DType, string> = {
  bool: 'BOOL', uint8: 'U8', int8: 'I8', int16: 'I16', int32: 'I32', int64: 'I64',
  float16: 'F16', bfloat16: 'BF16', float32: 'F32', float64: 'F64',
};
const FROM_ST = new Map(Object.entries(TO_ST).map(([k, v]) => [v, k as DType]));

export { readSafetensorsHeader } from '../util/safetensors-file.js';

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
      let t = fromBytes(bytes, e.shape, FROM_ST.get(e.dtype)!);
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

/**
 * Writes tensors atomically and durably (temp file, fsync, rename, fsync of the folder), streaming one tensor at
 * a time; returns the file's sha256 (hex, hashed as it is written) and size.
 */
export function saveSafetensors(path: string, tensors: Map<string, Tensor> | Record<string, Tensor>, metadata: Record<string, string> = {}): { sha256: string; size: number } {
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
    for (const t of sized) write(t.toBytes());
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, path);
  } catch (err) {
    try { closeSync(fd); } catch { /* already closed */ }
    rmSync(tmp, { force: true });
    throw err;
  }
  fsyncDir(dirname(path));
  return { sha256: hash.digest('hex'), size };
}
