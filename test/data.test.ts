// The data path end to end: synthetic dataset → preprocessing cache (with quarantine) → loader.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  symlinkSync,
  writeFileSync,
  rmSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { readNifti, readNiftiSync } from '../src/io/nifti.js';
import { encodeNifti } from '../src/io/nifti-write.js';
import { loadPreset } from '../src/data/presets.js';
import { writeSynthDataset } from '../src/data/synth/dataset.js';
import { generateCase } from '../src/data/synth/generate.js';
import { renderFinding, type Finding } from '../src/data/synth/findings.js';
import { CT_RATE_LABELS as LABELS } from '../src/domain/ct-rate.js';
import { synthGeometry } from '../src/data/synth/geometry.js';
import { Grid, addNoise, smooth } from '../src/data/synth/raster.js';
import { LUNGS, paintAnatomy, sampleBody } from '../src/data/synth/anatomy.js';
import { Rng } from '../src/util/rng.js';
import { readSource } from '../src/data/sources.js';
import { buildCache, readCacheIndex } from '../src/data/cache.js';
import { Loader } from '../src/data/loader.js';
import { csvRows } from '../src/text/csv.js';
import { readDicomVolume } from '../src/io/dicom.js';
import { sourceNifti } from '../src/service/volumes.js';

const tmp = mkdtempSync(join(tmpdir(), 't3d-data-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const preset = loadPreset('cpu-96');
const synthDir = join(tmp, 'synth');
const cacheDir = join(tmp, 'cache');

// A word for each label that any sentence mentioning it contains.
const KEYWORD: Record<string, RegExp> = {
  'Medical material': /wires|pacemaker|port catheter|foreign material/i,
  'Arterial wall calcification': /aort/i,
  Cardiomegaly: /heart|cardiomegaly|cardiothoracic/i,
  'Pericardial effusion': /pericardial/i,
  'Coronary artery wall calcification': /coronary/i,
  'Hiatal hernia': /hiatal/i,
  Lymphadenopathy: /lymph/i,
  Emphysema: /emphysema/i,
  Atelectasis: /atelectasis/i,
  'Lung nodule': /nodul/i,
  'Lung opacity': /ground[- ]glass|infiltrative/i,
  'Pulmonary fibrotic sequela': /fibrotic/i,
  'Pleural effusion': /pleural/i,
  'Mosaic attenuation pattern': /mosaic/i,
  'Peribronchial thickening': /peribronchial/i,
  Consolidation: /consolidat/i,
  Bronchiectasis: /bronchiecta/i,
  'Interlobular septal thickening': /septal/i,
};
const NEGATION = /\bno\b|\bnormal\b|without|within normal/i;

test('synthetic cases are deterministic in (seed, index) and labels agree with the report text', () => {
  const a = generateCase(5, 3, synthGeometry(preset));
  const b = generateCase(5, 3, synthGeometry(preset));
  assert.deepEqual(a.stored.subarray(0, 5000), b.stored.subarray(0, 5000));
  assert.equal(a.report.findings, b.report.findings);
  assert.notEqual(generateCase(5, 4, synthGeometry(preset)).report.findings, a.report.findings);
  let positives = 0;
  for (let i = 0; i < 25; i++) {
    const c = generateCase(11, i, synthGeometry(preset));
    const sentences = c.report.findings.split(/(?<=\.)\s+/);
    LABELS.forEach((label, k) => {
      const mentions = sentences.filter((s) => KEYWORD[label]!.test(s));
      if (c.labels[k]) {
        positives += 1;
        assert.ok(
          mentions.some((s) => !NEGATION.test(s) || label === 'Cardiomegaly'),
          `case ${i}: ${label} is positive but not described: ${c.report.findings}`,
        );
      } else if (label !== 'Cardiomegaly' && label !== 'Arterial wall calcification') {
        // (the heart and aorta are named in other sentences too)
        for (const s of mentions)
          assert.match(s, NEGATION, `case ${i}: ${label} is negative but the report says "${s}"`);
      }
    });
  }
  assert.ok(positives > 25, 'findings occur');
});

// The fine-scale findings of the multi-resolution benchmark: lung-only blocks of a 1.3 × 1.3 × 2 mm phantom, averaged
// over 1 (thin) or 3 × 3 × 2 voxels (≈ the 3.75 × 3.75 × 5 mm global view). Thick voxels average centrilobular holes
// into the surrounding lung, as thick slices do in real CT (low-attenuation area below −950 HU falls with thickness).
function lungFractions(
  finding: Finding | undefined,
  block: [number, number, number],
): { below950: number; above700: number } {
  const rng = new Rng(3, 0);
  const g = new Grid([120, 288, 288], [1.3, 1.3, 2]);
  const body = sampleBody(rng, 120 * 2 * 0.98);
  paintAnatomy(g, body, rng);
  if (finding) renderFinding(g, body, finding, rng);
  smooth(g, 1);
  addNoise(g, rng, 14);
  const [d, h, w] = g.shape,
    [bz, by, bx] = block;
  let lung = 0,
    low = 0,
    high = 0;
  for (let k = 0; k + bz <= d; k += bz)
    for (let j = 0; j + by <= h; j += by)
      for (let i = 0; i + bx <= w; i += bx) {
        let sum = 0,
          inLung = true;
        for (let a = 0; a < bz; a++)
          for (let b = 0; b < by; b++)
            for (let c = 0; c < bx; c++) {
              const idx = ((k + a) * h + j + b) * w + i + c;
              inLung &&= LUNGS.has(g.label[idx]!);
              sum += g.hu[idx]!;
            }
        if (!inLung) continue;
        lung += 1;
        if (sum / (bz * by * bx) < -950) low += 1;
        if (sum / (bz * by * bx) > -700) high += 1;
      }
  return { below950: low / lung, above700: high / lung };
}

test("fine-scale findings: emphysema's holes show at thin voxels and mostly vanish at the global view's; septal lines add dense lung", () => {
  const thin: [number, number, number] = [1, 1, 1],
    thick: [number, number, number] = [2, 3, 3];
  const normal = lungFractions(undefined, thin);
  assert.equal(normal.below950, 0, 'normal lung never reaches −950 HU');
  assert.equal(lungFractions(undefined, thick).below950, 0);
  const emphysema: Finding = { label: 'Emphysema', severity: 'mild' };
  const [fine, coarse] = [lungFractions(emphysema, thin).below950, lungFractions(emphysema, thick).below950];
  assert.ok(fine > 0.002, `mild emphysema: ${(100 * fine).toFixed(2)} % of thin lung voxels below −950 HU`);
  assert.ok(
    coarse < 0.25 * fine,
    `at the global view's voxels ${(100 * coarse).toFixed(3)} % remain (thin: ${(100 * fine).toFixed(3)} %)`,
  );
  const septal = lungFractions(
    { label: 'Interlobular septal thickening', side: 'bilateral', severity: 'moderate' },
    thin,
  ).above700;
  assert.ok(
    septal > normal.above700 + 0.01,
    `septal thickening: ${(100 * septal).toFixed(2)} % of lung above −700 HU vs ${(100 * normal.above700).toFixed(2)} % without`,
  );
});

test('t3d synth layout: CT-RATE files, HU via metadata, masks aligned, resumable', async () => {
  const r = await writeSynthDataset({ out: synthDir, count: 6, seed: 2, preset, workers: 2 });
  assert.equal(r.generated, 6);
  const ds = join(synthDir, 'dataset');
  for (const f of [
    'radiology_text_reports/train_reports.csv',
    'radiology_text_reports/validation_reports.csv',
    'metadata/train_metadata.csv',
    'multi_abnormality_labels/train_predicted_labels.csv',
    'multi_abnormality_labels/valid_predicted_labels.csv',
    'train/train_1/train_1_a/train_1_a_1.nii.gz',
    'masks/train/train_1/train_1_a/train_1_a_1_mask.nii.gz',
    'valid/valid_1/valid_1_a/valid_1_a_1.nii.gz',
  ]) {
    assert.ok(existsSync(join(ds, f)), f);
  }
  const labels = csvRows(readFileSync(join(ds, 'multi_abnormality_labels/train_predicted_labels.csv'), 'utf8'));
  assert.deepEqual(Object.keys(labels[0]!), ['VolumeName', ...LABELS]);
  const meta = csvRows(readFileSync(join(ds, 'metadata/train_metadata.csv'), 'utf8'))[0]!;
  const img = readNiftiSync(join(ds, 'train/train_1/train_1_a/train_1_a_1.nii.gz'));
  const mask = readNiftiSync(join(ds, 'masks/train/train_1/train_1_a/train_1_a_1_mask.nii.gz'));
  assert.deepEqual(mask.dataShape, img.dataShape);
  assert.deepEqual(img.affine, mask.affine);
  assert.equal(Number(meta.ZSpacing), img.spacing[2]);
  assert.equal(img.data[0]! + Number(meta.RescaleIntercept), img.data[0]! - 1024, 'stored values need the intercept');
  assert.ok(Math.abs(img.data[0]! - 1024 + 1000) < 80, `corner voxel is air after rescale (${img.data[0]! - 1024} HU)`);
  const again = await writeSynthDataset({ out: synthDir, count: 6, seed: 2, preset, workers: 2 });
  assert.deepEqual([again.generated, again.skipped], [0, 6]);
  await assert.rejects(writeSynthDataset({ out: synthDir, count: 6, seed: 3, preset }), /seed 2.*use another --out/);
});

function addBadInputs(dir: string): string[] {
  const bad = join(dir, 'dataset', 'train', 'bad');
  mkdirSync(bad, { recursive: true });
  const good = readFileSync(join(dir, 'dataset', 'train', 'train_1', 'train_1_a', 'train_1_a_1.nii.gz'));
  const affine = [
    [1, 0, 0, 0],
    [0, 1, 0, 0],
    [0, 0, 1, 0],
    [0, 0, 0, 1],
  ];
  const write = (name: string, bytes: Uint8Array) => {
    writeFileSync(join(bad, name), bytes);
    return name.replace(/\.nii(\.gz)?$/, '');
  };
  const plain = Buffer.from(encodeNifti({ data: new Int16Array(8 * 8 * 8).fill(100), shape: [8, 8, 8], affine }));
  const nan = new Float32Array(8 * 8 * 8).map((_, i) => (i === 7 ? NaN : i));
  const absurd = Buffer.from(plain);
  absurd.writeInt16LE(32000, 42);
  absurd.writeInt16LE(32000, 44);
  absurd.writeInt16LE(32000, 46);
  const zeroDim = Buffer.from(plain);
  zeroDim.writeInt16LE(0, 44);
  const complex = Buffer.from(plain);
  complex.writeInt16LE(32, 70);
  complex.writeInt16LE(64, 72);
  const magic = Buffer.from(plain);
  magic.write('xx', 344, 'latin1');
  const names = [
    write('truncated.nii.gz', good.subarray(0, good.length >> 1)),
    write('magic.nii', magic),
    write('absurd.nii', absurd),
    write('zerodim.nii', zeroDim),
    write('complex.nii', complex),
    write('nan.nii', encodeNifti({ data: nan, shape: [8, 8, 8], affine })),
    write('constant.nii.gz', gzipSync(plain)),
    write('flat2d.nii', encodeNifti({ data: new Int16Array(64).map((_, i) => i * 10), shape: [8, 8, 1], affine })),
    write('empty.nii.gz', new Uint8Array(0)),
  ];
  symlinkSync(join(bad, 'does-not-exist'), join(bad, 'dangling.nii.gz')); // listed but unreadable
  names.push('dangling');
  return names;
}

test('preprocess: every volume cached at the preset shape, bad inputs quarantined with reasons, rerun skips', async () => {
  const badNames = addBadInputs(synthDir);
  const source = readSource(synthDir);
  assert.equal(source.records.length, 6 + badNames.length);
  const r = await buildCache(source, preset, cacheDir);
  assert.equal(r.done, 6);
  assert.deepEqual(r.quarantined.map((q) => q.name).sort(), [...badNames].sort());
  for (const q of r.quarantined) assert.ok(q.reason.length > 8 && q.path.includes(q.name), `${q.name}: ${q.reason}`);
  const reasons = Object.fromEntries(r.quarantined.map((q) => [q.name, q.reason]));
  assert.match(reasons.nan!, /non-finite/i);
  assert.match(reasons.constant!, /not a CT volume/);
  assert.match(reasons.dangling!, /unreadable.*ENOENT/);
  const index = readCacheIndex(cacheDir);
  assert.equal(index.entries.length, 6);
  assert.deepEqual(index.labelNames, [...LABELS]);
  for (const e of index.entries) {
    assert.deepEqual(e.shape, preset.shape);
    assert.ok(e.hasMask);
    assert.match(e.report, /^Findings: /);
    // each entry names its source and how that source's stored values became HU (the CT-RATE v1 intercept)
    assert.equal(e.sourcePath, resolve(source.records.find((x) => x.name === e.name)!.path));
    assert.deepEqual(e.sourceRescale, { slope: 1, intercept: -1024 });
  }
  // the viewer shows an entry as its source scan: the scan's grid and affine, values in HU
  const e0 = index.entries[0]!;
  const scan = readNiftiSync(e0.sourcePath!);
  const shown = await readNifti(await sourceNifti(join(cacheDir, e0.file), cacheDir));
  assert.deepEqual([shown.dataShape, shown.affine], [scan.dataShape, scan.affine]);
  assert.ok(
    shown.data.every((v, i) => v === scan.data[i]! - 1024),
    'stored values + the metadata intercept',
  );
  // nothing partial: every volume file has its entry and no temp files remain
  assert.deepEqual(
    readdirSync(join(cacheDir, 'volumes')).filter((f) => f.includes('.tmp')),
    [],
  );
  assert.equal(readdirSync(join(cacheDir, 'volumes')).length, 6);
  const quarantine = readFileSync(join(cacheDir, 'quarantine.jsonl'), 'utf8').trim().split('\n');
  assert.equal(quarantine.length, badNames.length);
  // each volume cached alone gives the same bytes: the buffers that readers reuse across volumes carry nothing over
  for (const e of index.entries) {
    const alone = join(tmp, `alone-${e.name}`);
    await buildCache({ ...source, records: source.records.filter((x) => x.name === e.name) }, preset, alone);
    assert.equal(readCacheIndex(alone).entries[0]!.sha256, e.sha256, e.name);
  }
  const again = await buildCache(readSource(synthDir), preset, cacheDir);
  assert.deepEqual([again.done, again.skipped], [0, 6]);
  // a changed source is processed again
  const first = join(synthDir, 'dataset', 'train', 'train_1', 'train_1_a', 'train_1_a_1.nii.gz');
  copyFileSync(join(synthDir, 'dataset', 'train', 'train_2', 'train_2_a', 'train_2_a_1.nii.gz'), first);
  // a source changed since its entry was made is not shown as that entry: the cache grid is, with a log line
  const logged: string[] = [];
  const stale = await readNifti(
    await sourceNifti(join(cacheDir, 'volumes', 'train_1_a_1.safetensors'), cacheDir, (l) => logged.push(l)),
  );
  assert.deepEqual(stale.dataShape, [...preset.shape].reverse());
  assert.match(logged.join('\n'), /train_1_a_1: .*cache grid.*changed since the cache was built/);
  const third = await buildCache(readSource(synthDir), preset, cacheDir);
  assert.deepEqual([third.done, third.skipped], [1, 5]);
});

test('loader: batches are deterministic, resume mid-epoch matches, views have the configured shapes', async () => {
  const opts = { cacheDir, batchSize: 2, seed: 9, workers: 2, withMask: true };
  const collect = async (start = 0) => {
    const l = new Loader(opts);
    const out: { names: string[]; sum: number; local: number }[] = [];
    try {
      for await (const b of l.epoch(1, start))
        out.push({ names: b.names, sum: b.global.reduce((s, v) => s + v, 0), local: b.locals[3]![100]! });
    } finally {
      await l.close();
    }
    return out;
  };
  const full = await collect();
  assert.equal(full.length, 3);
  assert.deepEqual(await collect(), full);
  assert.deepEqual(await collect(1), full.slice(1));
  const l = new Loader({ ...opts, views: { numLocal: 2, localShape: [16, 24, 24] } });
  try {
    const it = l.epoch(0);
    const b = (await it.next()).value!;
    assert.equal(b.locals.length, 2);
    assert.equal(b.locals[0]!.length, 2 * 16 * 24 * 24);
    assert.equal(b.global.length, 2 * 64 * 96 * 96);
    assert.equal(b.labels.length, 2 * LABELS.length);
    assert.ok(
      b.mask && b.mask.subarray(0, 64 * 96 * 96).reduce((m: number, v: number) => Math.max(m, v), 0) >= 5,
      'mask classes present',
    );
    await it.return(undefined);
  } finally {
    await l.close();
  }
});

test('loader, multi-resolution preset: global view at globalShape, native local crops, full resolution on request', async () => {
  const mr = join(tmp, 'cache-mr');
  cpSync(cacheDir, mr, { recursive: true });
  const meta = JSON.parse(readFileSync(join(mr, 'cache.json'), 'utf8')) as { preset: { globalShape?: number[] } };
  meta.preset.globalShape = [32, 48, 48];
  writeFileSync(join(mr, 'cache.json'), JSON.stringify(meta));
  const first = async (o: Partial<ConstructorParameters<typeof Loader>[0]>) => {
    const l = new Loader({ cacheDir: mr, batchSize: 2, seed: 1, workers: 1, ...o });
    try {
      const it = l.epoch(0);
      const b = (await it.next()).value!;
      await it.return(undefined);
      return { b, l };
    } finally {
      await l.close();
    }
  };
  const { b, l } = await first({ views: { numLocal: 2, localSource: 'cache', localShape: [16, 24, 24] } });
  assert.deepEqual(
    [l.globalShape, l.localShape],
    [
      [32, 48, 48],
      [16, 24, 24],
    ],
  );
  assert.equal(b.global.length, 2 * 32 * 48 * 48);
  assert.equal(b.locals[1]!.length, 2 * 16 * 24 * 24);
  const full = await first({ views: { numLocal: 0 }, fullResolution: true, withMask: true });
  assert.equal(full.b.global.length, 2 * 64 * 96 * 96);
  assert.throws(
    () => new Loader({ cacheDir: mr, batchSize: 2, seed: 1, withMask: true }),
    /masks are at the cache's shape/,
  );
  // crops centred on organs: the worker reads each volume's mask for the anchors, and the views differ from uniform ones
  const anchored = await first({
    views: { numLocal: 2, localSource: 'cache', localShape: [16, 24, 24], localAnchor: 'foreground' },
  });
  assert.equal(anchored.b.locals[1]!.length, 2 * 16 * 24 * 24);
  assert.equal(anchored.b.mask, undefined, 'the anchors read the masks without returning them');
  assert.deepEqual(anchored.b.global, b.global, 'the global view is untouched');
  assert.notDeepEqual(anchored.b.locals[0], b.locals[0]);
});

test('t3d synth --dicom: each series reads back (our DICOM reader) as the same HU volume and geometry as its NIfTI', async () => {
  const out = join(tmp, 'synth-dicom');
  await writeSynthDataset({ out, count: 2, seed: 4, preset, workers: 1, dicom: true });
  const nii = readNiftiSync(join(out, 'dataset', 'train', 'train_1', 'train_1_a', 'train_1_a_1.nii.gz'));
  const dcm = await readDicomVolume(join(out, 'dicom', 'train_1_a_1'), { modality: 'CT' });
  assert.deepEqual(dcm.shape, nii.dataShape);
  for (let r = 0; r < 4; r++)
    for (let c = 0; c < 4; c++)
      assert.ok(Math.abs(dcm.affine[r]![c]! - nii.affine[r]![c]!) < 1e-4, `affine[${r}][${c}]`);
  let maxDiff = 0;
  for (let i = 0; i < nii.data.length; i += 97)
    maxDiff = Math.max(maxDiff, Math.abs(dcm.data[i]! - (nii.data[i]! - 1024)));
  assert.equal(maxDiff, 0, 'DICOM holds HU via RescaleIntercept −1024');
  assert.deepEqual(dcm.gaps, []);
});
