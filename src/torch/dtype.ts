// Data types: names as in PyTorch, codes as c10::ScalarType.
export type DType =
  'uint8' | 'int8' | 'int16' | 'int32' | 'int64' | 'float16' | 'float32' | 'float64' | 'bool' | 'bfloat16';

const CODES: Record<DType, number> = {
  uint8: 0,
  int8: 1,
  int16: 2,
  int32: 3,
  int64: 4,
  float16: 5,
  float32: 6,
  float64: 7,
  bool: 11,
  bfloat16: 15,
};
const NAMES = new Map<number, DType>(Object.entries(CODES).map(([k, v]) => [v, k as DType]));

export const ELEMENT_SIZE: Record<DType, number> = {
  uint8: 1,
  int8: 1,
  int16: 2,
  int32: 4,
  int64: 8,
  float16: 2,
  float32: 4,
  float64: 8,
  bool: 1,
  bfloat16: 2,
};

export const DTYPES = Object.keys(CODES) as DType[];

export function dtypeCode(dtype: DType): number {
  const code = CODES[dtype];
  if (code === undefined) throw new Error(`unknown dtype '${String(dtype)}' (allowed: ${DTYPES.join(', ')})`);
  return code;
}

export function dtypeName(code: number): DType {
  const name = NAMES.get(code);
  if (!name) throw new Error(`unsupported tensor dtype code ${code}`);
  return name;
}

export function isFloating(dtype: DType): boolean {
  return dtype === 'float16' || dtype === 'float32' || dtype === 'float64' || dtype === 'bfloat16';
}

/** The JS array type holding a dtype's values (half types are widened to float32 on read). */
export type TypedArrayOf =
  Uint8Array | Int8Array | Int16Array | Int32Array | BigInt64Array | Float32Array | Float64Array;

export function typedArrayFromBytes(dtype: DType, bytes: Uint8Array): TypedArrayOf {
  const buf = bytes.buffer;
  const off = bytes.byteOffset;
  const n = bytes.byteLength / ELEMENT_SIZE[dtype];
  switch (dtype) {
    case 'uint8':
    case 'bool':
      return new Uint8Array(buf, off, n);
    case 'int8':
      return new Int8Array(buf, off, n);
    case 'int16':
      return new Int16Array(buf, off, n);
    case 'int32':
      return new Int32Array(buf, off, n);
    case 'int64':
      return new BigInt64Array(buf, off, n);
    case 'float32':
      return new Float32Array(buf, off, n);
    case 'float64':
      return new Float64Array(buf, off, n);
    default:
      throw new Error(`typedArrayFromBytes: ${dtype} has no JS typed array; convert with .to('float32') first`);
  }
}

/** The dtype a typed array naturally maps to. */
export function dtypeOfTypedArray(data: ArrayBufferView): DType {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Float64Array) return 'float64';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof Int16Array) return 'int16';
  if (data instanceof Int8Array) return 'int8';
  if (data instanceof Uint8Array) return 'uint8';
  throw new Error(`unsupported typed array ${data.constructor.name}`);
}
