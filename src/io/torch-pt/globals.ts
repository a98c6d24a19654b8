// What the unpickler may resolve and call: the whitelist of globals and what each allowed one builds. Everything
// here is data: a storage record, a tensor record (a strided view of a storage), an ordered dict.
import type { DType } from '../../torch/dtype.js';

type Fail = (reason: string) => Error;

/** A storage as persistent_id names it: ('storage', torch.FloatStorage, key, location, numel). */
export class StorageRecord {
  constructor(
    readonly key: string,
    readonly dtype: DType,
    readonly numel: number,
  ) {}
}
/** A tensor as _rebuild_tensor_v2 describes it: a strided view of a storage (offsets and strides in elements). */
export class TensorRecord {
  constructor(
    readonly storage: StorageRecord,
    readonly offset: number,
    readonly size: number[],
    readonly stride: number[],
  ) {}
}
/** A Python dict or OrderedDict with its keys in insertion order. */
export class PickleDict {
  readonly entries = new Map<unknown, unknown>();
}
/** A whitelisted global, as GLOBAL pushes it. */
export class Global {
  constructor(readonly qualified: string) {}
}

const STORAGES: Record<string, DType> = {
  FloatStorage: 'float32',
  DoubleStorage: 'float64',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
};
const REBUILD_TENSOR = 'torch._utils._rebuild_tensor_v2';
const REBUILD_PARAMETER = 'torch._utils._rebuild_parameter';
const ORDERED_DICT = 'collections.OrderedDict';
export const ALLOWED_GLOBALS = [
  ORDERED_DICT,
  REBUILD_TENSOR,
  REBUILD_PARAMETER,
  ...Object.keys(STORAGES).map((s) => `torch.${s}`),
];

/** The global as GLOBAL/STACK_GLOBAL names it, or a refusal naming it: it is never imported or called. */
export function allowGlobal(qualified: string, source: string): Global {
  if (!ALLOWED_GLOBALS.includes(qualified))
    throw new Error(
      `refusing to load ${source}: the pickle calls ${qualified}, which is not a tensor, a storage or an ` +
        'OrderedDict (unpickling it could run code; only tensors and plain data are loaded)',
    );
  return new Global(qualified);
}

/** The storage a BINPERSID names: one record per key, so tensors that share it in Python share it here. */
export function storageOf(pid: unknown, storages: Map<string, StorageRecord>, fail: Fail): StorageRecord {
  const p = pid as unknown[];
  if (!Array.isArray(p) || p.length !== 5 || p[0] !== 'storage' || !(p[1] instanceof Global))
    throw fail('has a persistent id that is not a storage');
  const [, type, key, , numel] = p as [string, Global, unknown, unknown, unknown];
  const dtype = STORAGES[type.qualified.slice('torch.'.length)];
  if (!dtype || typeof key !== 'string' || !/^[A-Za-z0-9_]+$/.test(key) || !isCount(numel))
    throw fail(`has a malformed storage id (${type.qualified}, ${String(key)})`);
  const seen = storages.get(key);
  if (seen) {
    if (seen.dtype !== dtype || seen.numel !== numel)
      throw fail(`uses storage ${key} as both ${seen.dtype}[${seen.numel}] and ${dtype}[${numel}]`);
    return seen;
  }
  const rec = new StorageRecord(key, dtype, numel);
  storages.set(key, rec);
  return rec;
}

/** REDUCE on a whitelisted global: what each allowed callable builds. */
export function callGlobal(fn: unknown, args: unknown, fail: Fail): unknown {
  if (!(fn instanceof Global) || !Array.isArray(args)) throw fail('calls something that is not a function');
  if (fn.qualified === ORDERED_DICT) {
    const d = new PickleDict();
    if (args.length === 1 && Array.isArray(args[0])) {
      for (const kv of args[0]) {
        if (!Array.isArray(kv) || kv.length !== 2) throw fail('builds an OrderedDict from non-pairs');
        d.entries.set(kv[0], kv[1]);
      }
    } else if (args.length) throw fail('builds an OrderedDict from unexpected arguments');
    return d;
  }
  if (fn.qualified === REBUILD_TENSOR) return tensor(args, fail);
  if (fn.qualified === REBUILD_PARAMETER) {
    if (args.length !== 3 || !(args[0] instanceof TensorRecord))
      throw fail('rebuilds a parameter from unexpected arguments');
    return args[0];
  }
  throw fail(`calls ${fn.qualified}, which is a type, not a function`);
}

/** _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]) */
function tensor(args: unknown[], fail: Fail): TensorRecord {
  const [storage, offset, size, stride] = args;
  const ok =
    (args.length === 6 || args.length === 7) &&
    storage instanceof StorageRecord &&
    isCount(offset) &&
    Array.isArray(size) &&
    size.every(isCount) &&
    Array.isArray(stride) &&
    stride.every(isCount) &&
    stride.length === size.length;
  if (!ok) throw fail('rebuilds a tensor from unexpected arguments');
  const t = new TensorRecord(storage, offset, size as number[], stride as number[]);
  if (t.size.includes(0)) return t;
  const last = t.size.reduce((a, s, i) => a + (s - 1) * t.stride[i]!, offset);
  if (last >= storage.numel)
    throw fail(
      `has a tensor [${t.size.join(', ')}] reaching element ${last} of storage ${storage.key}, ` +
        `which holds ${storage.numel}`,
    );
  return t;
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
