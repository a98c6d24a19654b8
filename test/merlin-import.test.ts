// Merlin as an import format (docs/published-models.md): `t3d import merlin` converts the tiny .pt fixture (the
// release's key layout, scripts/fixtures/make_merlin_fixtures.py) to safetensors under the released names; the run's
// image embedding equals loadMerlinImageEncoder's on the same volume; the image-only run goes through eval probe
// (zero-shot and retrieval skipped with the reason), analyze (no findings; similar cases), index and embed, and
// refuses text with a clear error.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../src/torch/index.js';
import { F } from '../src/torch/index.js';
import { fromLps } from '../src/models/merlin.js';
import { loadMerlinImageEncoder } from '../src/train/merlin-load.js';
import { loadT3dCheckpoint } from '../src/train/factory.js';
import { importModel } from '../src/train/import-model.js';
import { evalTarget } from '../src/eval/target.js';
import { loadPreset } from '../src/data/presets.js';
import { readCacheIndex } from '../src/data/cache.js';
import { inputTransform } from '../src/data/input-transform.js';
import { readSafetensorsHeader } from '../src/util/safetensors-file.js';
import { hashFile } from '../src/util/files.js';
import { writeNiftiSync } from '../src/io/nifti-write.js';
import { assertClose, fixture } from './helpers.js';
import { t3d, tinyDataset } from './imported-run.js';
import { readInvesalius, skipRealCt } from './real-ct.js';

const tmp = mkdtempSync(join(tmpdir(), 't3d-merlin-import-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const pt = fixture('merlin', 'merlin_tiny.pt');
const tinyPreset = fixture('merlin', 'tiny-preset.json');
const released = join(tmp, 'released');
mkdirSync(released);
copyFileSync(pt, join(released, 'i3_resnet_clinical_longformer_best_clip_04-02-2024_23-21-36_epoch_99.pt'));

test('merlin: the imported run embeds a volume as loadMerlinImageEncoder does (≤ 1e-5), image only', () => {
  const out = join(tmp, 'parity');
  const r = t3d('import', 'merlin', released, '--out', out, '--preset', tinyPreset);
  assert.equal(r.status, 0, r.stderr);
  assert.match(
    r.stdout,
    /import: merlin from .* → .*step-00000000 \(preset merlin-tiny, weights sha256 [0-9a-f]{64}\)/,
  );
  const { model, tokenizer, config, dir, transform } = loadT3dCheckpoint(out);
  assert.equal(tokenizer, undefined, 'no tokenizer: the Longformer is not imported');
  assert.equal(existsSync(join(dir, 'tokenizer.json')), false);
  assert.deepEqual(transform.inputShape, [16, 32, 32]);
  assert.ok('imported' in config);
  assert.deepEqual(config.imported.source, [
    { file: 'i3_resnet_clinical_longformer_best_clip_04-02-2024_23-21-36_epoch_99.pt', sha256: hashFile(pt).sha256 },
  ]);
  // the converted file keeps the released names of the image encoder and nothing of the text tower
  const names = readSafetensorsHeader(join(dir, 'model.safetensors')).entries.map((e) => e.name);
  assert.ok(names.includes('encode_image.i3_resnet.contrastive_head.weight'));
  assert.ok(names.every((n) => n.startsWith('encode_image.i3_resnet.')));
  const ref = loadMerlinImageEncoder(pt);
  torch.manualSeed(3);
  const x = torch.rand([2, 1, 16, 32, 32]);
  torch.noGrad(() =>
    torch.tidy(() => {
      const ours = model.encodeVolume(x).emb;
      const theirs = F.normalize(ref.encoder.forward(fromLps(x)).embedding, -1);
      assertClose(ours, theirs, { atol: 1e-5, rtol: 0, what: 'image embedding' });
      // the check can fail: Merlin's axes in the other order give another embedding
      const swapped = F.normalize(ref.encoder.forward(x.permute(0, 1, 3, 4, 2)).embedding, -1);
      assert.ok(ours.sub(swapped).abs().max().item() > 1e-3, 'the LPS → RAS reordering matters');
      // the evaluation's fresh encoder carries the same weights
      const target = evalTarget(out);
      const enc = target.makeEncoder().eval();
      assertClose(enc.encode(x).pooled, model.visual.encode(x).pooled, { atol: 1e-6, what: 'evaluation encoder' });
      assert.equal(target.textAligned, false);
      torch.dispose([enc, target.loaded.model]);
    }),
  );
  assert.throws(() => model.encodeReport(torch.zeros([1, 2], { dtype: 'int64' }), torch.ones([1, 2])), /image-only/);
  torch.dispose([x, model, ref.encoder]);
});

test('merlin import refuses a folder without exactly one .pt, and a .pt that is not Merlin, writing nothing', () => {
  const fails = (folder: string, message: RegExp) => {
    const out = join(tmp, 'refused');
    assert.throws(() => importModel({ format: 'merlin', folder, out, preset: tinyPreset }), message);
    assert.equal(existsSync(out), false, 'nothing written');
  };
  fails(fixture('merlin'), /merlin: 3 \.pt files \(.*\); a Merlin folder holds one \(the released i3_resnet_clinical/);
  const empty = join(tmp, 'empty');
  mkdirSync(empty);
  fails(empty, /empty: no \.pt file; a Merlin folder holds one/);
  const other = join(tmp, 'other');
  mkdirSync(other);
  copyFileSync(fixture('torch-pt', 'tensors.pt'), join(other, 'model.pt'));
  fails(other, /model\.pt: .*not a Merlin checkpoint/);
  // the built-in preset is Merlin's own
  const p = loadPreset('merlin');
  assert.deepEqual(
    [p.shape, p.spacing, p.huWindow, p.padValue, p.region],
    [[160, 224, 224], [1.5, 1.5, 3], [-1000, 1000], -1000, 'abdomen'],
  );
  // its window maps −1000 HU (and the padding) to 0, 0 HU to 0.5 and 1000 HU to 1
  const grid = new Int16Array(16 * 32 * 32).fill(-1000);
  grid[1] = 0;
  grid[2] = 1000;
  assert.deepEqual(Array.from(inputTransform(loadPreset(tinyPreset)).toInput(grid).slice(0, 4)), [0, 0.5, 1, 0]);
});

test('an imported Merlin in the harness: eval probe (zero-shot, retrieval skipped), analyze, index, embed', async () => {
  const data = await tinyDataset(join(tmp, 'data'));
  const run = join(tmp, 'merlin-s0');
  assert.equal(t3d('import', 'merlin', released, '--out', run, '--preset', tinyPreset).status, 0);
  const evalConfig = fixture('eval', 'tiny-eval.json');
  const e = t3d('eval', 'zeroshot,retrieval,probe', '--checkpoint', run, '--config', evalConfig, '--data', data);
  assert.equal(e.status, 0, `${e.stdout}\n${e.stderr}`);
  assert.match(`${e.stdout}${e.stderr}`, /zeroshot, retrieval: skipped: this model was imported image-only/);
  assert.ok(existsSync(join(run, 'eval', 'probe-100pct.json')));
  assert.ok(!existsSync(join(run, 'eval', 'zeroshot.json')));
  const cache = join(run, 'eval', 'cache');
  const db = join(tmp, 'db');
  const index = t3d('index', '--checkpoint', run, '--cache', cache, '--db', db);
  assert.equal(index.status, 0, index.stderr);
  // one validation volume from its NIfTI: no findings, its embedding, and similar cases from the index
  const cacheIndex = readCacheIndex(cache);
  const name = cacheIndex.entries.find((x) => x.split === 'valid')!.name;
  const parts = name.split('_');
  const nifti = join(
    data,
    'dataset',
    'valid',
    parts.slice(0, 2).join('_'),
    parts.slice(0, 3).join('_'),
    `${name}.nii.gz`,
  );
  const a = t3d('analyze', nifti, '--checkpoint', run, '--intercept', '-1024', '--db', db, '--k', '3', '--json');
  assert.equal(a.status, 0, a.stderr);
  const analysis = JSON.parse(a.stdout) as {
    findings: unknown[];
    note: string;
    embedding: number[];
    similar: { id: string; similarity: number }[];
  };
  assert.deepEqual(analysis.findings, []);
  assert.match(analysis.note, /No zero-shot findings: this model was imported image-only/);
  assert.equal(analysis.embedding.length, 8);
  assert.equal(analysis.similar.length, 3);
  // (the tiny random weights embed every volume almost alike, so which case comes first is not checked)
  const ids = new Set(cacheIndex.entries.map((x) => x.name));
  assert.ok(
    analysis.similar.every((h, i) => ids.has(h.id) && (i === 0 || h.similarity <= analysis.similar[i - 1]!.similarity)),
  );
  const table = t3d('analyze', nifti, '--checkpoint', run, '--intercept', '-1024', '--db', db);
  assert.equal(table.status, 0, table.stderr);
  assert.match(table.stdout, /no findings scored\n {2}No zero-shot findings/);
  assert.match(table.stdout, /most similar indexed cases:/);
  // volume embeddings export; reports and text search are refused with the reason
  const out = join(tmp, 'emb.safetensors');
  const emb = t3d('embed', '--checkpoint', run, '--cache', cache, '--split', 'valid', '--out', out);
  assert.equal(emb.status, 0, emb.stderr);
  const { tensors } = torch.loadSafetensors(out);
  assert.deepEqual(tensors.get('embeddings')!.shape, [cacheIndex.entries.filter((x) => x.split === 'valid').length, 8]);
  torch.dispose([...tensors.values()]);
  const reports = join(tmp, 'reports.txt');
  writeFileSync(reports, 'pleural effusion\n');
  const noText = t3d('embed', '--checkpoint', run, '--reports', reports, '--out', join(tmp, 'r.safetensors'));
  assert.equal(noText.status, 1);
  assert.match(noText.stderr, /image-only \(imported without its text tower\): it cannot embed text/);
  const search = t3d('search', 'pleural effusion', '--checkpoint', run, '--db', db);
  assert.equal(search.status, 1);
  assert.match(search.stderr, /image-only/);
});

test(
  "the imported Merlin on the real head CT: analyze runs, warns that a head is not the abdomen it was trained on, and embeds it at the model's width",
  { skip: skipRealCt },
  () => {
    const ct = readInvesalius();
    const [D, H, W] = ct.shape;
    const head = join(tmp, 'head.nii.gz');
    writeNiftiSync(head, { data: ct.data, shape: [W, H, D], affine: ct.affine, datatype: 'int16' });
    const run = join(tmp, 'merlin-real');
    assert.equal(t3d('import', 'merlin', released, '--out', run, '--preset', tinyPreset).status, 0);
    const r = t3d('analyze', head, '--checkpoint', run, '--json');
    assert.equal(r.status, 0, r.stderr);
    const a = JSON.parse(r.stdout) as {
      checkpoint: string;
      preset: string;
      warnings: { code: string; message: string }[];
      embedding: number[];
    };
    assert.equal(a.preset, 'merlin-tiny');
    assert.deepEqual(a.warnings.map((w) => w.code).sort(), ['region', 'short-extent']);
    assert.match(
      a.warnings.find((w) => w.code === 'region')!.message,
      /looks like a head CT .*preset merlin-tiny\) was trained on abdomen CT/,
    );
    // the width of the contrastive head's output, read from the imported weights
    const headWeight = readSafetensorsHeader(join(a.checkpoint, 'model.safetensors')).entries.find(
      (e) => e.name === 'encode_image.i3_resnet.contrastive_head.weight',
    )!;
    assert.equal(a.embedding.length, headWeight.shape[0]);
    assert.ok(a.embedding.every(Number.isFinite), 'a finite embedding');
    assert.ok(Math.abs(Math.hypot(...a.embedding) - 1) < 1e-5, 'of unit length');
  },
);
