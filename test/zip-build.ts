// Zips built byte by byte, for tests and benchmarks of the server's unzipping: any member name, a header size that
// need not match the data (a lying header), and one compressed member repeated without deflating it again.
import { deflateSync } from 'fflate';

export interface RawMember {
  name: string;
  /** the member's bytes as stored: deflated when `method` is 8 (the default) */
  data: Uint8Array;
  /** the uncompressed size the headers claim */
  size: number;
  method?: 0 | 8;
}

/** A member of `bytes`, deflated; `claimedSize` (default the true size) goes into its headers. */
export const deflated = (name: string, bytes: Uint8Array, claimedSize = bytes.length): RawMember => ({
  name,
  data: deflateSync(bytes),
  size: claimedSize,
});

/** A zip (no zip64, CRCs left 0: the server's reader does not check them) of `members`, in order. */
export function zipOf(members: RawMember[]): Uint8Array<ArrayBuffer> {
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  const header = (sig: number, length: number) => {
    const b = new Uint8Array(length);
    const v = new DataView(b.buffer);
    v.setUint32(0, sig, true);
    return { b, v };
  };
  for (const m of members) {
    const name = new TextEncoder().encode(m.name);
    const local = header(0x04034b50, 30 + name.length);
    local.v.setUint16(4, 20, true);
    local.v.setUint16(6, 0x800, true);
    local.v.setUint16(8, m.method ?? 8, true);
    local.v.setUint32(18, m.data.length, true);
    local.v.setUint32(22, m.size, true);
    local.v.setUint16(26, name.length, true);
    local.b.set(name, 30);
    const dir = header(0x02014b50, 46 + name.length);
    dir.v.setUint16(4, 20, true);
    dir.v.setUint16(6, 20, true);
    dir.v.setUint16(8, 0x800, true);
    dir.v.setUint16(10, m.method ?? 8, true);
    dir.v.setUint32(20, m.data.length, true);
    dir.v.setUint32(24, m.size, true);
    dir.v.setUint16(28, name.length, true);
    dir.v.setUint32(42, offset, true);
    dir.b.set(name, 46);
    parts.push(local.b, m.data);
    central.push(dir.b);
    offset += local.b.length + m.data.length;
  }
  const size = central.reduce((n, c) => n + c.length, 0);
  const end = header(0x06054b50, 22);
  end.v.setUint16(8, members.length, true);
  end.v.setUint16(10, members.length, true);
  end.v.setUint32(12, size, true);
  end.v.setUint32(16, offset, true);
  return Buffer.concat([...parts, ...central, end.b]);
}

/** A zip bomb: `count` members of `mib` MiB of zeros each, the one compressed member repeated. */
export function zerosZip(count: number, mib = 1): Uint8Array<ArrayBuffer> {
  const one = deflated('', new Uint8Array(mib * 2 ** 20));
  return zipOf(Array.from({ length: count }, (_, i) => ({ ...one, name: `slice${i}.dcm` })));
}
