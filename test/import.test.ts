// Published models in the harness (docs/published-models.md): `t3d import` turns a released M3D-CLIP folder (a tiny
// one in the release's exact key layout, scripts/fixtures/make_m3d_clip_fixtures.py) into a run folder whose model
// reproduces a PyTorch reference's embeddings, refuses folders that would not load, and then goes through eval,
// analyze and the study table like one of our runs.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../src/torch/index.js';
import { loadT3dCheckpoint } from '../src/train/factory.js';
import { importModel } from '../src/train/import-model.js';
import { evalTarget } from '../src/eval/target.js';
import { hashFile } from '../src/util/files.js';
import { writeNiftiSync } from '../src/io/nifti-write.js';
import { CT_RATE_LABELS } from '../src/domain/ct-rate.js';
import { assertClose, fixture } from './helpers.js';
import { assertAnalyzeAsEvaluated, refusals, t3d, type ZeroShotRecord } from './imported-run.js';
import { readInvesalius, skipRealCt } from './real-ct.js';

const tmp = mkdtempSync(join(tmpdir(), 't3d-import-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const released = fixture('m3d-clip', 'released');
const tinyPreset = fixture('m3d-clip', 'tiny-preset.json');

test('m3d-clip: the imported model reproduces the reference image and text embeddings (≤ 1e-4)', () => {
  const out = join(tmp, 'parity');
  const dir = importModel({ format: 'm3d-clip', folder: released, out, preset: tinyPreset });
  assert.equal(
    hashFile(join(dir, 'model.safetensors')).sha256,
    hashFile(join(released, 'model.safetensors')).sha256,
    'the released weights, unchanged',
  );
  const { tensors: ref } = torch.loadSafetensors(fixture('m3d-clip', 'reference.safetensors'));
  const { model, tokenizer: tok, preset, transform, config } = loadT3dCheckpoint(out);
  const tokenizer = tok!;
  assert.equal(preset.name, 'm3d-clip-tiny');
  assert.deepEqual(transform.inputShape, [4, 16, 24]);
  assert.equal(config.data.maxTokens, 32, "the text tower's position table bounds the 512 tokens M3D trained with");
  // the tokenizer made from vocab.txt gives the reference's ids
  const texts = JSON.parse(readFileSync(fixture('m3d-clip', 'texts.json'), 'utf8')) as string[];
  const mask = (ref.get('attention_mask')!.toArray() as (number | bigint)[]).map(Number);
  const ids = (ref.get('input_ids')!.toArray() as (number | bigint)[]).map(Number);
  const width = ref.get('input_ids')!.size(1);
  texts.forEach((t, i) => {
    const n = mask.slice(i * width, (i + 1) * width).reduce((a, b) => a + b, 0);
    assert.deepEqual(tokenizer.encode(t).inputIds, ids.slice(i * width, i * width + n), t);
  });
  torch.noGrad(() =>
    torch.tidy(() => {
      const image = model.encodeVolume(ref.get('image')!).emb;
      assertClose(image, ref.get('image_emb')!, { atol: 1e-4, what: 'image embeddings' });
      const text = model.encodeReport(ref.get('input_ids')!, ref.get('attention_mask')!).emb;
      assertClose(text, ref.get('text_emb')!, { atol: 1e-4, what: 'text embeddings' });
      assert.ok(Math.abs(model.logit_scale!.value.exp().item() - 4.2) < 1e-5, 'M3D multiplies by logit_scale as is');
    }),
  );
  // the evaluation's fresh vision encoder carries the same released weights
  const target = evalTarget(out);
  const encoder = target.makeEncoder().eval();
  torch.noGrad(() =>
    torch.tidy(() =>
      assertClose(encoder.encode(ref.get('image')!).pooled, model.visual.encode(ref.get('image')!).pooled, {
        atol: 1e-6,
        what: 'evaluation encoder',
      }),
    ),
  );
  assert.equal(target.textAligned, true);
  torch.dispose([encoder, model, target.loaded.model, ...ref.values()]);
});

test('m3d-clip import refuses what would not load, naming the file and the reason, and writes nothing', () => {
  const { bad, fails } = refusals('m3d-clip', released, tmp, tinyPreset);
  fails(
    bad('no-vocab', (d) => rmSync(join(d, 'vocab.txt'))),
    /no-vocab: no vocab\.txt \(an M3D-CLIP folder holds/,
  );
  fails(
    bad('not-m3d', (d) => writeFileSync(join(d, 'config.json'), JSON.stringify({ model_type: 'bert' }))),
    /config\.json: model_type "bert" is not M3D-CLIP's 'm3d_clip'/,
  );
  // a tensor of the release missing from the weights
  const truncated = bad('missing-key', (d) => {
    const { tensors } = torch.loadSafetensors(join(released, 'model.safetensors'));
    tensors.delete('vision_encoder.blocks.1.attn.qkv.weight');
    torch.saveSafetensors(join(d, 'model.safetensors'), tensors);
    torch.dispose([...tensors.values()]);
  });
  fails(
    truncated,
    /model\.safetensors: weights do not match .*parameters not in the file \[visual\.blocks\.1\.attn\.qkv/,
  );
  fails(released, /preset 'cpu-96' gives the model \[64, 96, 96\] but m3d-clip was trained at \[4, 16, 24\]/, {
    preset: 'cpu-96',
  });
  const taken = join(tmp, 'taken');
  mkdirSync(taken);
  writeFileSync(join(taken, 'x'), '');
  fails(released, /--out .*taken: exists and is not empty/, { out: taken });
  assert.throws(
    () => importModel({ format: 'm3d', folder: released, out: join(tmp, 'x') }),
    /unknown model format 'm3d' \(known: m3d-clip, merlin, colipri\)/,
  );
  const usage = t3d('import', 'm3d-clip', released);
  assert.equal(usage.status, 2, 'a wrong command line exits with 2');
  assert.match(usage.stderr, /import: <format> <folder> --out <run> are required/);
  // a damaged copy is caught by the run's manifest before it is loaded
  const damaged = join(tmp, 'damaged');
  const dir = importModel({ format: 'm3d-clip', folder: released, out: damaged, preset: tinyPreset });
  const weights = readFileSync(join(dir, 'model.safetensors'));
  weights[weights.length - 1] ^= 1;
  writeFileSync(join(dir, 'model.safetensors'), weights);
  assert.throws(() => loadT3dCheckpoint(damaged), /damaged/);
  copyFileSync(join(released, 'model.safetensors'), join(dir, 'model.safetensors'));
});

test('an imported M3D-CLIP in the harness: eval zeroshot, retrieval and probe on a dataset, analyze a scan, index and search, and the study table beside our run', () => {
  const study = join(tmp, 'study');
  const ours = join(study, 'clip-only-s0');
  const cache = join(tmp, 'cache');
  const evalConfig = fixture('eval', 'tiny-eval.json');
  const pre = t3d(
    'pretrain',
    '--config',
    fixture('pretrain', 'tiny.json'),
    '--set',
    `data.cache=${cache}`,
    '--set',
    `data.preset=${fixture('pretrain', 'tiny-preset.json')}`,
    '--set',
    'data.synth={"count":30,"seed":0,"validFraction":0.3}',
    '--steps',
    '2',
    '--out',
    ours,
  );
  assert.equal(pre.status, 0, pre.stderr);
  const m3d = join(study, 'm3d-clip-s0');
  const imp = t3d('import', 'm3d-clip', released, '--out', m3d, '--preset', tinyPreset);
  assert.equal(imp.status, 0, imp.stderr);
  assert.match(
    imp.stdout,
    /import: m3d-clip from .* → .*step-00000000 \(preset m3d-clip-tiny, weights sha256 [0-9a-f]{64}\)/,
  );
  const noData = t3d('eval', 'zeroshot', '--checkpoint', m3d, '--config', evalConfig);
  assert.equal(noData.status, 1);
  assert.match(noData.stderr, /an imported model has no training cache; give the data to evaluate on with --data/);
  const otherPreset = t3d('eval', 'zeroshot', '--checkpoint', m3d, '--data', cache, '--config', evalConfig);
  assert.equal(otherPreset.status, 1);
  assert.match(otherPreset.stderr, /a cache preprocessed with preset 'tiny', but .* takes 'm3d-clip-tiny'/);
  // the synthetic dataset our run was trained from, preprocessed with M3D-CLIP's preset for it
  const data = `${cache}-source`;
  // never evaluated: probabilities over CT-RATE's findings, no thresholds, and a note saying how to get them
  const valid = join(data, 'dataset', 'valid');
  const someScan = readdirSync(valid, { recursive: true })
    .map(String)
    .find((f) => f.endsWith('.nii.gz'))!;
  const fresh = t3d('analyze', join(valid, someScan), '--checkpoint', m3d, '--intercept', '-1024', '--json');
  assert.equal(fresh.status, 0, fresh.stderr);
  const uncalibrated = JSON.parse(fresh.stdout) as {
    note: string;
    thresholds: string | null;
    findings: { label: string; probability: number; threshold: number | null; positive: boolean | null }[];
  };
  assert.deepEqual(
    uncalibrated.findings.map((f) => f.label),
    [...CT_RATE_LABELS],
  );
  assert.ok(uncalibrated.findings.every((f) => f.probability > 0 && f.probability < 1 && f.positive === null));
  assert.equal(uncalibrated.thresholds, null);
  assert.match(uncalibrated.note, /No calls: .* run `t3d eval zeroshot --checkpoint .* --data <cache>`/);
  for (const [run, extra] of [
    [m3d, ['--data', data]],
    [ours, []],
  ] as const) {
    const r = t3d('eval', 'zeroshot,retrieval,probe', '--checkpoint', run, '--config', evalConfig, ...extra);
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  }
  for (const f of ['zeroshot.json', 'retrieval.json', 'probe-100pct.json'])
    assert.ok(existsSync(join(m3d, 'eval', f)), f);
  const zs = JSON.parse(readFileSync(join(m3d, 'eval', 'zeroshot.json'), 'utf8')) as ZeroShotRecord;
  const sha = hashFile(join(released, 'model.safetensors')).sha256;
  assert.equal(zs.meta.checkpointId, sha.slice(0, 16), "records carry the released weights' id");
  assert.ok(zs.result.macro.auroc >= 0 && zs.result.macro.auroc <= 1);
  const ourZs = JSON.parse(readFileSync(join(ours, 'eval', 'zeroshot.json'), 'utf8')) as ZeroShotRecord;
  assert.deepEqual(zs.result.test.names, ourZs.result.test.names, 'the same test volumes');
  assertAnalyzeAsEvaluated(m3d, data, 'm3d-clip-tiny');
  // its index table and text search, on the cache the evaluation made with its preset
  const db = join(tmp, 'db');
  const wrongCache = t3d('index', '--checkpoint', m3d, '--cache', cache, '--db', db);
  assert.equal(wrongCache.status, 1);
  assert.match(wrongCache.stderr, /a cache preprocessed with preset 'tiny', but .* takes 'm3d-clip-tiny'/);
  const index = t3d('index', '--checkpoint', m3d, '--cache', join(m3d, 'eval', 'cache'), '--db', db);
  assert.equal(index.status, 0, index.stderr);
  const found = t3d('search', 'pleural effusion', '--checkpoint', m3d, '--db', db, '--k', '3', '--json');
  assert.equal(found.status, 0, found.stderr);
  const hits = JSON.parse(found.stdout) as { id: string; similarity: number }[];
  assert.equal(hits.length, 3);
  assert.ok(hits.every((h, i) => i === 0 || h.similarity <= hits[i - 1]!.similarity));
  const table = t3d('eval', 'compare', '--runs', study, '--treatment', 'm3d-clip', '--baseline', 'clip-only');
  assert.equal(table.status, 0, table.stderr);
  assert.match(table.stdout, /\| zeroshot\/auroc \| .*\|/);
  for (const method of ['m3d-clip', 'clip-only'])
    assert.match(table.stdout, new RegExp(`\\| ${method} \\|`), `${method} in the table`);
});

test(
  "the imported M3D-CLIP on the real head CT: analyze runs, finds nothing amiss (M3D's preset resizes any region's whole scan), and embeds it at the model's width",
  { skip: skipRealCt },
  () => {
    // the run the harness test made: its zero-shot evaluation gave it the finding names analyze scores
    const m3d = join(tmp, 'study', 'm3d-clip-s0');
    assert.ok(existsSync(join(m3d, 'eval', 'zeroshot.json')), 'the harness test ran first');
    const ct = readInvesalius();
    const [D, H, W] = ct.shape;
    const head = join(tmp, 'head.nii.gz');
    writeNiftiSync(head, { data: ct.data, shape: [W, H, D], affine: ct.affine, datatype: 'int16' });
    const r = t3d('analyze', head, '--checkpoint', m3d, '--json');
    assert.equal(r.status, 0, r.stderr);
    const a = JSON.parse(r.stdout) as {
      preset: string;
      warnings: { code: string }[];
      findings: { probability: number }[];
      embedding: number[];
    };
    assert.equal(a.preset, 'm3d-clip-tiny');
    // M3D-Cap holds scans of every body region, so the preset names none; and a 'resize' preset has no field of
    // view to fall short of: the whole 162 mm of head is stretched onto the input
    assert.deepEqual(a.warnings, []);
    const inspect = t3d('inspect', head, '--checkpoint', m3d, '--json');
    assert.equal(inspect.status, 0, inspect.stderr);
    assert.equal((JSON.parse(inspect.stdout) as { measures: { region: string } }).measures.region, 'head');
    const { tensors: ref } = torch.loadSafetensors(fixture('m3d-clip', 'reference.safetensors'));
    const width = ref.get('image_emb')!.size(1);
    torch.dispose([...ref.values()]);
    assert.equal(a.embedding.length, width);
    assert.ok(a.embedding.every(Number.isFinite), 'a finite embedding');
    assert.ok(Math.abs(Math.hypot(...a.embedding) - 1) < 1e-5, 'of unit length');
    assert.ok(a.findings.length > 0 && a.findings.every((f) => f.probability >= 0 && f.probability <= 1));
  },
);
