// COLIPRI in the harness (docs/models/colipri.md): `t3d import colipri` turns a tiny folder in the key layout the
// notes describe (scripts/fixtures/make_colipri_fixtures.py) into a run whose model reproduces a PyTorch reference's
// image and text embeddings, refuses a folder missing its files, and goes through eval and analyze like our runs.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../src/torch/index.js';
import { loadT3dCheckpoint } from '../src/train/factory.js';
import { importModel } from '../src/train/import-model.js';
import { evalTarget } from '../src/eval/target.js';
import { chunkedAttention } from '../src/models/primus.js';
import { readCacheIndex } from '../src/data/cache.js';
import { assertClose, fixture } from './helpers.js';
import { assertAnalyzeAsEvaluated, refusals, t3d, tinyDataset } from './imported-run.js';

const tmp = mkdtempSync(join(tmpdir(), 't3d-colipri-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const released = fixture('colipri', 'released');
const tinyPreset = fixture('colipri', 'tiny-preset.json');

test('colipri: the imported model reproduces the reference image and text embeddings (≤ 1e-4)', () => {
  const out = join(tmp, 'parity');
  importModel({ format: 'colipri', folder: released, out, preset: tinyPreset });
  const { tensors: ref } = torch.loadSafetensors(fixture('colipri', 'reference.safetensors'));
  const { model, tokenizer: tok, preset, transform } = loadT3dCheckpoint(out);
  assert.equal(preset.name, 'colipri-tiny');
  assert.deepEqual(transform.inputShape, [16, 16, 24]);
  const texts = JSON.parse(readFileSync(fixture('colipri', 'texts.json'), 'utf8')) as string[];
  const mask = (ref.get('attention_mask')!.toArray() as (number | bigint)[]).map(Number);
  const ids = (ref.get('input_ids')!.toArray() as (number | bigint)[]).map(Number);
  const width = ref.get('input_ids')!.size(1);
  texts.forEach((t, i) => {
    const n = mask.slice(i * width, (i + 1) * width).reduce((a, b) => a + b, 0);
    assert.deepEqual(tok!.encode(t).inputIds, ids.slice(i * width, i * width + n), t);
  });
  torch.noGrad(() =>
    torch.tidy(() => {
      const image = model.encodeVolume(ref.get('image')!);
      assert.deepEqual(image.tokens.shape, [2, 4 * 4 * 6, 64], 'the projected tokens on the 4×4×6 patch grid');
      assertClose(image.emb, ref.get('image_emb')!, { atol: 1e-4, what: 'image embeddings' });
      const text = model.encodeReport(ref.get('input_ids')!, ref.get('attention_mask')!).emb;
      assertClose(text, ref.get('text_emb')!, { atol: 1e-4, what: 'text embeddings' });
      // padding is masked out of the text pool: one report alone gives its batched embedding
      const one = ref.get('input_ids')!.narrow(0, 0, 1);
      const n = mask.slice(0, width).reduce((a, b) => a + b, 0);
      const alone = model.encodeReport(one.narrow(1, 0, n), ref.get('attention_mask')!.narrow(0, 0, 1).narrow(1, 0, n));
      assertClose(alone.emb, ref.get('text_emb')!.narrow(0, 0, 1), { atol: 1e-5, what: 'unpadded report' });
      assert.ok(Math.abs(model.logit_scale!.value.exp().item() - 1 / 0.07) < 1e-3, 'logit_scale is stored as its log');
    }),
  );
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
  torch.dispose([encoder, model, target.loaded.model, ...ref.values()]);
});

test('colipri import refuses a folder missing its files or with weights it cannot place, writing nothing', () => {
  const { bad, fails } = refusals('colipri', released, tmp, tinyPreset);
  fails(
    bad('no-weights', (d) => rmSync(join(d, 'model.safetensors'))),
    /no-weights: no model\.safetensors \(a COLIPRI folder holds model\.safetensors and the CXR-BERT tokenizer's vocab\.txt\)/,
  );
  fails(
    bad('no-vocab', (d) => rmSync(join(d, 'vocab.txt'))),
    /no-vocab: no vocab\.txt/,
  );
  // the fixture's sizes are not a released Primus: without its config.json the heads are unknown
  fails(
    bad('no-config', (d) => rmSync(join(d, 'config.json'))),
    /config\.json: image_heads must be a positive integer, got undefined \(a 48-wide Primus is not a released size/,
  );
  const edit = (name: string, edit: (t: Map<string, torch.Tensor>) => void) =>
    bad(name, (d) => {
      const { tensors } = torch.loadSafetensors(join(released, 'model.safetensors'));
      edit(tensors);
      torch.saveSafetensors(join(d, 'model.safetensors'), tensors);
      torch.dispose([...tensors.values()]);
    });
  fails(
    edit('missing-key', (t) => t.delete('image_encoder.backbone.eva.blocks.1.attn.k_proj.weight')),
    /model\.safetensors: weights do not match .*parameters not in the file \[visual\.backbone\.eva\.blocks\.1\.attn\.k_proj/,
  );
  fails(
    edit('abs-pos', (t) => t.set('image_encoder.backbone.eva.pos_embed', torch.zeros([1, 96, 48]))),
    /unknown released keys \[image_encoder\.backbone\.eva\.pos_embed\]/,
  );
  fails(released, /preset 'cpu-96' gives the model \[64, 96, 96\] but colipri was trained at \[16, 16, 24\]/, {
    preset: 'cpu-96',
  });
});

test('an imported COLIPRI in the harness: eval zeroshot, retrieval and probe on a dataset, analyze a scan', async () => {
  const data = await tinyDataset(join(tmp, 'data'));
  const run = join(tmp, 'colipri-s0');
  const imp = t3d('import', 'colipri', released, '--out', run, '--preset', tinyPreset);
  assert.equal(imp.status, 0, imp.stderr);
  assert.match(
    imp.stdout,
    /import: colipri from .* → .*step-00000000 \(preset colipri-tiny, weights sha256 [0-9a-f]{64}\)/,
  );
  const evalConfig = fixture('eval', 'tiny-eval.json');
  const e = t3d('eval', 'zeroshot,retrieval,probe', '--checkpoint', run, '--config', evalConfig, '--data', data);
  assert.equal(e.status, 0, `${e.stdout}\n${e.stderr}`);
  for (const f of ['zeroshot.json', 'retrieval.json', 'probe-100pct.json'])
    assert.ok(existsSync(join(run, 'eval', f)), f);
  const zs = assertAnalyzeAsEvaluated(run, data, 'colipri-tiny');
  assert.ok(zs.result.macro.auroc >= 0 && zs.result.macro.auroc <= 1);
  assert.ok(readCacheIndex(join(run, 'eval', 'cache')).entries.some((x) => x.name === zs.result.test.names[0]));
});

test('Primus attention in chunks of query rows (the 13.8k-token case on libtorch without a fused kernel) is exact', () => {
  torch.manualSeed(0);
  torch.tidy(() => {
    const [q, k, v] = [0, 1, 2].map(() => torch.randn([2, 3, 50, 8])) as [torch.Tensor, torch.Tensor, torch.Tensor];
    const whole = chunkedAttention(q, k, v);
    // 2·3·7·50 scores a chunk: 7 rows, the last chunk 1 row
    assertClose(chunkedAttention(q, k, v, 2 * 3 * 7 * 50), whole, { atol: 1e-6, what: 'chunked attention' });
    assertClose(whole, torch.F.scaledDotProductAttention(q, k, v), { atol: 0, what: 'one chunk' });
  });
});
