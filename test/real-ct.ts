// A real CT for the tests: the head CT that Debian's invesalius-examples package ships (GPL-2; not committed here):
// an InVesalius project, a gzip tar holding main.plist (the volume's dtype, file, shape (slices, rows, columns) and
// spacing (x, y, z)) and the volume itself as raw little-endian values. int16 HU, 108×256×256 at 0.957×0.957×1.5 mm.
// InVesalius keeps slices from feet to head and rows from back to front (flipped from DICOM's display); rows are
// flipped back here so the volume comes out in DICOM's LPS order (columns to the patient's left — as displayed,
// which the anatomy of a head cannot confirm — rows to posterior, slices to superior).
import { existsSync, readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { lpsArrayAffine } from '../src/data/synth/dataset.js';

// T3D_REAL_CT: where CI put the file when the machine's dpkg excludes /usr/share/doc (as slim images do)
export const REAL_HEAD_CT = process.env.T3D_REAL_CT ?? '/usr/share/doc/invesalius-examples/examples/Cranium.inv3';
const haveRealCt = existsSync(REAL_HEAD_CT);
if (!haveRealCt && process.env.T3D_REQUIRE_REAL_CT === '1')
  throw new Error(`T3D_REQUIRE_REAL_CT=1 but ${REAL_HEAD_CT} is missing (apt-get install invesalius-examples)`);
/** A test's `skip` option: false, or why the real CT tests cannot run here. */
export const skipRealCt: false | string = haveRealCt
  ? false
  : `${REAL_HEAD_CT} is missing (Debian package invesalius-examples)`;

export interface RealCt {
  /** int16 HU, x fastest: (slices, rows, columns) C order */
  data: Int16Array;
  /** (D, H, W) */
  shape: [number, number, number];
  /** (x, y, z) mm */
  spacing: [number, number, number];
  /** RAS affine of (column, row, slice) */
  affine: number[][];
  name: string;
}

/** The members of a tar archive (ustar; regular files only), by path. */
function untar(bytes: Uint8Array): Map<string, Uint8Array> {
  const files = new Map<string, Uint8Array>();
  const text = (at: number, n: number) =>
    Buffer.from(bytes.subarray(at, at + n))
      .toString('latin1')
      .replace(/\0.*$/s, '');
  for (let at = 0; at + 512 <= bytes.length;) {
    const name = text(at, 100);
    if (!name) break;
    const size = parseInt(text(at + 124, 12).trim() || '0', 8);
    const prefix = text(at + 257, 6).startsWith('ustar') ? text(at + 345, 155) : '';
    const type = text(at + 156, 1);
    if (type === '0' || type === '')
      files.set(prefix ? `${prefix}/${name}` : name, bytes.subarray(at + 512, at + 512 + size));
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return files;
}

type Plist = string | number | boolean | Plist[] | { [key: string]: Plist };

/** An XML property list's root value (dict, array, string, integer, real, true, false). */
export function parsePlist(xml: string): Plist {
  const tokens = [...xml.matchAll(/<(\/?)(\w+)(\/?)>([^<]*)/g)].filter((m) => m[2] !== 'plist');
  let i = 0;
  const value = (): Plist => {
    const [, close, tag, selfClosing, body] = tokens[i++]!;
    if (close) throw new Error(`plist: unexpected </${tag}>`);
    if (selfClosing) {
      if (tag === 'true' || tag === 'false') return tag === 'true';
      return tag === 'dict' ? {} : tag === 'array' ? [] : '';
    }
    if (tag === 'dict' || tag === 'array') {
      const items: Plist[] = [];
      const keys: string[] = [];
      while (!tokens[i]![1]) {
        if (tag === 'dict') {
          const [, , k, , name] = tokens[i++]!;
          if (k !== 'key') throw new Error(`plist: <${k}> where a <key> belongs`);
          keys.push(name!);
          i++; // </key>
        }
        items.push(value());
      }
      i++; // </dict> or </array>
      return tag === 'dict' ? Object.fromEntries(keys.map((k, n) => [k, items[n]!])) : items;
    }
    i++; // the closing tag
    const s = body ?? '';
    if (tag === 'integer' || tag === 'real') return Number(s);
    if (tag === 'string') return s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
    throw new Error(`plist: unsupported <${tag}>`);
  };
  return value();
}

/** An InVesalius project (.inv3) → its CT volume in LPS order (see the file's comment). */
export function readInvesalius(path = REAL_HEAD_CT): RealCt {
  const files = untar(gunzipSync(readFileSync(path)));
  const main = [...files.keys()].filter((f) => f.endsWith('main.plist')).sort((a, b) => a.length - b.length)[0];
  if (!main) throw new Error(`${path}: no main.plist in the project`);
  const plist = parsePlist(Buffer.from(files.get(main)!).toString('utf8')) as Record<string, Plist>;
  const matrix = plist.matrix as { dtype: string; filename: string; shape: number[] };
  const spacing = plist.spacing as number[];
  if (matrix?.dtype !== 'int16') throw new Error(`${path}: matrix dtype ${matrix?.dtype}, expected int16`);
  const dir = main.slice(0, main.length - 'main.plist'.length);
  const raw = files.get(dir + matrix.filename);
  const [D, H, W] = matrix.shape as [number, number, number];
  if (!raw || raw.length !== D * H * W * 2) throw new Error(`${path}: ${matrix.filename} is not ${D}×${H}×${W} int16`);
  const stored = new Int16Array(Uint8Array.from(raw).buffer); // a copy: aligned, and not the whole tar
  const data = new Int16Array(D * H * W);
  for (let k = 0; k < D; k++)
    for (let j = 0; j < H; j++)
      data.set(stored.subarray((k * H + j) * W, (k * H + j + 1) * W), (k * H + H - 1 - j) * W);
  const sp: [number, number, number] = [spacing[0]!, spacing[1]!, spacing[2]!];
  return { data, shape: [D, H, W], spacing: sp, affine: lpsArrayAffine([D, H, W], sp), name: String(plist.name) };
}
