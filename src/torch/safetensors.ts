// safetensors files ↔ tensors. Reading streams tensor by tensor over the validated container parser
// (util/safetensors-file.ts); writing goes to a temp file that is hashed, fsynced and renamed at the end.
import { closeSync, openSync } from 'node:fs';
import { parseHeader, readExactly, writeSafetensorsRaw } from '../util/safetensors-file.js';
import { type DType } from './dtype.js';
import { fromBytes } from './creation.js';
import { type Tensor } from './tensor.js';

const TO_ST: Record<DType, string> = {
  bool: 'BOOL',
  uint8: 'U8',
  int8: 'I8',
  int16: 'I16',
  int32: 'I32',
  int64: 'I64',
  float16: 'F16',
  bfloat16: 'BF16',
  float32: 'F32',
  float64: 'F64',
};
const FROM_ST = new Map(Object.entries(TO_ST).map(([k, v]) => [v, k as DType]));

export { readSafetensorsHeader } from '../util/safetensors-file.js';

/** Loads tensors (all, or those named) one at a time; they are CPU tensors unless device is given. */
export function loadSafetensors(
  path: string,
  o: { names?: string[]; device?: string } = {},
): { tensors: Map<string, Tensor>; metadata: Record<string, string> } {
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

/** Writes tensors atomically and durably (util/safetensors-file.ts); returns the file's sha256 (hex) and size. */
export function saveSafetensors(
  path: string,
  tensors: Map<string, Tensor> | Record<string, Tensor>,
  metadata: Record<string, string> = {},
): { sha256: string; size: number } {
  const list = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  return writeSafetensorsRaw(
    path,
    list.map(([name, t]) => ({ name, dtype: TO_ST[t.dtype], shape: t.shape, bytes: () => t.toBytes() })),
    metadata,
  );
}
