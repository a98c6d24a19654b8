// Loading a torch.save file (.pt / .bin) without Python and without running its pickle: the zip archive
// (zip.ts), data.pkl through the whitelisting unpickler (unpickle.ts), each storage read once and copied once into
// the engine, and every tensor a view of its storage (strided.ts), so tensors that shared a storage in Python share
// its bytes here too. libtorch's own loader is not used: it fails on ordinary state dicts in the versions we build
// against, and a general unpickler would execute whatever the file asks for.
import { closeSync, openSync, readSync } from 'node:fs';
import * as torch from '../../torch/index.js';
import { ELEMENT_SIZE, type Tensor } from '../../torch/index.js';
import { stridedView } from './strided.js';
import { Global, PickleDict, StorageRecord, TensorRecord } from './globals.js';
import { Unpickler } from './unpickle.js';
import { ZipReader } from './zip.js';

/** What a .pt holds, in JS: dicts and OrderedDicts become plain objects, tuples and lists arrays. */
export type PtValue =
  Tensor | PtValue[] | { [key: string]: PtValue } | string | number | bigint | boolean | null | Uint8Array;

export interface PtFile {
  root: PtValue;
  /** every tensor in `root`, once each (the caller disposes them) */
  tensors: Tensor[];
}

const MAX_DEPTH = 256;

/** Reads a torch.save archive; tensors are CPU tensors of the saved dtypes. */
export function loadTorchPt(path: string): PtFile {
  refuseNonZip(path);
  const zip = new ZipReader(path);
  const made: Tensor[] = [];
  const storages = new Map<StorageRecord, Tensor>();
  try {
    const prefix = archivePrefix(zip, path);
    const order = zip.members.has(`${prefix}/byteorder`)
      ? Buffer.from(zip.readMember(`${prefix}/byteorder`))
          .toString('latin1')
          .trim()
      : 'little';
    if (order !== 'little')
      throw new Error(`${path}: saved on a ${order}-endian machine; only little-endian archives are read`);
    const pickled = new Unpickler(zip.readMember(`${prefix}/data.pkl`), path).load();
    const tensors = new Map<TensorRecord, Tensor>();
    const storageOf = (s: StorageRecord): Tensor => {
      let t = storages.get(s);
      if (!t) {
        const bytes = zip.readMember(memberOf(zip, prefix, s.key, path));
        const need = s.numel * ELEMENT_SIZE[s.dtype];
        if (bytes.length !== need)
          throw new Error(
            `${path}: storage ${s.key} holds ${bytes.length} bytes, but ${s.dtype}[${s.numel}] needs ${need}`,
          );
        t = torch.fromBytes(bytes, [s.numel], s.dtype);
        storages.set(s, t);
      }
      return t;
    };
    const tensorOf = (r: TensorRecord): Tensor => {
      let t = tensors.get(r);
      if (!t) {
        t = stridedView(storageOf(r.storage), r.offset, r.size, r.stride);
        tensors.set(r, t);
        made.push(t);
      }
      return t;
    };
    const root = convert(pickled, tensorOf, path);
    return { root, tensors: made };
  } catch (err) {
    for (const t of made) t.dispose();
    throw err;
  } finally {
    // views hold their storage alive natively; the storage handles themselves are no longer needed
    for (const s of storages.values()) s.dispose();
    zip.close();
  }
}

function refuseNonZip(path: string): void {
  const fd = openSync(path, 'r');
  const head = Buffer.alloc(4);
  try {
    readSync(fd, head, 0, 4, 0);
  } finally {
    closeSync(fd);
  }
  if (head.readUInt32LE(0) === 0x04034b50) return;
  if (head[0] === 0x80)
    throw new Error(
      `${path}: a legacy (pre-1.6, non-zip) torch.save file, which is not read; re-save it with a recent PyTorch ` +
        '(torch.save(torch.load(f), g)) in a trusted environment',
    );
  throw new Error(`${path}: not a PyTorch file (a torch.save archive starts with a zip header)`);
}

/** torch.save puts every record under one folder named after the file (or "archive"): <prefix>/data.pkl. */
function archivePrefix(zip: ZipReader, path: string): string {
  const pkls = [...zip.members.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
  if (pkls.length !== 1)
    throw new Error(
      `${path}: expected one <name>/data.pkl in the archive, found ${pkls.length} (not a torch.save file?)`,
    );
  const prefix = pkls[0]!.slice(0, -'/data.pkl'.length);
  if (
    zip.members.has(`${prefix}/constants.pkl`) ||
    [...zip.members.keys()].some((n) => n.startsWith(`${prefix}/code/`))
  )
    throw new Error(`${path}: a TorchScript archive (torch.jit.save); only torch.save files of tensors are read`);
  return prefix;
}

function memberOf(zip: ZipReader, prefix: string, key: string, path: string): string {
  const name = `${prefix}/data/${key}`;
  if (!zip.members.has(name)) throw new Error(`${path}: the pickle names storage ${key}, which the archive lacks`);
  return name;
}

/** Pickle values → PtValue: shared objects stay shared; cycles and absurd nesting are refused. */
function convert(v: unknown, tensorOf: (r: TensorRecord) => Tensor, path: string): PtValue {
  const done = new Map<object, PtValue>();
  const open = new Set<object>();
  const go = (x: unknown, depth: number): PtValue => {
    if (x === null || typeof x !== 'object') return x as PtValue;
    if (x instanceof Uint8Array) return x;
    if (x instanceof TensorRecord) return tensorOf(x);
    if (x instanceof StorageRecord) throw new Error(`${path}: holds a bare storage (${x.key}) outside any tensor`);
    if (x instanceof Global) throw new Error(`${path}: holds a bare reference to ${x.qualified}`);
    const seen = done.get(x);
    if (seen !== undefined) return seen;
    if (open.has(x)) throw new Error(`${path}: the pickle holds a cycle, which a tensor file never needs`);
    if (depth > MAX_DEPTH) throw new Error(`${path}: nested deeper than ${MAX_DEPTH} levels`);
    open.add(x);
    let out: PtValue;
    if (Array.isArray(x)) out = x.map((e) => go(e, depth + 1));
    else if (x instanceof PickleDict) {
      const o: { [key: string]: PtValue } = {};
      for (const [k, val] of x.entries) {
        if (k !== null && typeof k === 'object')
          throw new Error(`${path}: a dict has a key that is not a name or number`);
        // defineProperty: a key such as "__proto__" is an ordinary key, not the object's prototype
        Object.defineProperty(o, String(k), {
          value: go(val, depth + 1),
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      out = o;
    } else throw new Error(`${path}: holds an object of an unexpected kind`);
    open.delete(x);
    done.set(x, out);
    return out;
  };
  return go(v, 0);
}

/**
 * The tensors of a state dict inside a loaded file: the root when every value is a tensor, else the first of
 * `under` (e.g. 'state_dict', 'model') that is one.
 */
export function stateDictOf(
  file: PtFile,
  path: string,
  under = ['state_dict', 'model', 'model_state_dict'],
): Map<string, Tensor> {
  const asMap = (v: PtValue | undefined): Map<string, Tensor> | undefined => {
    if (!v || typeof v !== 'object' || Array.isArray(v) || v instanceof torch.Tensor || v instanceof Uint8Array)
      return undefined;
    const entries = Object.entries(v);
    return entries.length && entries.every(([, t]) => t instanceof torch.Tensor)
      ? new Map(entries as [string, Tensor][])
      : undefined;
  };
  const direct = asMap(file.root);
  if (direct) return direct;
  const root = file.root as Record<string, PtValue>;
  for (const key of under) {
    const m = typeof root === 'object' && root !== null ? asMap(root[key]) : undefined;
    if (m) return m;
  }
  throw new Error(`${path}: holds no state dict (a dict of tensors at the top level or under ${under.join(', ')})`);
}
