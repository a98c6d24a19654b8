// A restricted unpickler for the data.pkl of a torch.save archive. Python's pickle is a small stack machine whose
// GLOBAL/REDUCE opcodes import and call any function, so loading an untrusted .pt with it runs arbitrary code. This
// one implements the data opcodes (protocols 2–4) and resolves only a whitelist of globals: the tensor rebuilders,
// the typed storages and OrderedDict. Anything else is refused when it is named, before it could be called; nothing
// is ever imported or executed. It needs no tensor engine: tensors come out as TensorRecords (storage key,
// dtype, offset, size, stride) that the loader turns into tensors.
import { Global, PickleDict, StorageRecord, allowGlobal, callGlobal, storageOf } from './globals.js';

class Mark {}

// opcodes that build objects from arbitrary classes or an extension registry: refused by name
const REFUSED: Record<number, string> = {
  0x69: 'INST',
  0x6f: 'OBJ',
  0x81: 'NEWOBJ',
  0x92: 'NEWOBJ_EX',
  0x82: 'EXT1',
  0x83: 'EXT2',
  0x84: 'EXT4',
  0x50: 'PERSID',
};

export class Unpickler {
  private pos = 0;
  private stack: unknown[] = [];
  private marks: number[] = [];
  private readonly memo = new Map<number, unknown>();
  private readonly storages = new Map<string, StorageRecord>();
  private readonly dv: DataView;

  /** `source` names the file in errors. */
  constructor(
    private readonly data: Uint8Array,
    private readonly source: string,
  ) {
    this.dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  }

  private fail(reason: string): Error {
    return new Error(`${this.source}: data.pkl ${reason}`);
  }

  private take(n: number): Uint8Array {
    if (n < 0 || this.pos + n > this.data.length) throw this.fail(`ends early at byte ${this.pos} (truncated?)`);
    const out = this.data.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  private u8(): number {
    return this.take(1)[0]!;
  }
  private u16(): number {
    const v = this.dv.getUint16(this.at(2), true);
    return v;
  }
  private u32(): number {
    return this.dv.getUint32(this.at(4), true);
  }
  private at(n: number): number {
    const p = this.pos;
    this.take(n);
    return p;
  }
  private line(): string {
    const end = this.data.indexOf(0x0a, this.pos);
    if (end < 0) throw this.fail(`ends early at byte ${this.pos}, inside a name (truncated?)`);
    const s = Buffer.from(this.take(end - this.pos)).toString('utf8');
    this.pos++;
    return s;
  }
  private str(n: number): string {
    return Buffer.from(this.take(n)).toString('utf8');
  }
  private pop(): unknown {
    if (this.stack.length === 0 || this.stack[this.stack.length - 1] instanceof Mark)
      throw this.fail(`pops an empty stack at byte ${this.pos}`);
    return this.stack.pop();
  }
  private popMark(): unknown[] {
    const m = this.marks.pop();
    if (m === undefined) throw this.fail(`has no MARK to pop at byte ${this.pos}`);
    const items = this.stack.splice(m);
    items.shift();
    return items;
  }
  private top(): unknown {
    if (this.stack.length === 0 || this.stack[this.stack.length - 1] instanceof Mark)
      throw this.fail(`reads an empty stack at byte ${this.pos}`);
    return this.stack[this.stack.length - 1];
  }
  private put(index: number): void {
    this.memo.set(index, this.top());
  }
  private get(index: number): void {
    if (!this.memo.has(index)) throw this.fail(`refers to memo entry ${index}, which was never stored`);
    this.stack.push(this.memo.get(index));
  }

  private global(module: string, name: string): Global {
    return allowGlobal(`${module}.${name}`, this.source);
  }

  /** Runs the pickle to its STOP and returns the top-level object. */
  load(): unknown {
    for (;;) {
      const at = this.pos;
      const op = this.u8();
      switch (op) {
        case 0x80: // PROTO
          if (this.u8() > 5) throw this.fail('uses a pickle protocol above 5');
          break;
        case 0x95: // FRAME: a length prefix only
          this.take(8);
          break;
        case 0x2e: // STOP
          if (this.stack.length !== 1 || this.marks.length) throw this.fail('ends with a malformed stack');
          return this.stack.pop();
        case 0x28: // MARK
          this.marks.push(this.stack.length);
          this.stack.push(new Mark());
          break;
        case 0x30: // POP
          this.pop();
          break;
        case 0x31: // POP_MARK
          this.popMark();
          break;
        case 0x32: // DUP
          this.stack.push(this.top());
          break;
        case 0x4e: // NONE
          this.stack.push(null);
          break;
        case 0x88: // NEWTRUE
        case 0x89: // NEWFALSE
          this.stack.push(op === 0x88);
          break;
        case 0x4a: // BININT
          this.stack.push(this.dv.getInt32(this.at(4), true));
          break;
        case 0x4b: // BININT1
          this.stack.push(this.u8());
          break;
        case 0x4d: // BININT2
          this.stack.push(this.u16());
          break;
        case 0x8a: // LONG1
          this.stack.push(this.long(this.u8()));
          break;
        case 0x8b: // LONG4
          this.stack.push(this.long(this.u32()));
          break;
        case 0x47: // BINFLOAT (big-endian)
          this.stack.push(this.dv.getFloat64(this.at(8), false));
          break;
        case 0x58: // BINUNICODE
          this.stack.push(this.str(this.u32()));
          break;
        case 0x8c: // SHORT_BINUNICODE
          this.stack.push(this.str(this.u8()));
          break;
        case 0x8d: // BINUNICODE8
          this.stack.push(this.str(this.len8()));
          break;
        case 0x54: // BINSTRING (Python 2 str)
          this.stack.push(Buffer.from(this.take(this.u32())).toString('latin1'));
          break;
        case 0x55: // SHORT_BINSTRING
          this.stack.push(Buffer.from(this.take(this.u8())).toString('latin1'));
          break;
        case 0x42: // BINBYTES
          this.stack.push(this.take(this.u32()).slice());
          break;
        case 0x43: // SHORT_BINBYTES
          this.stack.push(this.take(this.u8()).slice());
          break;
        case 0x29: // EMPTY_TUPLE
          this.stack.push([]);
          break;
        case 0x74: // TUPLE
          this.stack.push(this.popMark());
          break;
        case 0x85: // TUPLE1
        case 0x86: // TUPLE2
        case 0x87: {
          // TUPLE3
          const n = op - 0x84;
          const items: unknown[] = [];
          for (let i = 0; i < n; i++) items.unshift(this.pop());
          this.stack.push(items);
          break;
        }
        case 0x5d: // EMPTY_LIST
          this.stack.push([]);
          break;
        case 0x6c: // LIST
          this.stack.push(this.popMark());
          break;
        case 0x61: {
          // APPEND
          const v = this.pop();
          this.list().push(v);
          break;
        }
        case 0x65: {
          // APPENDS
          const items = this.popMark();
          this.list().push(...items);
          break;
        }
        case 0x7d: // EMPTY_DICT
          this.stack.push(new PickleDict());
          break;
        case 0x64: {
          // DICT
          const d = new PickleDict();
          this.setItems(d, this.popMark());
          this.stack.push(d);
          break;
        }
        case 0x73: {
          // SETITEM
          const v = this.pop();
          const k = this.pop();
          this.setItems(this.dict(), [k, v]);
          break;
        }
        case 0x75: {
          // SETITEMS
          const items = this.popMark();
          this.setItems(this.dict(), items);
          break;
        }
        case 0x71: // BINPUT
          this.put(this.u8());
          break;
        case 0x72: // LONG_BINPUT
          this.put(this.u32());
          break;
        case 0x94: // MEMOIZE
          this.put(this.memo.size);
          break;
        case 0x68: // BINGET
          this.get(this.u8());
          break;
        case 0x6a: // LONG_BINGET
          this.get(this.u32());
          break;
        case 0x63: {
          // GLOBAL
          const module = this.line();
          this.stack.push(this.global(module, this.line()));
          break;
        }
        case 0x93: {
          // STACK_GLOBAL
          const name = this.pop();
          const module = this.pop();
          if (typeof module !== 'string' || typeof name !== 'string') throw this.fail('has a malformed STACK_GLOBAL');
          this.stack.push(this.global(module, name));
          break;
        }
        case 0x51: // BINPERSID
          this.stack.push(storageOf(this.pop(), this.storages, (r) => this.fail(r)));
          break;
        case 0x52: {
          // REDUCE
          const args = this.pop();
          const fn = this.pop();
          this.stack.push(callGlobal(fn, args, (r) => this.fail(r)));
          break;
        }
        case 0x62: {
          // BUILD: only OrderedDict's attribute state (a state dict's _metadata), which is dropped
          const state = this.pop();
          if (!(this.top() instanceof PickleDict) || !(state === null || state instanceof PickleDict))
            throw this.fail(`sets object state (BUILD) on something other than a dict at byte ${at}`);
          break;
        }
        default:
          if (op === 0x69) {
            const module = this.line();
            this.global(module, this.line()); // names the class it would instantiate
          }
          throw this.fail(
            `uses opcode ${REFUSED[op] ?? `0x${op.toString(16).padStart(2, '0')}`} at byte ${at}, which this ` +
              'reader does not accept (it loads tensors and plain data only)',
          );
      }
    }
  }

  private len8(): number {
    const v = this.dv.getBigUint64(this.at(8), true);
    if (v > BigInt(this.data.length)) throw this.fail(`declares a ${v}-byte string in a smaller file`);
    return Number(v);
  }

  /** A little-endian two's-complement integer; a number when it is exact as one. */
  private long(n: number): number | bigint {
    if (n > 1024) throw this.fail(`has a ${n}-byte integer`);
    const b = this.take(n);
    let v = 0n;
    for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
    if (n > 0 && b[n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  }

  private list(): unknown[] {
    const l = this.top();
    if (!Array.isArray(l)) throw this.fail(`appends to something that is not a list at byte ${this.pos}`);
    return l;
  }
  private dict(): PickleDict {
    const d = this.top();
    if (!(d instanceof PickleDict)) throw this.fail(`sets an item on something that is not a dict at byte ${this.pos}`);
    return d;
  }
  private setItems(d: PickleDict, items: unknown[]): void {
    if (items.length % 2) throw this.fail('has an odd number of dict items');
    for (let i = 0; i < items.length; i += 2) d.entries.set(items[i], items[i + 1]);
  }
}
