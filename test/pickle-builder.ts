// Hand-assembled pickles and torch.save-shaped zip archives for the .pt reader's tests: hostile files that no
// honest writer produces (a pickle that calls os.system), and damaged or unusual ones, without needing Python.
import { zipSync } from 'fflate';

/** Pickle opcodes, appended in order; `bytes()` ends with STOP. */
export class Pickle {
  private parts: number[] = [0x80, 2];
  private op(...b: number[]): this {
    this.parts.push(...b);
    return this;
  }
  private text(s: string): number[] {
    return [...Buffer.from(s, 'utf8')];
  }
  global(module: string, name: string): this {
    return this.op(0x63, ...this.text(`${module}\n${name}\n`));
  }
  /** protocol 4's STACK_GLOBAL over two SHORT_BINUNICODE strings */
  stackGlobal(module: string, name: string): this {
    return this.str(module).str(name).op(0x93);
  }
  inst(module: string, name: string): this {
    return this.op(0x69, ...this.text(`${module}\n${name}\n`));
  }
  str(s: string): this {
    const b = this.text(s);
    const len = Buffer.alloc(4);
    len.writeUInt32LE(b.length);
    return this.op(0x58, ...len, ...b);
  }
  int(n: number): this {
    const b = Buffer.alloc(4);
    b.writeInt32LE(n);
    return this.op(0x4a, ...b);
  }
  float(x: number): this {
    const b = Buffer.alloc(8);
    b.writeDoubleBE(x);
    return this.op(0x47, ...b);
  }
  bool(v: boolean): this {
    return this.op(v ? 0x88 : 0x89);
  }
  none(): this {
    return this.op(0x4e);
  }
  mark(): this {
    return this.op(0x28);
  }
  tuple(): this {
    return this.op(0x74);
  }
  emptyTuple(): this {
    return this.op(0x29);
  }
  emptyDict(): this {
    return this.op(0x7d);
  }
  emptyList(): this {
    return this.op(0x5d);
  }
  append(): this {
    return this.op(0x61);
  }
  setitems(): this {
    return this.op(0x75);
  }
  reduce(): this {
    return this.op(0x52);
  }
  persid(): this {
    return this.op(0x51);
  }
  put(i: number): this {
    return this.op(0x71, i);
  }
  get(i: number): this {
    return this.op(0x68, i);
  }
  raw(...b: number[]): this {
    return this.op(...b);
  }
  /** _rebuild_tensor_v2(('storage', torch.<type>, key, 'cpu', numel), offset, size, stride, False, OrderedDict()) */
  tensor(type: string, key: string, numel: number, offset: number, size: number[], stride: number[]): this {
    this.global('torch._utils', '_rebuild_tensor_v2').mark();
    this.mark().str('storage').global('torch', type).str(key).str('cpu').int(numel).tuple().persid();
    this.int(offset).mark();
    for (const s of size) this.int(s);
    this.tuple().mark();
    for (const s of stride) this.int(s);
    this.tuple().bool(false).global('collections', 'OrderedDict').emptyTuple().reduce();
    return this.tuple().reduce();
  }
  bytes(): Uint8Array {
    return Uint8Array.from([...this.parts, 0x2e]);
  }
}

/** A zip laid out as torch.save lays it out: <prefix>/data.pkl, <prefix>/data/<key>, byteorder, version. */
export function torchZip(
  pkl: Uint8Array,
  storages: Record<string, Uint8Array> = {},
  o: { prefix?: string; byteorder?: string | null; extra?: Record<string, Uint8Array>; deflate?: boolean } = {},
): Uint8Array {
  const p = o.prefix ?? 'archive';
  const level = o.deflate ? 6 : 0;
  const files: Record<string, [Uint8Array, { level: 0 | 6 }]> = {};
  files[`${p}/data.pkl`] = [pkl, { level }];
  if (o.byteorder !== null) files[`${p}/byteorder`] = [Buffer.from(o.byteorder ?? 'little'), { level }];
  for (const [k, v] of Object.entries(storages)) files[`${p}/data/${k}`] = [v, { level }];
  files[`${p}/version`] = [Buffer.from('3\n'), { level }];
  for (const [k, v] of Object.entries(o.extra ?? {})) files[`${p}/${k}`] = [v, { level }];
  return zipSync(files);
}

export const f32 = (values: number[]) => new Uint8Array(Float32Array.from(values).buffer);
