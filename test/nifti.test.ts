// NIfTI reader/writer tests. Golden data comes from nibabel (see
// scripts/fixtures/make_nifti_fixtures.py); CI only reads the committed files.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';
import {
  affineToAxcodes,
  encodeNiftiHeader,
  parseNiftiHeader,
  qformAffine,
  readNifti,
  readNiftiSync,
  sformAffine,
  type Mat4,
  type NiftiDatatypeName,
  type NiftiHeader,
  type NiftiTypedArray,
} from '../src/io/nifti.js';
import { encodeNifti, writeNifti, writeNiftiSync, type NiftiWriteImage } from '../src/io/nifti-write.js';
import { gunzipEngine } from '../src/io/gzip.js';

const FIX = fileURLToPath(new URL('../../test/fixtures/nifti/', import.meta.url));
type Num = number | 'NaN' | 'Infinity' | '-Infinity';
interface NibRecord {
  version: 1 | 2;
  endianness: '<' | '>';
  gzip: boolean;
  shape: number[];
  dtype: string;
  affine: Mat4;
  affineSource: string;
  sformCode: number;
  qformCode: number;
  sform: Mat4;
  qform: Mat4 | null;
  pixdim: number[];
  zooms: number[];
  xyztUnits: [string, string];
  axcodes: (string | null)[];
  voxOffset: number;
  sclSlope: Num;
  sclInter: Num;
  slope: number | null;
  inter: number | null;
  firstVolume: { shape: number[]; sha256: string; nonFinite: number; samples: [number[], Num][] };
  allVolumes: { shape: number[]; sha256: string };
  rawSha256: string;
}
const nib = JSON.parse(readFileSync(join(FIX, 'nibabel.json'), 'utf8')) as {
  fixtures: Record<string, NibRecord>;
  ours: Record<string, NibRecord>;
};
const intended = JSON.parse(readFileSync(join(FIX, 'ours', 'intended.json'), 'utf8')) as {
  specs: { file: string; image: NiftiWriteImage }[];
};

const tmp = mkdtempSync(join(tmpdir(), 't3d-nifti-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const sha = (a: NiftiTypedArray): string =>
  createHash('sha256')
    .update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength))
    .digest('hex');
const f32sha = (values: ArrayLike<number>): string => sha(Float32Array.from(values));
/** Fortran-order flat index, the order NIfTI stores voxels in. */
const flat = (idx: number[], shape: number[]): number => idx.reduceRight((acc, v, k) => acc * shape[k]! + v, 0);

function assertClose(actual: Mat4 | number[], expected: Mat4 | number[], tol: number, msg = ''): void {
  const a = actual.flat(),
    e = expected.flat();
  assert.equal(a.length, e.length, msg);
  a.forEach((v, i) =>
    assert.ok(Math.abs(v - e[i]!) <= tol, `${msg} [${i}]: ${v} vs ${e[i]} (tol ${tol})\n${JSON.stringify(actual)}`),
  );
}

const deg = (d: number): number => (d * Math.PI) / 180;
/** R (rotations about z then x) · diag(zooms), plus translation. */
function makeAffine(rz: number, rx: number, zooms: number[], t: number[]): Mat4 {
  const [cz, sz, cx, sx] = [Math.cos(deg(rz)), Math.sin(deg(rz)), Math.cos(deg(rx)), Math.sin(deg(rx))];
  const R = [
    [cz, -sz * cx, sz * sx],
    [sz, cz * cx, -cz * sx],
    [0, sx, cx],
  ];
  return [...R.map((r, i) => [...r.map((v, j) => v * zooms[j]!), t[i]!]), [0, 0, 0, 1]];
}
const OBLIQUE = makeAffine(17, -11, [0.8, 0.9, 2.5], [-60.5, 40.25, -12]);

// ------------------------------------------------------------------ golden

describe('nibabel-written fixtures read as nibabel reads them', () => {
  for (const [file, rec] of Object.entries(nib.fixtures)) {
    test(file, async () => {
      const path = join(FIX, file);
      const img = await readNifti(path);
      const h = img.header;
      assert.equal(h.version, rec.version);
      assert.equal(h.littleEndian, rec.endianness === '<');
      assert.deepEqual(img.shape, rec.shape);
      assert.equal(img.datatype, rec.dtype);
      assert.equal(img.affineSource, rec.affineSource);
      assertClose(img.affine, rec.affine, 1e-5, 'affine');
      assertClose(sformAffine(h), rec.sform, 0, 'sform');
      if (rec.qform) assertClose(qformAffine(h), rec.qform, 1e-6, 'qform');
      assert.deepEqual(img.spacing, rec.zooms);
      assert.deepEqual(h.pixdim, rec.pixdim);
      assert.deepEqual([img.units.xyz, img.units.t], rec.xyztUnits);
      assert.deepEqual(affineToAxcodes(img.affine), rec.axcodes);
      assert.equal(h.voxOffset, rec.voxOffset);
      assert.equal(h.sclSlope, Number(rec.sclSlope));
      assert.equal(h.sclInter, Number(rec.sclInter));

      const fv = rec.firstVolume;
      assert.deepEqual(img.dataShape, fv.shape);
      assert.ok(img.data instanceof Float32Array);
      assert.equal(sha(img.data), fv.sha256, 'first-volume data hash');
      for (const [idx, v] of fv.samples)
        assert.ok(Object.is(img.data[flat(idx, fv.shape)], Math.fround(Number(v))), `voxel ${idx}`);

      const all = await readNifti(path, { allVolumes: true });
      assert.deepEqual(all.dataShape, rec.allVolumes.shape);
      assert.equal(sha(all.data), rec.allVolumes.sha256, 'all-volumes data hash');
      const raw = await readNifti(path, { raw: true, allVolumes: true });
      assert.equal(raw.data.constructor.name.toLowerCase(), `${rec.dtype}array`);
      assert.equal(sha(raw.data), rec.rawSha256, 'raw data hash');

      const sync = readNiftiSync(path, { allVolumes: true });
      assert.deepEqual(sync.data, all.data);
      if (fv.nonFinite > 0) {
        await assert.rejects(
          readNifti(path, { rejectNonFinite: true }),
          new RegExp(`${file}: ${fv.nonFinite} non-finite voxels`),
        );
      } else {
        await readNifti(path, { rejectNonFinite: true });
      }
    });
  }

  test('fixture set covers the required cases', () => {
    const recs = Object.values(nib.fixtures);
    assert.ok(recs.some((r) => r.version === 2));
    assert.ok(
      recs.some((r) => r.endianness === '>' && r.version === 1) &&
        recs.some((r) => r.endianness === '>' && r.version === 2),
    );
    assert.ok(recs.some((r) => r.gzip));
    assert.ok(recs.some((r) => r.shape.length === 4));
    assert.ok(recs.some((r) => r.slope !== null && r.dtype === 'int16'));
    for (const s of ['sform', 'qform', 'fallback'])
      assert.ok(
        recs.some((r) => r.affineSource === s),
        s,
      );
    assert.ok(
      recs.some((r) => r.pixdim[0] === -1 && r.affineSource === 'qform'),
      'left-handed qform',
    );
    const dtypes = new Set(recs.map((r) => r.dtype));
    for (const d of ['uint8', 'int8', 'int16', 'uint16', 'int32', 'uint32', 'float32', 'float64'])
      assert.ok(dtypes.has(d), d);
  });

  test('nibabel fallback affine: x flipped, origin at the centre, pixdim fixed (abs, 0 -> 1)', async () => {
    const img = await readNifti(join(FIX, 'no_codes.nii'));
    assert.deepEqual(img.header.pixdim.slice(1, 4), [-1.5, 2, 0]);
    assert.deepEqual(img.spacing, [1.5, 2, 1]);
    assertClose(
      img.affine,
      [
        [-1.5, 0, 0, 3],
        [0, 2, 0, -3],
        [0, 0, 1, -1],
        [0, 0, 0, 1],
      ],
      0,
    );
  });
});

// -------------------------------------------------- our files, read by nibabel

describe('files from our writer, as nibabel read them', () => {
  for (const { file, image } of intended.specs) {
    test(file, async () => {
      const rec = nib.ours[file];
      assert.ok(rec, `nibabel.json has no record for ours/${file}; rerun make_nifti_fixtures.py`);
      const committed = readFileSync(join(FIX, 'ours', file));
      const bytes = rec.gzip ? gunzipSync(committed) : committed;
      assert.deepEqual(
        encodeNifti(image),
        new Uint8Array(bytes),
        'writer output changed: rerun write_nifti_fixtures.mjs and make_nifti_fixtures.py',
      );

      assert.equal(rec.version, image.version ?? 1);
      assert.deepEqual(rec.shape, image.shape);
      assert.equal(rec.dtype, image.datatype);
      assert.equal(rec.affineSource, (image.sformCode ?? 1) > 0 ? 'sform' : 'qform');
      assertClose(rec.affine, image.affine, 1e-5, 'nibabel affine');
      const cols = [0, 1, 2].map((j) => Math.hypot(image.affine[0]![j]!, image.affine[1]![j]!, image.affine[2]![j]!));
      assertClose(rec.zooms, [...cols, ...(image.extraPixdim ?? [])], 1e-6, 'zooms');
      assert.equal(rec.pixdim[0], Math.sign(det3(image.affine)));
      assert.deepEqual(rec.axcodes, affineToAxcodes(image.affine));
      assert.deepEqual(rec.xyztUnits, ['mm', image.shape.length > 3 ? 'sec' : 'unknown']);
      const slope = image.sclSlope ?? 1,
        inter = image.sclInter ?? 0;
      assert.equal(
        rec.allVolumes.sha256,
        f32sha(Array.from(image.data, (v) => v * slope + inter)),
        'nibabel scaled data',
      );

      // nibabel's qform is our qform, and it equals the affine unless the affine has shear.
      const ours = await readNifti(committed, { raw: true, allVolumes: true, name: file });
      assert.ok(rec.qform);
      assertClose(qformAffine(ours.header), rec.qform, 1e-6, 'qform');
      if (file.includes('shear')) assertOrthogonal(rec.qform);
      else assertClose(rec.qform, image.affine, 1e-5, 'qform vs affine');
      assert.deepEqual(
        Array.from(ours.data),
        Array.from(image.data, (v) => (image.datatype === 'float32' ? Math.fround(v) : v)),
      );
    });
  }
});

const det3 = (m: Mat4): number =>
  m[0]![0]! * (m[1]![1]! * m[2]![2]! - m[1]![2]! * m[2]![1]!) -
  m[0]![1]! * (m[1]![0]! * m[2]![2]! - m[1]![2]! * m[2]![0]!) +
  m[0]![2]! * (m[1]![0]! * m[2]![1]! - m[1]![1]! * m[2]![0]!);
function assertOrthogonal(m: Mat4): void {
  const col = (j: number) => [m[0]![j]!, m[1]![j]!, m[2]![j]!];
  for (const [a, b] of [
    [0, 1],
    [0, 2],
    [1, 2],
  ] as const) {
    const dot = col(a).reduce((s, v, i) => s + v * col(b)[i]!, 0);
    assert.ok(Math.abs(dot) < 1e-6, `columns ${a},${b} not orthogonal: ${dot}`);
  }
}

// -------------------------------------------------------------- round trips

const RANGES: Record<NiftiDatatypeName, [number, number]> = {
  uint8: [0, 255],
  int8: [-128, 127],
  int16: [-32768, 32767],
  uint16: [0, 65535],
  int32: [-(2 ** 31), 2 ** 31 - 1],
  uint32: [0, 2 ** 32 - 1],
  float32: [-3e38, 3e38],
  float64: [-1e300, 1e300],
};
function sampleData(dt: NiftiDatatypeName, n: number): number[] {
  const [lo, hi] = RANGES[dt];
  const out = Array.from({ length: n }, (_, i) =>
    dt.startsWith('float') ? (i - n / 2) * 1.25 : lo + ((i * 7919) % Math.min(hi - lo + 1, 100_003)),
  );
  out[0] = lo;
  out[1] = hi;
  return dt === 'float32' ? out.map(Math.fround) : out;
}

describe('write then read back', () => {
  const dts = Object.keys(RANGES) as NiftiDatatypeName[];
  for (const version of [1, 2] as const) {
    for (const ext of ['.nii', '.nii.gz']) {
      test(`every datatype, NIfTI-${version} ${ext}`, async () => {
        for (const dt of dts) {
          const path = join(tmp, `rt_${dt}_v${version}${ext}`);
          const data = sampleData(dt, 4 * 5 * 6);
          await writeNifti(path, { data, shape: [4, 5, 6], affine: OBLIQUE, datatype: dt, version });
          const img = await readNifti(path, { raw: true });
          assert.equal(img.datatype, dt);
          assert.equal(img.header.version, version);
          assert.deepEqual(Array.from(img.data), data, dt);
          assert.equal(img.affineSource, 'sform');
          assertClose(img.affine, OBLIQUE, 1e-5, `${dt} sform`);
          assertClose(qformAffine(img.header), OBLIQUE, 1e-5, `${dt} qform`);
          assert.equal(img.header.qformCode, 1);
          assert.equal(img.header.sformCode, 1);
          assert.equal(readFileSync(path)[0] === 0x1f, ext === '.nii.gz');
        }
      });
    }
  }

  test('inflateInto: with libdeflate a .nii.gz inflates into the given buffer when it holds the capacity, else into a new one', async () => {
    const path = join(tmp, 'into.nii.gz');
    const data = sampleData('int16', 4 * 5 * 6);
    await writeNifti(path, { data, shape: [4, 5, 6], affine: OBLIQUE, datatype: 'int16' });
    const file = readFileSync(path);
    const big = new Uint8Array(32 << 20); // the capacity is the image's bytes + 16 MiB of slack
    const a = readNiftiSync(file, { raw: true, inflateInto: big });
    assert.deepEqual(Array.from(a.data), data);
    assert.equal(a.data.buffer === big.buffer, gunzipEngine === 'libdeflate');
    const small = new Uint8Array(1 << 20);
    const b = readNiftiSync(file, { raw: true, inflateInto: small });
    assert.deepEqual(Array.from(b.data), data);
    assert.notEqual(b.data.buffer, small.buffer);
    assert.ok(
      small.every((v) => v === 0),
      'a buffer too small is left untouched',
    );
  });

  test('typed array input picks its own datatype; plain arrays default to float32', () => {
    const p1 = join(tmp, 'infer16.nii'),
      p2 = join(tmp, 'infer_plain.nii');
    writeNiftiSync(p1, { data: new Int16Array([1, -2, 3, -4]), shape: [2, 2], affine: OBLIQUE });
    writeNiftiSync(p2, { data: [0.5, 1, 2, 3], shape: [4], affine: OBLIQUE });
    assert.equal(readNiftiSync(p1).datatype, 'int16');
    assert.deepEqual(Array.from(readNiftiSync(p1).data), [1, -2, 3, -4]);
    assert.equal(readNiftiSync(p2).datatype, 'float32');
  });

  test('left-handed affines store qfac = -1 and survive the qform exactly', () => {
    for (const version of [1, 2] as const) {
      const lps = makeAffine(-20, 30, [-1.25, 1, 1.5], [50, -20, 10]); // oblique + x flip: w ~ 0
      const path = join(tmp, `left_v${version}.nii`);
      writeNiftiSync(path, { data: new Float32Array(24), shape: [2, 3, 4], affine: lps, sformCode: 0, version });
      const img = readNiftiSync(path);
      assert.equal(img.header.pixdim[0], -1);
      assert.equal(img.affineSource, 'qform');
      // Oblique + flipped means a quaternion with w ~ 0: rounding b,c,d to float32 one by one (as nibabel
      // does) leaves errors up to ~1e-3 mm in NIfTI-1; our joint rounding stays at float32 precision.
      assertClose(img.affine, lps, version === 1 ? 1e-5 : 1e-12, `v${version}`);
      assert.deepEqual(affineToAxcodes(img.affine), affineToAxcodes(lps));
    }
  });

  test('sform keeps shear; qform is the nearest rigid+zoom transform', () => {
    const sheared = OBLIQUE.map((r) => r.slice());
    sheared[0]![1]! += 0.2;
    const path = join(tmp, 'shear.nii');
    writeNiftiSync(path, { data: new Uint8Array(8), shape: [2, 2, 2], affine: sheared });
    const img = readNiftiSync(path);
    assertClose(img.affine, sheared, 1e-5, 'sform');
    const q = qformAffine(img.header);
    assertOrthogonal(q);
    assert.ok(Math.abs(q[0]![1]! - sheared[0]![1]!) > 1e-3, 'shear must not reach the qform');
  });

  test('scl_slope/scl_inter: raw values stored, scaled values read', async () => {
    const path = join(tmp, 'scaled.nii.gz');
    const data = new Int16Array([-1000, 0, 7, 32767, -32768, 12]);
    await writeNifti(path, { data, shape: [3, 2], affine: OBLIQUE, sclSlope: 0.5, sclInter: -1024 });
    const img = await readNifti(path);
    assert.deepEqual(
      Array.from(img.data),
      Array.from(data, (v) => v * 0.5 - 1024),
    );
    assert.deepEqual(Array.from((await readNifti(path, { raw: true })).data), Array.from(data));
    // slope 0 means "no scaling" in NIfTI, whatever the intercept says.
    writeNiftiSync(path, { data, shape: [3, 2], affine: OBLIQUE, sclSlope: 0, sclInter: 5 });
    assert.deepEqual(Array.from(readNiftiSync(path).data), Array.from(data));
  });

  test('4D: first volume by default, all on request; time pixdim and units', () => {
    const path = join(tmp, 'four.nii');
    const data = Float32Array.from({ length: 2 * 3 * 4 * 5 }, (_, i) => i);
    writeNiftiSync(path, { data, shape: [2, 3, 4, 5], affine: OBLIQUE, extraPixdim: [2.5], version: 2 });
    const first = readNiftiSync(path);
    assert.deepEqual(first.shape, [2, 3, 4, 5]);
    assert.deepEqual(first.dataShape, [2, 3, 4]);
    assert.deepEqual(Array.from(first.data), Array.from(data.subarray(0, 24)));
    assert.equal(first.spacing[3], 2.5);
    assert.deepEqual(first.units, { xyz: 'mm', t: 'sec' });
    assert.deepEqual(readNiftiSync(path, { allVolumes: true }).data, data);
  });

  test('1D, 2D and 7D shapes', () => {
    for (const shape of [[5], [3, 4], [2, 1, 2, 1, 2, 1, 2]]) {
      const n = shape.reduce((a, b) => a * b, 1);
      const path = join(tmp, `nd${shape.length}.nii`);
      writeNiftiSync(path, { data: Float32Array.from({ length: n }, (_, i) => i), shape, affine: OBLIQUE });
      const img = readNiftiSync(path, { allVolumes: true });
      assert.deepEqual(img.shape, shape);
      assert.equal(img.data.length, n);
    }
  });

  test('async and sync writers produce the same bytes; header encode/parse round-trips', async () => {
    const img: NiftiWriteImage = {
      data: sampleData('int16', 60),
      shape: [3, 4, 5],
      datatype: 'int16',
      affine: OBLIQUE,
      description: 'hello',
    };
    await writeNifti(join(tmp, 'a.nii'), img);
    writeNiftiSync(join(tmp, 'b.nii'), img);
    assert.deepEqual(readFileSync(join(tmp, 'a.nii')), readFileSync(join(tmp, 'b.nii')));
    for (const version of [1, 2] as const) {
      const bytes = encodeNifti({ ...img, version });
      const h = parseNiftiHeader(bytes, 'x');
      assert.equal(h.descrip, 'hello');
      assert.deepEqual(encodeNiftiHeader(h), bytes.subarray(0, version === 1 ? 352 : 544));
    }
  });

  test('atomic writes: no temp files left, overwrite replaces, failures leave nothing', async () => {
    const dir = join(tmp, 'atomic');
    mkdirSync(dir);
    const path = join(dir, 'img.nii.gz');
    await writeNifti(path, { data: new Uint8Array(8).fill(1), shape: [2, 2, 2], affine: OBLIQUE });
    writeNiftiSync(path, { data: new Uint8Array(8).fill(2), shape: [2, 2, 2], affine: OBLIQUE });
    assert.deepEqual(readdirSync(dir), ['img.nii.gz']);
    assert.equal(readNiftiSync(path).data[0], 2);
    const bad = { data: [1, 2, 3], shape: [2, 2, 2], affine: OBLIQUE };
    await assert.rejects(writeNifti(join(dir, 'bad.nii'), bad), /bad\.nii: data has 3 values/);
    assert.throws(() => writeNiftiSync(join(dir, 'missing', 'x.nii'), { ...bad, shape: [3] }), /ENOENT/);
    assert.deepEqual(readdirSync(dir), ['img.nii.gz']);
  });

  test('NaN/Inf voxels are written as given and caught by rejectNonFinite', () => {
    const path = join(tmp, 'nan.nii');
    writeNiftiSync(path, { data: [1, NaN, Infinity, -Infinity, 5, NaN], shape: [6], affine: OBLIQUE });
    assert.equal(readNiftiSync(path).data.filter(Number.isNaN).length, 2);
    assert.throws(() => readNiftiSync(path, { rejectNonFinite: true }), /nan\.nii: 4 non-finite voxels/);
  });
});

// ---------------------------------------------------------------- axcodes

describe('affineToAxcodes', () => {
  const A = (m: number[][]): Mat4 => [...m.map((r, i) => [...r, i]), [0, 0, 0, 1]];
  test('canonical orientations', () => {
    assert.deepEqual(
      affineToAxcodes(
        A([
          [1, 0, 0],
          [0, 1, 0],
          [0, 0, 1],
        ]),
      ),
      ['R', 'A', 'S'],
    );
    assert.deepEqual(
      affineToAxcodes(
        A([
          [-1, 0, 0],
          [0, -1, 0],
          [0, 0, 1],
        ]),
      ),
      ['L', 'P', 'S'],
    );
    assert.deepEqual(
      affineToAxcodes(
        A([
          [-2, 0, 0],
          [0, 2, 0],
          [0, 0, 2],
        ]),
      ),
      ['L', 'A', 'S'],
    );
    assert.deepEqual(
      affineToAxcodes(
        A([
          [0, 0, 1],
          [1, 0, 0],
          [0, 1, 0],
        ]),
      ),
      ['A', 'S', 'R'],
    );
    assert.deepEqual(
      affineToAxcodes(
        A([
          [0, 0, -3],
          [0, -1, 0],
          [-1, 0, 0],
        ]),
      ),
      ['I', 'P', 'L'],
    );
  });
  test('oblique picks the dominant axis; a zero column gives null', () => {
    assert.deepEqual(affineToAxcodes(makeAffine(30, 0, [1, 1, 1], [0, 0, 0])), ['R', 'A', 'S']);
    assert.deepEqual(affineToAxcodes(makeAffine(120, 0, [1, 1, 1], [0, 0, 0])), ['A', 'L', 'S']);
    assert.deepEqual(
      affineToAxcodes(
        A([
          [1, 0, 0],
          [0, 1, 0],
          [0, 0, 0],
        ]),
      ),
      ['R', 'A', null],
    );
    assert.throws(
      () =>
        affineToAxcodes([
          [1, 0],
          [0, 1],
        ]),
      /4x4/,
    );
  });
});

// -------------------------------------------------------------- bad input

describe('malformed files are rejected with the file name and reason', () => {
  const base = (version: 1 | 2 = 1, datatype: NiftiDatatypeName = 'int16'): Uint8Array =>
    encodeNifti({ data: sampleData(datatype, 24), shape: [2, 3, 4], datatype, affine: OBLIQUE, version });
  /** Re-encode the header with some fields changed, keeping the data. */
  const withHeader = (patch: Partial<NiftiHeader>, version: 1 | 2 = 1): Uint8Array => {
    const b = base(version);
    const h = parseNiftiHeader(b, 'base');
    const head = encodeNiftiHeader({ ...h, ...patch });
    const out = b.slice();
    out.set(head);
    return out;
  };
  const rejects = (bytes: Uint8Array, re: RegExp, opts: { rejectNonFinite?: boolean } = {}): void => {
    const name = 'bad.nii';
    assert.throws(
      () => readNiftiSync(bytes, { ...opts, name }),
      (e: Error) => {
        assert.match(e.message, new RegExp(`^bad\\.nii: .*${re.source}`));
        return true;
      },
    );
  };

  test('empty and truncated files', () => {
    rejects(new Uint8Array(0), /file is empty/);
    rejects(base().subarray(0, 3), /truncated header \(3 bytes\)/);
    rejects(base().subarray(0, 200), /truncated header \(200 of 348 bytes\)/);
    rejects(base(2).subarray(0, 400), /truncated header \(400 of 540 bytes\)/);
    rejects(base().subarray(0, base().length - 1), /truncated image data: header needs 400 bytes, got 399/);
    rejects(base().subarray(0, 352), /vox_offset 352 is beyond the end of the data \(352 bytes\)/);
  });

  test('broken gzip streams', async () => {
    const gz = gzipSync(base());
    rejects(
      gz.subarray(0, gz.length - 12),
      /corrupt or truncated gzip stream \((unexpected end of file|libdeflate: bad or truncated data)\)/,
    );
    rejects(Uint8Array.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff]), /corrupt gzip stream/);
    rejects(gzipSync(base().subarray(0, 390)), /truncated image data: header needs 400 bytes, got 390/);
    // More than 16 MiB past what the header describes: treated as a gzip bomb, not inflated to the end.
    const bomb = gzipSync(Buffer.concat([base(), new Uint8Array(17 << 20)]));
    rejects(bomb, /gzip stream inflates past the 400 bytes the header describes/);
    const path = join(tmp, 'cut.nii.gz');
    writeFileSync(path, gz.subarray(0, gz.length - 12));
    await assert.rejects(readNifti(path), new RegExp(`${path}: corrupt or truncated gzip`));
  });

  test('not NIfTI: sizeof_hdr and magic', () => {
    rejects(
      new TextEncoder().encode('just some text, definitely not a header'),
      /sizeof_hdr is \d+, expected 348 \(NIfTI-1\) or 540 \(NIfTI-2\)/,
    );
    const b = base();
    new DataView(b.buffer).setInt32(0, 349, true);
    rejects(b, /sizeof_hdr is 349/);
    for (const [magic, re] of [
      ['abc\0', /bad magic "abc\\u0000", expected "n\+1"/],
      ['ni1\0', /marks a \.hdr\/\.img pair/],
    ] as const) {
      const m = base();
      m.set(new TextEncoder().encode(magic), 344);
      rejects(m, re);
    }
    const v2 = base(2);
    v2.set([13, 13, 26, 10], 8); // what a CRLF-mangling transfer would do
    rejects(v2, /EOL check bytes are 13,13,26,10/);
  });

  test('dim[0] outside 1..7, zero and negative dims', () => {
    rejects(withHeader({ dim: [0, 2, 3, 4, 1, 1, 1, 1] }), /dim\[0\] is 0, must be 1\.\.7/);
    rejects(withHeader({ dim: [8, 2, 3, 4, 1, 1, 1, 1] }), /dim\[0\] is 8/);
    rejects(withHeader({ dim: [3, 2, 0, 4, 1, 1, 1, 1] }), /dim\[2\] is 0, every dimension must be >= 1/);
    rejects(withHeader({ dim: [3, 2, 3, -4, 1, 1, 1, 1] }), /dim\[3\] is -4/);
    rejects(withHeader({ dim: [3, 2, -3, 4, 1, 1, 1, 1] }, 2), /dim\[2\] is -3/);
  });

  test('absurd dims fail before anything is allocated', async () => {
    rejects(withHeader({ dim: [3, 32767, 32767, 32767, 1, 1, 1, 1] }), /dims 32767x32767x32767 exceed 2\^31 voxels/);
    rejects(withHeader({ dim: [3, 2 ** 40, 1, 1, 1, 1, 1, 1] }, 2), /exceed 2\^31 voxels/);
    // Exactly 2^31 float64 voxels (16 GiB): allowed count, but only the small file is there.
    const huge = withHeader({ dim: [3, 2 ** 30, 2, 1, 1, 1, 1, 1], datatype: 64, bitpix: 64 }, 2);
    rejects(huge, /truncated image data: header needs 17179869728 bytes/);
    const hugeGz = gzipSync(huge);
    // Node 20 caps buffers at 4 GiB and refuses up front; newer Node inflates the small stream and finds it short.
    const needs = /bad\.nii: (image|truncated image data: header) needs 17179869728 bytes/;
    assert.throws(() => readNiftiSync(hugeGz, { name: 'bad.nii' }), needs);
    await assert.rejects(readNifti(hugeGz, { name: 'bad.nii' }), needs);
    rejects(withHeader({ dim: [3, 200, 3, 4, 1, 1, 1, 1] }), /truncated image data: header needs 5152 bytes, got 400/);
  });

  test('vox_offset beyond the file, inside the header, or fractional', () => {
    rejects(withHeader({ voxOffset: 4096 }), /vox_offset 4096 is beyond the end of the data \(400 bytes\)/);
    rejects(withHeader({ voxOffset: 2 ** 40 }, 2), /vox_offset 1099511627776 is beyond the end/);
    rejects(withHeader({ voxOffset: 100 }), /vox_offset 100 is inside the header \(minimum 352\)/);
    rejects(withHeader({ voxOffset: 352.5 }), /vox_offset 352\.5 is not an integer/);
  });

  test('unsupported datatypes and bitpix mismatch', () => {
    rejects(withHeader({ datatype: 32, bitpix: 64 }), /unsupported datatype complex64 \(code 32\)/);
    rejects(withHeader({ datatype: 128, bitpix: 24 }), /unsupported datatype RGB24 \(code 128\)/);
    rejects(withHeader({ datatype: 1024, bitpix: 64 }, 2), /unsupported datatype int64 \(code 1024\)/);
    rejects(withHeader({ datatype: 999 }), /unsupported datatype code 999/);
    rejects(withHeader({ bitpix: 8 }), /bitpix 8 does not match datatype int16 \(16\)/);
  });

  test('non-finite scl_slope means unscaled data (as nibabel); a usable slope needs a finite scl_inter', () => {
    for (const [sclSlope, version] of [
      [NaN, 1],
      [Infinity, 2],
      [-Infinity, 1],
    ] as const) {
      const plain = readNiftiSync(withHeader({ sclSlope: 1, sclInter: 0 }, version)).data;
      const img = readNiftiSync(withHeader({ sclSlope, sclInter: 7 }, version));
      assert.deepEqual(Array.from(img.data), Array.from(plain), `scl_slope ${sclSlope}: raw values`);
      assert.ok(
        Array.from(img.data).some((v) => v !== 0),
        'the header fixture holds non-zero voxels',
      );
    }
    rejects(withHeader({ sclSlope: 2, sclInter: NaN }), /scl_inter is NaN with scl_slope 2/);
    readNiftiSync(withHeader({ sclSlope: 0, sclInter: NaN })); // slope 0: intercept unused
  });

  test('unknown xform codes are ignored, as nibabel zeroes them on load', () => {
    const img = readNiftiSync(withHeader({ sformCode: 7, qformCode: 1 }));
    assert.equal(img.affineSource, 'qform');
    assert.equal(readNiftiSync(withHeader({ sformCode: -1, qformCode: 9 })).affineSource, 'fallback');
  });

  test('invalid qform quaternion and non-finite sform', () => {
    rejects(withHeader({ sformCode: 0, quaternB: 0.9, quaternC: 0.9, quaternD: 0 }), /invalid qform quaternion/);
    rejects(withHeader({ srowX: [NaN, 0, 0, 0] }), /sform affine has non-finite entries/);
  });

  test('non-finite voxels with rejectNonFinite, counted', () => {
    const b = encodeNifti({ data: [1, NaN, 2, Infinity], shape: [4], affine: OBLIQUE });
    rejects(b, /2 non-finite voxels \(NaN\/Inf\)/, { rejectNonFinite: true });
    // float32 overflow of scaled values counts too
    rejects(withHeader({ sclSlope: 1e38 }), /non-finite voxels/, { rejectNonFinite: true });
  });

  test('errors name the path for files and "<buffer>" for unnamed bytes', async () => {
    const path = join(tmp, 'named.nii');
    writeFileSync(path, new Uint8Array(10));
    await assert.rejects(readNifti(path), new RegExp(`^Error: ${path}: sizeof_hdr is 0`));
    assert.throws(() => readNiftiSync(new Uint8Array(0)), /^Error: <buffer>: file is empty/);
    assert.ok(!existsSync(join(tmp, 'never.nii')));
    await assert.rejects(readNifti(join(tmp, 'never.nii')), /ENOENT.*never\.nii/);
  });
});

describe('writer input validation', () => {
  const ok: NiftiWriteImage = { data: new Float32Array(8), shape: [2, 2, 2], affine: OBLIQUE };
  const bad = (patch: Partial<NiftiWriteImage>, re: RegExp, file = 'out.nii'): void =>
    assert.throws(
      () => writeNiftiSync(join(tmp, file), { ...ok, ...patch }),
      (e: Error) => {
        assert.match(e.message, new RegExp(`out\\.nii(\\.gz)?: .*${re.source}`));
        return true;
      },
    );
  test('shape and data', () => {
    bad({ shape: [] }, /shape must have 1\.\.7 dimensions/);
    bad({ shape: [1, 1, 1, 1, 1, 1, 1, 1] }, /1\.\.7 dimensions, got 8/);
    bad({ shape: [2, 0, 2] }, /must be positive integers/);
    bad({ shape: [65536, 65536] }, /exceeds 2\^31 voxels/);
    bad({ data: new Float32Array(7) }, /data has 7 values, shape \[2,2,2\] needs 8/);
  });
  test('values must fit the datatype (no silent rounding or wrapping)', () => {
    bad(
      { data: [0, 1, 2, 40000, 4, 5, 6, 7], datatype: 'int16' },
      /1 values do not fit int16 \(first at index 3: 40000\)/,
    );
    bad(
      { data: [0, 1.5, 2, 3, 4, 5, 6, 7.25], datatype: 'uint8' },
      /2 values do not fit uint8 \(first at index 1: 1\.5\)/,
    );
    bad({ data: [0, 1, 2, 3, 4, 5, 6, -1], datatype: 'uint32' }, /do not fit uint32/);
    bad({ data: [1e39, 1, 2, 3, 4, 5, 6, 7], datatype: 'float32' }, /do not fit float32/);
  });
  test('affine, scaling, header strings, file name, gzip level', () => {
    bad({ affine: OBLIQUE.map((r, i) => (i === 0 ? [NaN, 0, 0, 0] : r)) }, /affine must be a finite 4x4 matrix/);
    bad(
      {
        affine: [
          [1, 0, 0, 0],
          [0, 1, 0, 0],
          [0, 0, 1, 0],
          [0, 0, 1, 1],
        ],
      },
      /last row must be \[0, 0, 0, 1\]/,
    );
    bad(
      {
        affine: [
          [1, 0, 0, 0],
          [0, 0, 0, 0],
          [0, 0, 1, 0],
          [0, 0, 0, 1],
        ],
      },
      /affine column 1 has zero length/,
    );
    bad(
      {
        affine: [
          [1, 1, 0, 0],
          [0, 0, 0, 0],
          [0, 0, 1, 0],
          [0, 0, 0, 1],
        ],
      },
      /affine is singular/,
    );
    bad({ sclSlope: NaN }, /scl_slope\/scl_inter must be finite/);
    bad({ qformCode: 6 }, /xform code 6 is not one of 0,1,2,3,4,5/);
    bad({ description: 'x'.repeat(81) }, /descrip must be printable ASCII of at most 80 chars/);
    bad({ extraPixdim: [1, 2] }, /2 extraPixdim values for 3 dims/);
    bad({ datatype: 'int64' as NiftiDatatypeName }, /cannot write datatype int64/);
    bad({ gzipLevel: 0 }, /gzipLevel must be 1\.\.9, got 0/, 'out.nii.gz');
    assert.throws(
      () => writeNiftiSync(join(tmp, 'out.img'), ok),
      /out\.img: NIfTI file name must end in \.nii or \.nii\.gz/,
    );
    assert.ok(!readdirSync(tmp).some((f) => f.startsWith('out.') || f.startsWith('.out.')));
  });
});
