// The zip container that torch.save writes (members stored uncompressed, 64-byte aligned; ZIP64 past 4 GiB), read
// through its central directory. Every size and offset is checked against the file before it is used, and every
// member's CRC-32 is verified, so a truncated or damaged archive fails with a reason instead of yielding garbage.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import * as zlib from 'node:zlib';
import { inflateSync } from 'fflate';

// zlib.crc32 arrived in Node 20.15; earlier 20.x releases get the table-driven equivalent
const TABLE = Uint32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
/** CRC-32 (the zip polynomial) in plain JS */
export function crc32Table(data: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
const crc32 = typeof zlib.crc32 === 'function' ? (data: Uint8Array) => zlib.crc32(data) : crc32Table;

export interface ZipMember {
  name: string;
  method: number;
  crc: number;
  compressedSize: number;
  size: number;
  localOffset: number;
}

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
const U32 = 0xffffffff;

export class ZipReader {
  readonly members = new Map<string, ZipMember>();
  private readonly fd: number;
  private readonly size: number;

  constructor(readonly path: string) {
    this.fd = openSync(path, 'r');
    try {
      this.size = fstatSync(this.fd).size;
      this.readDirectory();
    } catch (err) {
      closeSync(this.fd);
      throw err;
    }
  }

  close(): void {
    closeSync(this.fd);
  }

  private bad(reason: string): Error {
    return new Error(`${this.path}: not a readable PyTorch zip archive: ${reason}`);
  }

  private read(position: number, length: number): Buffer {
    if (position < 0 || length < 0 || position + length > this.size)
      throw this.bad(`needs bytes ${position}..${position + length} but the file has ${this.size} (truncated?)`);
    const buf = Buffer.allocUnsafe(length);
    for (let done = 0; done < length;) {
      const n = readSync(this.fd, buf, done, length - done, position + done);
      if (n === 0) throw this.bad(`unexpected end of file at byte ${position + done}`);
      done += n;
    }
    return buf;
  }

  private readDirectory(): void {
    // the end-of-central-directory record: 22 bytes plus a comment of up to 65535 bytes, at the very end
    const tailLen = Math.min(this.size, 22 + 0xffff);
    const tail = this.read(this.size - tailLen, tailLen);
    let at = -1;
    for (let i = tailLen - 22; i >= 0; i--) {
      if (tail.readUInt32LE(i) === EOCD && i + 22 + tail.readUInt16LE(i + 20) === tailLen) {
        at = i;
        break;
      }
    }
    if (at < 0) throw this.bad('no end-of-central-directory record (truncated, or not a zip file)');
    const eocdPos = this.size - tailLen + at;
    let count = tail.readUInt16LE(at + 10);
    let dirSize = tail.readUInt32LE(at + 12);
    let dirOffset = tail.readUInt32LE(at + 16);
    if (count === 0xffff || dirSize === U32 || dirOffset === U32) {
      const loc = this.read(eocdPos - 20, 20);
      if (loc.readUInt32LE(0) !== ZIP64_LOCATOR) throw this.bad('ZIP64 sizes without a ZIP64 locator');
      const rec = this.read(this.safe(loc.readBigUInt64LE(8), 'ZIP64 record offset'), 56);
      if (rec.readUInt32LE(0) !== ZIP64_EOCD) throw this.bad('ZIP64 end record not where its locator points');
      count = this.safe(rec.readBigUInt64LE(32), 'member count');
      dirSize = this.safe(rec.readBigUInt64LE(40), 'directory size');
      dirOffset = this.safe(rec.readBigUInt64LE(48), 'directory offset');
    }
    const dir = this.read(dirOffset, dirSize);
    let p = 0;
    for (let k = 0; k < count; k++) {
      if (p + 46 > dir.length || dir.readUInt32LE(p) !== CENTRAL)
        throw this.bad(`central directory entry ${k} damaged`);
      const flags = dir.readUInt16LE(p + 8);
      const nameLen = dir.readUInt16LE(p + 28);
      const extraLen = dir.readUInt16LE(p + 30);
      const commentLen = dir.readUInt16LE(p + 32);
      if (p + 46 + nameLen + extraLen + commentLen > dir.length) throw this.bad(`central entry ${k} overruns`);
      const name = dir.toString('utf8', p + 46, p + 46 + nameLen);
      if (flags & 1) throw this.bad(`member ${name} is encrypted`);
      const m: ZipMember = {
        name,
        method: dir.readUInt16LE(p + 10),
        crc: dir.readUInt32LE(p + 16),
        compressedSize: dir.readUInt32LE(p + 20),
        size: dir.readUInt32LE(p + 24),
        localOffset: dir.readUInt32LE(p + 42),
      };
      this.applyZip64(m, dir.subarray(p + 46 + nameLen, p + 46 + nameLen + extraLen));
      if (this.members.has(name)) throw this.bad(`member ${name} appears twice`);
      this.members.set(name, m);
      p += 46 + nameLen + extraLen + commentLen;
    }
  }

  /** ZIP64 extra field: 64-bit values for exactly those fields whose 32-bit slot holds 0xFFFFFFFF, in this order */
  private applyZip64(m: ZipMember, extra: Buffer): void {
    for (let q = 0; q + 4 <= extra.length;) {
      const id = extra.readUInt16LE(q);
      const len = extra.readUInt16LE(q + 2);
      if (id === 1) {
        let r = q + 4;
        const next = (what: string): number => {
          if (r + 8 > q + 4 + len) throw this.bad(`member ${m.name}: short ZIP64 field`);
          const v = this.safe(extra.readBigUInt64LE(r), what);
          r += 8;
          return v;
        };
        if (m.size === U32) m.size = next('size');
        if (m.compressedSize === U32) m.compressedSize = next('compressed size');
        if (m.localOffset === U32) m.localOffset = next('offset');
      }
      q += 4 + len;
    }
  }

  private safe(v: bigint, what: string): number {
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw this.bad(`${what} ${v} is out of range`);
    return Number(v);
  }

  /** The member's bytes, decompressed and CRC-checked; a fresh buffer the caller owns. */
  readMember(name: string): Uint8Array {
    const m = this.members.get(name);
    if (!m) throw this.bad(`no member ${name}`);
    const local = this.read(m.localOffset, 30);
    if (local.readUInt32LE(0) !== LOCAL) throw this.bad(`member ${name}: no local header at byte ${m.localOffset}`);
    const nameLen = local.readUInt16LE(26);
    const start = m.localOffset + 30 + nameLen + local.readUInt16LE(28);
    if (this.read(m.localOffset + 30, nameLen).toString('utf8') !== name)
      throw this.bad(`member ${name}: local header names another file`);
    let data: Uint8Array;
    if (m.method === 0) {
      if (m.compressedSize !== m.size) throw this.bad(`stored member ${name} has two different sizes`);
      data = this.read(start, m.size);
    } else if (m.method === 8) {
      // deflate expands at most ~1032:1; a larger claim is a damaged or hostile header, not worth the allocation
      if (m.size > m.compressedSize * 1032 + 1024)
        throw this.bad(`member ${name} claims ${m.size} bytes from ${m.compressedSize} compressed`);
      const out = new Uint8Array(m.size);
      try {
        data = inflateSync(this.read(start, m.compressedSize), { out });
      } catch (e) {
        throw this.bad(`member ${name} does not inflate (${(e as Error).message})`);
      }
      if (data.length !== m.size) throw this.bad(`member ${name} inflates to ${data.length} bytes, not ${m.size}`);
    } else {
      throw this.bad(`member ${name} uses compression method ${m.method} (only stored and deflate are read)`);
    }
    if (crc32(data) >>> 0 !== m.crc >>> 0) throw this.bad(`member ${name} fails its CRC-32 check (damaged file)`);
    return data;
  }
}
