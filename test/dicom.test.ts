// DICOM series → volume against references made by pydicom + numpy (test/fixtures/dicom, written by
// scripts/fixtures/make_dicom_fixtures.py); CI only reads the committed files.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  writeFileSync,
  rmSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  DicomError,
  convertDicomToNifti,
  readDicomSeries,
  readDicomVolume,
  scanDicomSeries,
  type DicomVolume,
} from '../src/io/dicom.js';
import { parseDicom } from '../src/io/dicom/parse.js';
import { decodeSlice, pixelFormat } from '../src/io/dicom/pixels.js';
import { readNifti } from '../src/io/nifti.js';
import { runConvert } from '../src/app/convert.js';

const FIX = fileURLToPath(new URL('../../test/fixtures/dicom/', import.meta.url));
const fix = (...p: string[]): string => join(FIX, ...p);
interface Expected {
  seriesInstanceUID: string;
  modality: string;
  description: string;
  shape: number[];
  dtype: 'int16' | 'float32';
  spacing: number[];
  affine: number[][];
  sortedFiles: string[];
  values: number[];
  gaps: { index: number; distance: number; expected: number }[];
}
const EXPECTED = JSON.parse(readFileSync(fix('expected.json'), 'utf8')) as Record<string, Expected> & {
  syntaxUIDs: Record<string, string>;
};
const tmp = mkdtempSync(join(tmpdir(), 't3d-dicom-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function assertVolume(v: DicomVolume, e: Expected, what: string): void {
  assert.deepEqual(v.shape, e.shape, `${what}: shape`);
  assert.equal(v.data instanceof Int16Array ? 'int16' : 'float32', e.dtype, `${what}: dtype`);
  assert.equal(v.data.length, e.values.length, `${what}: length`);
  // Exact: float32 references were rounded to float32 by numpy, as we do.
  const bad = e.values.findIndex((x, i) => v.data[i] !== x);
  assert.equal(bad, -1, `${what}: value ${bad} is ${v.data[bad]}, expected ${e.values[bad]}`);
  assertClose(v.affine.flat(), e.affine.flat(), 1e-9, `${what}: affine`);
  assertClose(v.spacing, e.spacing, 1e-9, `${what}: spacing`);
  assert.deepEqual(
    v.files.map((f) => f.split(/[\\/]/).pop()),
    e.sortedFiles,
    `${what}: slice order`,
  );
  assert.equal(v.seriesInstanceUID, e.seriesInstanceUID);
  assert.equal(v.modality, e.modality);
  assert.equal(v.description, e.description);
}

function assertClose(a: number[], b: number[], tol: number, what: string): void {
  assert.equal(a.length, b.length, what);
  a.forEach((x, i) => assert.ok(Math.abs(x - b[i]!) <= tol, `${what}[${i}]: ${x} vs ${b[i]}`));
}

async function rejects(input: string | string[], pattern: RegExp, opts = {}): Promise<DicomError> {
  let caught: unknown;
  await readDicomVolume(input, opts).catch((e: unknown) => {
    caught = e;
  });
  assert.ok(caught instanceof DicomError, `expected a DicomError, got ${String(caught)}`);
  assert.match(caught.message, pattern);
  return caught;
}

for (const [name, uid] of Object.entries(EXPECTED.syntaxUIDs)) {
  test(`transfer syntax ${name} (${uid}) decodes to the reference values`, async () => {
    assertVolume(await readDicomVolume(fix('syntax', name)), EXPECTED['syntax']!, name);
  });
}

test('slices are sorted by position along the normal, whatever the file order and InstanceNumber', async () => {
  const e = EXPECTED['syntax']!;
  const files = readdirSync(fix('syntax', 'explicit-le'))
    .sort()
    .reverse()
    .map((f) => fix('syntax', 'explicit-le', f));
  assert.notDeepEqual(
    files.map((f) => f.split('/').pop()),
    e.sortedFiles,
  );
  assertVolume(await readDicomVolume(files), e, 'file list');
});

test('oblique series: affine (RAS), spacing, origin and direction', async () => {
  const v = await readDicomVolume(fix('oblique'));
  assertVolume(v, EXPECTED['oblique']!, 'oblique');
  assert.ok(v.data instanceof Int16Array, '12-bit unsigned with intercept -1024 is exact in int16');
  const a = EXPECTED['oblique']!.affine;
  assertClose(v.origin, [a[0]![3]!, a[1]![3]!, a[2]![3]!], 1e-9, 'origin');
  for (let c = 0; c < 3; c++) {
    const col = v.direction.map((r) => r[c]!);
    assertClose([Math.hypot(...col)], [1], 1e-12, `direction column ${c} is a unit vector`);
    assertClose(
      col.map((x) => x * v.spacing[c]!),
      a.slice(0, 3).map((r) => r[c]!),
      1e-9,
      `direction ${c} x spacing`,
    );
  }
  assert.deepEqual(v.gaps, []);
  assert.deepEqual(v.warnings, []);
});

test('a non-integer slope and per-slice intercepts give float32 HU', async () => {
  assertVolume(await readDicomVolume(fix('float-rescale')), EXPECTED['float-rescale']!, 'native');
  // GDCM rescales a whole call with one slope/intercept: the JPEG path must group slices by rescale.
  const v = await readDicomVolume(fix('float-rescale-jpeg-ls'));
  assertVolume(v, EXPECTED['float-rescale']!, 'jpeg-ls');
});

test('signed values narrower than BitsAllocated are sign-extended from BitsStored', async () => {
  assertVolume(await readDicomVolume(fix('signed12')), EXPECTED['signed12']!, 'signed12');
});

test('a dataset without preamble and file meta (implicit VR) is read', async () => {
  const v = await readDicomVolume(fix('raw-implicit', 'raw.dcm'));
  assertVolume(v, EXPECTED['raw-implicit']!, 'raw');
  assert.match(v.warnings.join('\n'), /single slice.*SliceThickness/);
});

test('two series in one folder become two volumes; asking for one names both', async () => {
  const vols = await readDicomSeries(fix('two-series'));
  assert.deepEqual(
    vols.map((v) => v.description),
    ['first', 'second'],
  );
  for (const v of vols) assertVolume(v, EXPECTED[`two-series/${v.description}`]!, v.description!);
  const err = await rejects(fix('two-series'), /found 2 series, expected one/);
  assert.match(err.message, new RegExp(EXPECTED['two-series/first']!.seriesInstanceUID.replace(/\./g, '\\.')));
  const second = EXPECTED['two-series/second']!;
  assertVolume(
    await readDicomVolume(fix('two-series'), { seriesInstanceUID: second.seriesInstanceUID }),
    second,
    'chosen',
  );
  await rejects(fix('two-series'), /no series 1\.2\.3; found series/, { seriesInstanceUID: '1.2.3' });
});

test('a missing slice is reported as a gap, or rejected on request', async () => {
  const e = EXPECTED['gap']!;
  const v = await readDicomVolume(fix('gap'));
  assertVolume(v, e, 'gap');
  assert.equal(v.gaps.length, 1);
  assert.equal(v.gaps[0]!.index, e.gaps[0]!.index);
  assertClose([v.gaps[0]!.distance, v.gaps[0]!.expected], [e.gaps[0]!.distance, e.gaps[0]!.expected], 1e-9, 'gap');
  assert.match(
    v.warnings.join('\n'),
    /uneven slice spacing, 5 mm between sorted slices 2 .* expected 2\.5 mm \(about 1 missing slice\)/,
  );
  const err = await rejects(fix('gap'), /uneven slice spacing.*rejected/, { rejectGaps: true });
  assert.equal(err.path, fix('gap'));
});

test('modality option rejects other modalities by name', async () => {
  await rejects(fix('mr'), /series .* "t1" \(3 files, first .*\) has modality MR, expected CT/, { modality: 'CT' });
  assert.equal((await readDicomVolume(fix('mr'), { modality: 'mr' })).modality, 'MR');
});

test('file errors name the file and the reason', async () => {
  const e = (p: string): string => fix('errors', p);
  await rejects(e('not-dicom.txt'), /not-dicom\.txt: not a DICOM file \(no 'DICM' marker/);
  await rejects(
    e('truncated-pixels.dcm'),
    /truncated-pixels\.dcm: truncated: value of \(7FE0,0010\) at offset \d+ needs 128 bytes, 88 remain/,
  );
  await rejects(e('truncated-header.dcm'), /truncated-header\.dcm: truncated: element header/);
  await rejects(e('no-pixels.dcm'), /no-pixels\.dcm: no pixel data \(7FE0,0010\)/);
  await rejects(
    e('mpeg2.dcm'),
    /mpeg2\.dcm: unsupported transfer syntax 1\.2\.840\.10008\.1\.2\.4\.100 \(MPEG2 Main Profile video\)/,
  );
  await rejects(join(tmp, 'nowhere'), /nowhere: cannot read: no such file or folder/);
  const err = await rejects([fix('oblique')], /oblique: cannot read: is a folder, not a file/);
  assert.equal(err.kind, 'unreadable');
});

test('a corrupt JPEG-LS stream is an error naming its file', async () => {
  const dir = join(tmp, 'corrupt-jls');
  mkdirSync(dir);
  const names = readdirSync(fix('syntax', 'jpeg-ls'));
  for (const f of names) copyFileSync(fix('syntax', 'jpeg-ls', f), join(dir, f));
  const victim = join(dir, names[2]!);
  const bytes = readFileSync(victim);
  for (let i = bytes.length - 300; i < bytes.length - 20; i++) bytes[i] = i % 2 ? 0xff : 0;
  writeFileSync(victim, bytes);
  const err = await rejects(dir, /could not decode the compressed pixel data/);
  assert.equal(err.path, victim);
  assert.equal(process.exitCode, undefined, 'the WebAssembly runtime must not leave an exit code behind');
});

test('series errors name the offending file and its reference', async () => {
  await rejects(
    fix('errors', 'inconsistent-orientation'),
    /1\.dcm: orientation \[1, 0, 0, 0, 0\.8, -0\.6\] differs from \[1, 0, 0, 0, 1, 0\] of .*0\.dcm/,
  );
  await rejects(
    fix('errors', 'inconsistent-size'),
    /2\.dcm: 16x4 pixels \(columns x rows\) differ from 8x8 of .*0\.dcm/,
  );
  await rejects(fix('errors', 'duplicate-position'), /2\.dcm: .*same position as .*1\.dcm/);
});

test('folders: empty is an error, non-images are skipped with a warning, no images at all is an error', async () => {
  const empty = join(tmp, 'empty');
  mkdirSync(join(empty, 'sub'), { recursive: true });
  await rejects(empty, /empty: empty folder/);
  const junk = join(tmp, 'junk');
  mkdirSync(junk);
  copyFileSync(fix('errors', 'not-dicom.txt'), join(junk, 'README'));
  copyFileSync(fix('errors', 'no-pixels.dcm'), join(junk, 'DICOMDIR'));
  await rejects(junk, /junk: no DICOM images among 2 files: .*DICOMDIR: no pixel data.*README: not a DICOM file/);
  const nested = join(junk, 'series', 'deeper');
  mkdirSync(nested, { recursive: true });
  for (const f of readdirSync(fix('oblique'))) copyFileSync(fix('oblique', f), join(nested, f));
  const v = await readDicomVolume(junk);
  assertVolume(v, EXPECTED['oblique']!, 'nested');
  assert.match(v.warnings[0]!, /skipped 2 files that hold no DICOM image/);
  // In an explicit file list, a non-image is an error.
  await rejects([join(junk, 'README'), ...v.files], /README: not a DICOM file/);
});

test(
  'an unreadable file is an error naming it',
  { skip: process.getuid?.() === 0 ? 'root reads files whatever their mode' : false },
  async () => {
    const f = join(tmp, 'locked.dcm');
    copyFileSync(fix('oblique', EXPECTED['oblique']!.sortedFiles[0]!), f);
    chmodSync(f, 0);
    await rejects(f, /locked\.dcm: cannot read: permission denied/);
  },
);

test('scanning checks every series without decoding pixels', async () => {
  const series = await scanDicomSeries(fix('two-series'));
  assert.deepEqual(
    series.map((s) => [s.description, s.shape]),
    [
      ['first', [6, 6, 3]],
      ['second', [6, 6, 3]],
    ],
  );
});

test('damaged files never read out of bounds: every truncation and random corruption fails cleanly', () => {
  let seed = 12345;
  const rand = (n: number): number => (seed = (seed * 1103515245 + 12345) >>> 0) % n;
  for (const name of ['explicit-le', 'implicit-le', 'explicit-be', 'deflated-le', 'rle']) {
    const dir = fix('syntax', name);
    const file = readFileSync(join(dir, readdirSync(dir)[0]!));
    const attempt = (bytes: Uint8Array, what: string): void => {
      try {
        const p = parseDicom(bytes, what);
        const f = pixelFormat(p.header);
        if (p.pixels && typeof f !== 'string' && f.rows * f.columns <= 1 << 20)
          decodeSlice(p, f, new Float32Array(f.rows * f.columns), 0);
      } catch (e) {
        assert.ok(!(e instanceof RangeError || e instanceof TypeError), `${what}: ${(e as Error).stack}`);
      }
    };
    for (let n = 0; n < file.length; n++) attempt(file.subarray(0, n), `${name} cut at ${n}`);
    for (let t = 0; t < 300; t++) {
      const bad = Uint8Array.from(file);
      for (let k = 0; k < 4; k++) bad[rand(bad.length)] = rand(256);
      attempt(bad, `${name} corruption ${t}`);
    }
  }
});

test('convertDicomToNifti writes one file per series, readable with the same values and affine', async () => {
  const one = await convertDicomToNifti(fix('oblique'), join(tmp, 'oblique.nii.gz'));
  assert.deepEqual(
    one.map((w) => [w.path, w.dtype]),
    [[join(tmp, 'oblique.nii.gz'), 'int16']],
  );
  const img = await readNifti(join(tmp, 'oblique.nii.gz'));
  const e = EXPECTED['oblique']!;
  assert.deepEqual(img.shape, e.shape);
  assert.equal(img.datatype, 'int16');
  assert.deepEqual(Array.from(img.data), e.values);
  assertClose(img.affine.flat(), e.affine.flat(), 1e-5, 'sform (float32 in NIfTI-1)');
  const two = await convertDicomToNifti(fix('two-series'), join(tmp, 'two.nii'));
  assert.deepEqual(
    two.map((w) => w.path),
    [join(tmp, 'two_1.nii'), join(tmp, 'two_2.nii')],
  );
  const second = await readNifti(join(tmp, 'two_2.nii'));
  assert.deepEqual(Array.from(second.data), EXPECTED['two-series/second']!.values);
  await assert.rejects(
    convertDicomToNifti(fix('oblique'), join(tmp, 'x.nrrd')),
    /x\.nrrd: output name must end in \.nii or \.nii\.gz/,
  );
});

test('t3d convert: arguments, output lines, and --allow-gaps', async () => {
  const lines: string[] = [];
  const log = console.log;
  console.log = (s: string) => {
    lines.push(s);
  };
  try {
    await runConvert([fix('float-rescale'), join(tmp, 'f.nii.gz'), '--modality', 'CT']);
    await assert.rejects(runConvert([fix('gap'), join(tmp, 'gap.nii.gz')]), /uneven slice spacing/);
    await runConvert([fix('gap'), join(tmp, 'gap.nii.gz'), '--allow-gaps']);
    await assert.rejects(
      runConvert([fix('mr'), join(tmp, 'mr.nii.gz'), '--modality', 'CT']),
      /has modality MR, expected CT/,
    );
    await assert.rejects(runConvert(['--allow-gaps']), /convert needs an input and an output/);
    await assert.rejects(runConvert([fix('gap'), join(tmp, 'g.nii.gz'), '--bogus']), /unknown option '--bogus'/);
  } finally {
    console.log = log;
  }
  assert.match(lines[0]!, /^wrote .*f\.nii\.gz: 8 x 8 x 3 float32, 0\.8 x 0\.7 x 5 mm, CT series .* "float rescale"$/);
  assert.match(lines[1]!, /^wrote .*gap\.nii\.gz: 6 x 6 x 5 int16/);
  assert.match(lines[2]!, /warning: .*about 1 missing slice/);
});
