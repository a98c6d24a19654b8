// An uploaded zip unpacked without trusting it (run in a worker: unzip-worker.ts). Its central directory is the
// listing, as for every zip reader; the member count is checked before anything is inflated, every member's name
// before anything is written, and the size cap against the bytes inflation actually produces (a header can
// understate them). Members are inflated in small steps and written as they come, so no member is ever whole in
// memory. Member names are never used as paths (no zip-slip): members are written as numbered files.
import { closeSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Inflate, strFromU8 } from 'fflate';
import { ClientError } from './client-error.js';

export interface UnzipLimits {
  /** the most bytes all members together may unpack to */
  maxBytes: number;
  /** the most members (central directory entries, folders included) */
  maxMembers: number;
}

interface Member {
  name: string;
  flags: number;
  method: number;
  compressedSize: number;
  size: number;
  headerAt: number;
}

// compressed bytes per inflation step: one step produces at most ~1032× this (deflate's largest ratio)
const STEP = 16 * 1024;
const u16 = (b: Uint8Array, at: number) => b[at]! | (b[at + 1]! << 8);
const u32 = (b: Uint8Array, at: number) => (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16)) + b[at + 3]! * 2 ** 24;
const u64 = (b: Uint8Array, at: number) => u32(b, at) + u32(b, at + 4) * 2 ** 32;
const unreadable = (why: string) => new ClientError(400, `the zip cannot be read: ${why}`);
const mib = (n: number) => Math.round(n / 2 ** 20);

/** The members the zip's central directory lists; refused (413) when they are more than `maxMembers`. */
export function zipMembers(zip: Uint8Array, maxMembers: number): Member[] {
  // the end-of-central-directory record: 22 bytes, then a comment of up to 65535
  let end = zip.length - 22;
  while (end >= 0 && u32(zip, end) !== 0x06054b50) end = zip.length - end > 22 + 65535 ? -1 : end - 1;
  if (end < 0) throw unreadable('it has no end-of-central-directory record');
  let count = u16(zip, end + 10);
  let at = u32(zip, end + 16);
  if (end >= 20 && u32(zip, end - 20) === 0x07064b50) {
    const z64 = u64(zip, end - 12);
    if (z64 + 56 > zip.length || u32(zip, z64) !== 0x06064b50) throw unreadable('its zip64 record is broken');
    count = u64(zip, z64 + 32);
    at = u64(zip, z64 + 48);
  }
  if (count > maxMembers) throw new ClientError(413, `the zip has ${count} members; the limit is ${maxMembers}`);
  const members: Member[] = [];
  for (let i = 0; i < count; i++) {
    if (at + 46 > zip.length || u32(zip, at) !== 0x02014b50)
      throw unreadable(`its directory entry ${i + 1} is missing`);
    const [flags, nameLength, extraLength, commentLength] = [8, 28, 30, 32].map((o) => u16(zip, at + o)) as number[];
    const extra = at + 46 + nameLength!;
    if (extra + extraLength! + commentLength! > zip.length) throw unreadable(`its directory entry ${i + 1} is cut off`);
    const m: Member = {
      name: strFromU8(zip.subarray(at + 46, extra), !(flags! & 0x800)),
      flags: flags!,
      method: u16(zip, at + 10),
      compressedSize: u32(zip, at + 20),
      size: u32(zip, at + 24),
      headerAt: u32(zip, at + 42),
    };
    // zip64: the fields that do not fit 32 bits are in extra field 1, in this order
    for (let x = extra; x + 4 <= extra + extraLength!; x += 4 + u16(zip, x + 2)) {
      if (u16(zip, x) !== 1) continue;
      let f = x + 4;
      for (const k of ['size', 'compressedSize', 'headerAt'] as const)
        if (m[k] === 0xffffffff && f + 8 <= extra + extraLength!) [m[k], f] = [u64(zip, f), f + 8];
    }
    members.push(m);
    at = extra + extraLength! + commentLength!;
  }
  return members;
}

/** Why a member name is refused, or undefined: `.`/`..` segments and absolute paths point outside any folder. */
export function unsafeName(name: string): string | undefined {
  if (name === '') return 'has no name';
  if (/^([/\\]|[A-Za-z]:)/.test(name)) return 'is an absolute path';
  if (name.split(/[/\\]/).some((s) => s === '.' || s === '..')) return 'has a "." or ".." path segment';
  return undefined;
}

/** Folders, macOS metadata (__MACOSX/, ._name) and hidden files (.DS_Store) are not part of a series. */
const skipped = (name: string) => /[/\\]$/.test(name) || /(^|[/\\])(__MACOSX|\.)/.test(name);

/** Writes `chunk` whole (a write may take fewer bytes than given). */
function writeAll(fd: number, chunk: Uint8Array): void {
  for (let at = 0; at < chunk.length;) at += writeSync(fd, chunk, at);
}

/**
 * Unpacks the zip's files into `dir` as 00001.dcm, 00002.dcm, … in directory order. Throws a ClientError
 * naming the reason (400 unreadable or a refused name, 413 over a limit); what was written is then the caller's
 * to remove.
 */
export function unzipInto(zip: Uint8Array, dir: string, limits: UnzipLimits): { files: number; bytes: number } {
  const members = zipMembers(zip, limits.maxMembers);
  for (const { name } of members) {
    const why = unsafeName(name);
    if (why)
      throw new ClientError(400, `the zip member ${JSON.stringify(name)} ${why}; a series zip holds plain file names`);
  }
  const files = members.filter((m) => !skipped(m.name));
  if (files.length === 0) throw new ClientError(400, 'the zip holds no files');
  let total = 0;
  files.forEach((m, i) => {
    const member = JSON.stringify(m.name);
    if (m.flags & 1) throw new ClientError(400, `the zip member ${member} is encrypted`);
    if (m.method !== 0 && m.method !== 8)
      throw new ClientError(
        400,
        `the zip member ${member} uses compression method ${m.method} (only stored and deflate)`,
      );
    const h = m.headerAt;
    if (h + 30 > zip.length || u32(zip, h) !== 0x04034b50) throw unreadable(`the member ${member} is missing`);
    const start = h + 30 + u16(zip, h + 26) + u16(zip, h + 28);
    if (start + m.compressedSize > zip.length) throw unreadable(`the member ${member} is cut off`);
    const data = zip.subarray(start, start + m.compressedSize);
    const fd = openSync(join(dir, `${String(i + 1).padStart(5, '0')}.dcm`), 'wx');
    let written = 0;
    try {
      const put = (chunk: Uint8Array) => {
        total += chunk.length;
        if (total > limits.maxBytes)
          throw new ClientError(413, `the zip unpacks to more than ${mib(limits.maxBytes)} MiB`);
        written += chunk.length;
        writeAll(fd, chunk);
      };
      const inflate = m.method === 8 ? new Inflate(put) : undefined;
      for (let at = 0; at < data.length || (at === 0 && inflate); at += STEP) {
        const step = data.subarray(at, at + STEP);
        if (inflate) inflate.push(step, at + STEP >= data.length);
        else put(step);
      }
    } catch (e) {
      if (e instanceof ClientError) throw e;
      throw unreadable(`the member ${member}: ${(e as Error).message}`);
    } finally {
      closeSync(fd);
    }
    if (written !== m.size)
      throw unreadable(`the member ${member} unpacks to ${written} bytes where its header says ${m.size}`);
  });
  return { files: files.length, bytes: total };
}
