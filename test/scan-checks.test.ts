// Scan checks: out-of-domain and damaged scans are flagged against the model's own preset — a real head CT given to
// a chest model, an all-air volume with no voxel size (refused unless --force), a DICOM series with missing slices,
// a CT-RATE v1 file without its intercept, a −8192 or doubled intercept — while a normal synthetic chest raises
// nothing; in `t3d inspect`, `t3d analyze` (text and JSON), `t3d index` and the server's upload answer.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyOverrides, loadConfig } from '../src/train/config.js';
import { ensureCache } from '../src/data/synth-cache.js';
import { loadPreset, type Preset } from '../src/data/presets.js';
import { readScan } from '../src/data/scan.js';
import { inspectScan, type ScanInspection } from '../src/data/scan-checks.js';
import { generateCase } from '../src/data/synth/generate.js';
import { lpsArrayAffine } from '../src/data/synth/dataset.js';
import { synthGeometry, type SynthGeometry } from '../src/data/synth/geometry.js';
import { encodeNifti, writeNiftiSync } from '../src/io/nifti-write.js';
import { writeCtSeries } from '../src/io/dicom/write.js';
import { startServer } from '../src/service/server.js';
import { packageRoot } from '../src/util/paths.js';
import { fixture } from './helpers.js';
import { readInvesalius, skipRealCt } from './real-ct.js';

const tmp = mkdtempSync(join(tmpdir(), 't3d-checks-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const cli = join(packageRoot(), 'dist', 'src', 'app', 'cli.js');
const t3d = (...args: string[]) => {
  const r = spawnSync('node', [cli, ...args], { encoding: 'utf8', env: { ...process.env, T3D_NUM_THREADS: '1' } });
  return { status: r.status, out: r.stdout, err: r.stderr };
};
const tiny = loadPreset(fixture('pretrain', 'tiny-preset.json'));
const codes = (i: { warnings: { code: string }[] }) => i.warnings.map((w) => w.code).sort();

/** A synthetic chest (tiny geometry) as NIfTI: stored = HU − intercept, with the header's own rescale if given. */
function chest(
  name: string,
  o: { index?: number; storage?: 'raw' | 'hu'; offset?: number; sclInter?: number; geometry?: SynthGeometry } = {},
) {
  const c = generateCase(3, o.index ?? 0, o.geometry ?? synthGeometry(tiny), o.storage ?? 'hu');
  const [d, h, w] = c.shape;
  const stored = c.stored.map((v) => v + (o.offset ?? 0));
  const path = join(tmp, `${name}.nii.gz`);
  const affine = lpsArrayAffine(c.shape, c.spacing);
  writeNiftiSync(path, { data: stored, shape: [w, h, d], affine, datatype: 'int16', sclInter: o.sclInter });
  return { path, case: c, affine };
}

async function inspectPath(path: string, preset: Preset, intercept?: number): Promise<ScanInspection> {
  const s = await readScan(path, { intercept });
  try {
    return inspectScan(s, preset);
  } finally {
    s.data.dispose();
  }
}

/** An all-air volume (noise around −1000) stored with pixdim 0 and neither qform nor sform: no size, no orientation. */
function allAir(): string {
  const [w, h, d] = [48, 48, 40];
  const data = new Int16Array(w * h * d).map((_, i) => -1000 + ((i * 7919) % 41) - 20);
  const eye = [0, 1, 2, 3].map((r) => [0, 1, 2, 3].map((c) => (r === c ? 1 : 0)));
  const bytes = encodeNifti({ data, shape: [w, h, d], affine: eye, datatype: 'int16', qformCode: 0, sformCode: 0 });
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  for (let i = 1; i <= 3; i++) view.setFloat32(76 + 4 * i, 0, true); // pixdim[1..3]
  const path = join(tmp, 'all-air.nii');
  writeFileSync(path, bytes);
  return path;
}

/** A synthetic chest as a 40-slice DICOM series, without the slices numbered in `drop` (1-based). */
function series(name: string, drop: number[] = []): string {
  const geometry: SynthGeometry = {
    inPlane: 48,
    fovMm: [340, 360],
    sliceThicknessMm: [7.5, 7.5],
    zExtentMm: [310, 320],
  };
  const c = generateCase(5, 0, geometry, 'raw');
  const [, h, w] = c.shape;
  assert.ok(c.shape[0] >= 40, `${c.shape[0]} slices`);
  const dir = join(tmp, name);
  writeCtSeries(dir, {
    data: c.stored.slice(0, 40 * h * w),
    shape: [w, h, 40],
    affine: lpsArrayAffine([40, h, w], c.spacing),
    rescaleSlope: 1,
    rescaleIntercept: c.rescaleIntercept,
    patientId: name,
  });
  for (const k of drop) rmSync(join(dir, `IM${String(k).padStart(4, '0')}.dcm`));
  return dir;
}

test('a normal synthetic chest raises no warning, as NIfTI or DICOM, against chest presets of any field of view', async () => {
  for (const preset of [tiny, loadPreset('demo-48'), loadPreset('ct-rate-480')])
    for (const index of [0, 1, 2]) {
      const i = await inspectPath(chest(`normal-${index}`, { index }).path, preset);
      assert.deepEqual(i.warnings, [], `${preset.name} case ${index}`);
      assert.equal(i.measures.region, 'chest');
    }
  const dicom = await inspectPath(series('complete'), tiny);
  assert.deepEqual(dicom.warnings, [], 'a complete DICOM series (HU through its rescale)');
});

test('a CT-RATE v1 file stored without its intercept: a warning naming --intercept -1024, gone once it is given', async () => {
  const { path } = chest('v1', { storage: 'raw' });
  const i = await inspectPath(path, tiny);
  assert.ok(i.measures.min >= 0);
  assert.deepEqual(codes(i), ['no-intercept']);
  const w = i.warnings[0]!;
  assert.equal(w.severity, 'warn');
  assert.match(w.message, /stored without their intercept, all ≥ 0 as in CT-RATE v1 files.*pass --intercept -1024/);
  assert.deepEqual(w.fix, { option: 'intercept', value: -1024 });
  assert.deepEqual((await inspectPath(path, tiny, -1024)).warnings, []);
});

test('a −8192 intercept applied to HU (as CT-RATE v2 headers list) is named and refused; a doubled one is named', async () => {
  const minus8192 = chest('minus-8192', { sclInter: -8192 }).path;
  const i = await inspectPath(minus8192, tiny);
  assert.deepEqual(codes(i), ['intercept-8192', 'window-empty']);
  const w = i.warnings.find((x) => x.code === 'intercept-8192')!;
  assert.match(w.message, /an intercept of −8192.*the file's own rescale intercept is -8192.*pass --intercept 8192/);
  assert.deepEqual(w.fix, { option: 'intercept', value: 8192 });
  assert.equal(i.warnings.find((x) => x.code === 'window-empty')!.severity, 'refuse');
  assert.deepEqual((await inspectPath(minus8192, tiny, 8192)).warnings, []);
  const doubled = await inspectPath(chest('doubled', { offset: -1024 }).path, tiny);
  assert.deepEqual(codes(doubled), ['double-rescale']);
  assert.deepEqual(doubled.warnings[0]!.fix, { option: 'intercept', value: 1024 });
});

test("a scan far longer than the preset's field of view, or on an unknown value scale, is named as such", async () => {
  const short = { ...tiny, name: 'tiny-short', shape: [6, 32, 32] as [number, number, number] }; // 120 mm of z
  const { path } = chest('long');
  const long = await inspectPath(path, short);
  assert.deepEqual(codes(long), ['long-extent']);
  assert.match(long.warnings[0]!.message, /only the central 120 mm are kept; crop the scan to chest first/);
  // a preset that resizes the whole scan onto its input (M3D-CLIP's) keeps all of it, whatever its extent
  assert.deepEqual(codes(await inspectPath(path, { ...short, geometry: 'resize' })), []);
  const shifted = await inspectPath(chest('shifted', { offset: 500 }).path, tiny);
  assert.deepEqual(codes(shifted), ['hu-range']);
});

test('an all-air volume with zero spacing and no orientation is refused; a constant one too', async () => {
  const i = await inspectPath(allAir(), tiny);
  assert.deepEqual(codes(i), ['all-air', 'no-orientation', 'no-spacing']);
  assert.deepEqual(
    i.warnings.filter((w) => w.severity === 'refuse').map((w) => w.code),
    ['no-spacing', 'all-air'],
  );
  assert.match(i.warnings.find((w) => w.code === 'no-spacing')!.message, /along x, y, z is not stated \(pixdim 0\)/);
  const flat = join(tmp, 'constant.nii.gz');
  writeNiftiSync(flat, {
    data: new Int16Array(32 * 32 * 32),
    shape: [32, 32, 32],
    affine: lpsArrayAffine([32, 32, 32], [1, 1, 1]),
  });
  assert.deepEqual(codes(await inspectPath(flat, tiny)), ['constant']);
});

test('a DICOM series missing 3 of its 40 slices: a slice-gap warning that counts them', async () => {
  const i = await inspectPath(series('gaps', [11, 21, 31]), tiny);
  assert.deepEqual(codes(i), ['slice-gap']);
  assert.match(
    i.warnings[0]!.message,
    /^3 irregular step\(s\) between slices, about 3 missing slice\(s\) \(up to 15\.00 mm/,
  );
});

test(
  'the real head CT: preprocessing is the same from any storage order, anatomy lands in LPS, and a chest model is warned',
  { skip: skipRealCt },
  async () => {
    const ct = readInvesalius();
    const [D, H, W] = ct.shape;
    assert.deepEqual(
      [ct.shape, ct.spacing.map((s) => +s.toFixed(3))],
      [
        [108, 256, 256],
        [0.957, 0.957, 1.5],
      ],
    );
    const lps = join(tmp, 'head.nii.gz');
    writeNiftiSync(lps, { data: ct.data, shape: [W, H, D], affine: ct.affine, datatype: 'int16' });
    // the same volume stored with columns and rows reversed (RAS order), the affine saying so
    const ras = new Int16Array(ct.data.length);
    for (let k = 0; k < D; k++)
      for (let j = 0; j < H; j++)
        for (let i = 0; i < W; i++) ras[(k * H + j) * W + i] = ct.data[(k * H + H - 1 - j) * W + (W - 1 - i)]!;
    const A = ct.affine.map((r) => r.slice());
    for (let r = 0; r < 3; r++) {
      A[r]![3] = A[r]![3]! + A[r]![0]! * (W - 1) + A[r]![1]! * (H - 1);
      A[r]![0] = -A[r]![0]!;
      A[r]![1] = -A[r]![1]!;
    }
    const rasPath = join(tmp, 'head-ras.nii.gz');
    writeNiftiSync(rasPath, { data: ras, shape: [W, H, D], affine: A, datatype: 'int16' });
    const { inputTransform } = await import('../src/data/input-transform.js');
    const preset = loadPreset('cpu-96');
    const grid = async (path: string) => {
      const s = await readScan(path);
      const g = inputTransform(preset).toCacheGrid(s, path);
      s.data.dispose();
      const v = g.data.toTypedArray() as Int16Array;
      g.data.dispose();
      return v;
    };
    const a = await grid(lps);
    assert.deepEqual(await grid(rasPath), a, 'RAS and LPS storage preprocess to the same grid');
    const dicom = join(tmp, 'head-dicom');
    const series = { data: ct.data, shape: [W, H, D] as [number, number, number], affine: ct.affine };
    writeCtSeries(dicom, { ...series, rescaleSlope: 1, rescaleIntercept: 0, patientId: 'head' });
    assert.deepEqual(await grid(dicom), a, 'the DICOM series written from it preprocesses to the same grid');
    // in the LPS grid slices run to the head's top: its cross-section shrinks towards the vertex; rows run to the
    // back: the air of the sinuses and nose lies in front of the body's centre
    const [gD, gH, gW] = preset.shape;
    const area = (k: number) => a.subarray(k * gH * gW, (k + 1) * gH * gW).filter((v) => v > -500).length;
    const withBody = [...Array(gD).keys()].filter((k) => area(k) > 50);
    assert.ok(area(withBody.at(-1)!) < 0.5 * Math.max(...withBody.map(area)), 'the vertex is at the top');
    let bodyRow = 0,
      bodyN = 0,
      airRow = 0,
      airN = 0;
    for (const k of withBody.slice(0, Math.ceil(withBody.length / 3)))
      for (let j = 1; j < gH - 1; j++)
        for (let i = 1; i < gW - 1; i++) {
          const v = a[(k * gH + j) * gW + i]!;
          const enclosed = v < -500 && a[(k * gH + j) * gW + i - 3]! > -500 && a[(k * gH + j) * gW + i + 3]! > -500;
          if (v > -500) ((bodyRow += j), bodyN++);
          if (enclosed) ((airRow += j), airN++);
        }
    assert.ok(airN > 0 && airRow / airN < bodyRow / bodyN, 'the sinuses lie anterior (lower rows in LPS)');
    // the checks: a head, too short for a chest model's field of view; an oblique copy is flagged as such
    const i = await inspectPath(lps, loadPreset('ct-rate-480'));
    assert.equal(i.measures.region, 'head');
    assert.deepEqual(codes(i), ['region', 'short-extent']);
    assert.match(i.warnings.find((w) => w.code === 'region')!.message, /looks like a head CT.*trained on chest CT/);
    assert.deepEqual(codes(await inspectPath(rasPath, tiny)), ['region', 'short-extent']);
    assert.deepEqual(codes(await inspectPath(dicom, tiny)), ['region', 'short-extent']);
    const tilt = (20 * Math.PI) / 180;
    const R = [
      [1, 0, 0],
      [0, Math.cos(tilt), -Math.sin(tilt)],
      [0, Math.sin(tilt), Math.cos(tilt)],
    ];
    const oblique = ct.affine.map((row, r) =>
      r < 3 ? [0, 1, 2].map((c) => R[r]!.reduce((s, x, m) => s + x * ct.affine[m]![c]!, 0)).concat(row[3]!) : row,
    );
    const obliquePath = join(tmp, 'head-oblique.nii.gz');
    writeNiftiSync(obliquePath, { data: ct.data, shape: [W, H, D], affine: oblique, datatype: 'int16' });
    const o = await inspectPath(obliquePath, tiny);
    assert.ok(codes(o).includes('oblique') && Math.abs(o.geometry.obliquityDeg - 20) < 0.01, codes(o).join());
  },
);

// ---- the commands, with a tiny trained checkpoint ----
const cache = join(tmp, 'cache');
const run = join(tmp, 'run');
const db = join(tmp, 'db');

test('setup: a tiny cache and checkpoint', async () => {
  const overrides = [`data.cache=${cache}`, `data.preset=${fixture('pretrain', 'tiny-preset.json')}`];
  await ensureCache(applyOverrides(loadConfig(fixture('pretrain', 'tiny.json')), overrides));
  const r = t3d(
    'pretrain',
    '--config',
    fixture('pretrain', 'tiny.json'),
    ...overrides.flatMap((s) => ['--set', s]),
    '--steps',
    '3',
    '--out',
    run,
  );
  assert.equal(r.status, 0, r.err);
});

test("`t3d inspect` prints the checks against a checkpoint's preset; a refused scan exits 1", () => {
  const ok = t3d('inspect', chest('cli-normal').path, '--checkpoint', run, '--json');
  assert.equal(ok.status, 0, ok.err);
  const j = JSON.parse(ok.out) as ScanInspection;
  assert.equal(j.preset, 'tiny');
  assert.deepEqual(j.warnings, []);
  const air = t3d('inspect', allAir(), '--preset', fixture('pretrain', 'tiny-preset.json'));
  assert.equal(air.status, 1);
  assert.match(air.out, /REFUSED \[no-spacing\][\s\S]*warning \[no-orientation\][\s\S]*REFUSED \[all-air\]/);
  assert.match(air.err, /all-air\.nii: refused: \[no-spacing\] .*; \[all-air\] .*--force analyses it anyway/);
  const noModel = t3d('inspect', allAir());
  assert.equal(noModel.status, 1);
  assert.match(noModel.err, /give the model: --checkpoint <run> or --preset <name>/);
});

test(
  '`t3d analyze`: warnings in the table and the JSON; a refused scan exits 1 unless --force',
  { timeout: 300_000 },
  () => {
    const normal = t3d('analyze', chest('an-normal').path, '--checkpoint', run, '--json');
    assert.equal(normal.status, 0, normal.err);
    assert.deepEqual((JSON.parse(normal.out) as { warnings: unknown[] }).warnings, []);
    const v1 = t3d('analyze', chest('an-v1', { storage: 'raw' }).path, '--checkpoint', run);
    assert.equal(v1.status, 0, v1.err);
    assert.match(v1.out, /warning \[no-intercept\] .*pass --intercept -1024/);
    const air = allAir();
    const refused = t3d('analyze', air, '--checkpoint', run);
    assert.equal(refused.status, 1);
    assert.match(refused.err, /all-air\.nii: refused: \[no-spacing\].*\[all-air\].*--force analyses it anyway/);
    assert.equal(refused.out, '', 'no findings printed for a refused scan');
    const forced = t3d('analyze', air, '--checkpoint', run, '--force', '--json');
    assert.equal(forced.status, 0, forced.err);
    const f = JSON.parse(forced.out) as { warnings: { code: string; severity: string }[]; findings: unknown[] };
    assert.deepEqual(codes(f), ['all-air', 'no-orientation', 'no-spacing']);
    assert.ok(f.findings.length > 0);
    const gaps = t3d('analyze', series('an-gaps', [5, 15, 25]), '--checkpoint', run, '--json', '--intercept', '0');
    assert.equal(gaps.status, 0, gaps.err);
    assert.deepEqual(codes(JSON.parse(gaps.out) as { warnings: { code: string }[] }), ['slice-gap']);
  },
);

test(
  '`t3d analyze` on the real head CT with a chest checkpoint warns that it is out of domain',
  { skip: skipRealCt, timeout: 300_000 },
  () => {
    const ct = readInvesalius();
    const [D, H, W] = ct.shape;
    const path = join(tmp, 'head-analyze.nii.gz');
    writeNiftiSync(path, { data: ct.data, shape: [W, H, D], affine: ct.affine, datatype: 'int16' });
    const r = t3d('analyze', path, '--checkpoint', run, '--json');
    assert.equal(r.status, 0, r.err);
    const a = JSON.parse(r.out) as { warnings: { code: string; message: string }[] };
    assert.deepEqual(codes(a), ['region', 'short-extent']);
  },
);

test(
  '`t3d index --scans`: warnings recorded per scan, refused scans quarantined and counted',
  { timeout: 300_000 },
  () => {
    const scans = join(tmp, 'scans');
    mkdirSync(scans);
    writeFileSync(join(scans, 'normal.nii.gz'), readFileSync(chest('ix-normal').path));
    writeFileSync(join(scans, 'v1.nii.gz'), readFileSync(chest('ix-v1', { storage: 'raw' }).path));
    writeFileSync(join(scans, 'air.nii'), readFileSync(allAir()));
    const r = t3d('index', '--checkpoint', run, '--scans', scans, '--db', db);
    assert.equal(r.status, 0, r.err);
    assert.match(
      r.out,
      /2 added \(1 with warnings: .*scan-warnings\.jsonl\), 1 quarantined \(1 refused by the scan checks/,
    );
    assert.match(r.err, /index: v1\.nii\.gz: warning \[no-intercept\]/);
    const listed = readFileSync(join(db, 'scan-warnings.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { id: string; warnings: { code: string }[] });
    assert.deepEqual(
      listed.map((l) => [l.id, codes(l)]),
      [['v1.nii.gz', ['no-intercept']]],
    );
    const q = readFileSync(join(db, 'quarantine.jsonl'), 'utf8');
    assert.match(q, /"id":"air\.nii".*refused: \[no-spacing\]/);
    const forced = t3d('index', '--checkpoint', run, '--scans', scans, '--db', db, '--force');
    assert.match(forced.out, /1 added/, forced.err);
  },
);

test(
  "the server's upload answer carries the warnings; a refused upload answers 422 with them, ?force=1 analyses it",
  { timeout: 300_000 },
  async () => {
    const server = await startServer({ checkpoint: run, db: join(tmp, 'serve-db'), port: 0, log: () => {} });
    try {
      const post = async (body: RequestInit['body'], query = '') => {
        const r = await fetch(`${server.url}/api/upload${query}`, { method: 'POST', body });
        return { status: r.status, body: (await r.json()) as { warnings?: { code: string }[]; error?: string } };
      };
      const v1 = readFileSync(chest('up-v1', { storage: 'raw' }).path);
      const warned = await post(v1);
      assert.equal(warned.status, 200, warned.body.error);
      assert.deepEqual(codes({ warnings: warned.body.warnings! }), ['no-intercept']);
      assert.deepEqual((await post(v1, '?intercept=-1024')).body.warnings, [], 'the fix the warning names, applied');
      const air = readFileSync(allAir());
      const refused = await post(air);
      assert.equal(refused.status, 422);
      assert.match(refused.body.error!, /refused/);
      assert.deepEqual(codes({ warnings: refused.body.warnings! }), ['all-air', 'no-orientation', 'no-spacing']);
      assert.equal((await post(air, '?force=1')).status, 200);
      assert.equal((await post(v1, '?intercept=abc')).status, 400);
    } finally {
      await server.close();
    }
  },
);
