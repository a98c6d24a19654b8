// Local views anchored on the lobes a report names, the crop-scale readout's fixed lobe crops, and the BatchNorm
// recalibration that precedes that readout; the crop-CLIP control's loss.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../src/torch/index.js';
import { type VisionEncoder } from '../src/models/t3d.js';
import { Rng } from '../src/util/rng.js';
import { DEFAULT_VIEWS, lobeCropViews, makeViews, type Shape3 } from '../src/data/views.js';
import { lobeCentre, lungBoxes } from '../src/data/lobes.js';
import { reportRegions } from '../src/text/regions.js';
import { BatchNormRecalibration } from '../src/inference/recalibrate.js';
import { evalSplits } from '../src/eval/splits.js';
import { macroAuroc } from '../src/eval/metrics/classification.js';
import { runTransfer } from '../src/eval/tasks/transfer.js';
import { applyOverrides, loadConfig, validateConfig } from '../src/train/config.js';
import { buildT3dModel } from '../src/train/factory.js';
import { t3dLoss, type ObjectiveConfig } from '../src/objectives/t3d.js';
import { clipLoss } from '../src/objectives/clip.js';
import { assertClose, fixture } from './helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 't3d-local-views-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

test('reportRegions: the lobes named by affirming sentences, once each, in order; denials name none', () => {
  const report =
    'Multiple micronodules are observed in the right upper lobe. No consolidation in the left lower lobe. ' +
    'A tree-in-bud pattern is seen in the Left Lower Lobe. A nodule in the right upper lobe. ' +
    'Atelectasis in the bilateral lower lobes. Nothing in the left middle lobe.';
  assert.deepEqual(reportRegions(report), [
    { side: 'right', lobe: 'upper' },
    { side: 'left', lobe: 'lower' },
  ]);
  assert.deepEqual(reportRegions('No micronodules are seen.'), []);
});

// Two lungs on a (D, H, W) = (40, 32, 48) grid: the right lung (class 1) at small W, the left (class 2) at large W.
const shape: Shape3 = [40, 32, 48];
const mask = new Uint8Array(40 * 32 * 48);
for (let z = 4; z <= 35; z++)
  for (let y = 6; y <= 25; y++)
    for (let x = 0; x < 48; x++) {
      if (x >= 4 && x <= 19) mask[(z * 32 + y) * 48 + x] = 1;
      if (x >= 28 && x <= 43) mask[(z * 32 + y) * 48 + x] = 2;
    }
const hu = Int16Array.from(mask, (m) => (m ? -850 : 40));

test("lobe centres sit in the named lung: upper high, lower low, middle low and in front; 'report' crops hold them", () => {
  const boxes = lungBoxes(mask, shape);
  assert.deepEqual(boxes[0], { lo: [4, 6, 4], hi: [35, 25, 19] });
  const rul = lobeCentre(boxes, { side: 'right', lobe: 'upper' })!;
  const rml = lobeCentre(boxes, { side: 'right', lobe: 'middle' })!;
  const lll = lobeCentre(boxes, { side: 'left', lobe: 'lower' })!;
  assert.ok(rul[2] < 20 && lll[2] > 27, 'sides');
  assert.ok(rul[0] > rml[0] && rml[0] > lll[0], 'heights');
  assert.ok(rml[1] < rul[1] && rul[1] < lll[1], 'middle in front, lower behind');
  assert.equal(lobeCentre([boxes[0], undefined], { side: 'left', lobe: 'upper' }), undefined);

  const cfg = { ...DEFAULT_VIEWS, numLocal: 6, localSource: 'cache' as const, localShape: [12, 12, 12] as Shape3 };
  const region = { side: 'right' as const, lobe: 'upper' as const };
  const v = makeViews(hu, shape, 1000, -1, { ...cfg, localAnchor: 'report' }, new Rng(1, 0, 0), shape, mask, [region]);
  for (const b of v.boxes)
    assert.ok(
      rul.every((c, a) => c >= b.start[a]! && c < b.start[a]! + b.size[a]!),
      `crop at ${b.start} holds the right upper lobe's centre ${rul}`,
    );
  // jittered: not every crop at the same place
  assert.ok(new Set(v.boxes.map((b) => b.start.join())).size > 1);
  // a report that names no lobe falls back to organ voxels; without masks an anchored view is refused
  makeViews(hu, shape, 1000, -1, { ...cfg, localAnchor: 'report' }, new Rng(1, 0, 1), shape, mask, []);
  assert.throws(() => makeViews(hu, shape, 1000, -1, { ...cfg, localAnchor: 'report' }, new Rng(1), shape), /masks/);
});

test("the crop readout's lobe crops are fixed (the same for any seed) and un-augmented", () => {
  const cfg = { ...DEFAULT_VIEWS, ...lobeCropViews([12, 12, 12]) };
  const a = makeViews(hu, shape, 1000, -1, cfg, new Rng(1), shape, mask);
  const b = makeViews(hu, shape, 1000, -1, cfg, new Rng(2), shape, mask);
  assert.equal(a.locals.length, 5);
  assert.deepEqual(a.boxes, b.boxes);
  assert.deepEqual(a.locals, b.locals);
  // each crop is the cache itself at its centre (no flips, no intensity change, no noise)
  const boxes = lungBoxes(mask, shape);
  const c = lobeCentre(boxes, { side: 'left', lobe: 'upper' })!;
  const box = a.boxes[3]!;
  const at = c.map((v, i) => v - box.start[i]!);
  assert.equal(
    a.locals[3]![(at[0]! * 12 + at[1]!) * 12 + at[2]!],
    Math.fround(hu[(c[0] * 32 + c[1]) * 48 + c[2]]! / 1000),
  );
});

test('BatchNorm recalibration: the cumulative mean of the batches’ statistics, whatever the statistics were before', () => {
  torch.manualSeed(0);
  const bn = new torch.nn.BatchNorm3d(3);
  const xs = [0, 1, 2].map((k) =>
    torch
      .randn([2 + k, 3, 2, 3, 2])
      .mul(k + 1)
      .add(k)
      .keep(),
  );
  torch.noGrad(() => {
    bn.getBuffer('running_mean')!.copy_(torch.tensor(Float32Array.from([5, -5, 9]), [3]));
    bn.getBuffer('running_var')!.copy_(torch.tensor(Float32Array.from([40, 0.1, 3]), [3]));
  });
  bn.eval();
  const rc = new BatchNormRecalibration(bn);
  for (const x of xs) rc.step(() => bn.forward(x).dispose());
  assert.deepEqual(rc.count, { layers: 1, batches: 3 });
  assert.equal(bn.training, false, 'the layer is back in its mode');
  torch.tidy(() => {
    const perChannel = (x: torch.Tensor) => x.transpose(0, 1).reshape(3, -1);
    const means = xs.map((x) => perChannel(x).mean(1));
    const vars = xs.map((x) => perChannel(x).var(1, { correction: 1 }));
    assertClose(bn.getBuffer('running_mean')!, torch.stack(means, 0).mean(0), { atol: 1e-5 });
    assertClose(bn.getBuffer('running_var')!, torch.stack(vars, 0).mean(0), { atol: 1e-4 });
  });
  torch.dispose(xs);
});

// A cache whose label is a textured patch in the right upper lobe only: the crop readout's probe must find it.
const S: Shape3 = [24, 24, 24];
function writeCache(dir: string): void {
  mkdirSync(join(dir, 'volumes'), { recursive: true });
  const organs = new Uint8Array(24 ** 3);
  for (let i = 0; i < organs.length; i++) organs[i] = i % 24 < 12 ? 1 : 2;
  const boxes = lungBoxes(organs, S);
  const c = lobeCentre(boxes, { side: 'right', lobe: 'upper' })!;
  const lines: string[] = [];
  for (const [split, n] of [
    ['train', 60],
    ['valid', 30],
  ] as const)
    for (let i = 0; i < n; i++) {
      const rng = new Rng(5, split === 'train' ? 0 : 1, i);
      const y = rng.bool(0.5) ? 1 : 0;
      const v = Int16Array.from({ length: 24 ** 3 }, () => Math.round(-850 + rng.normal(0, 30)));
      if (y)
        for (let z = c[0] - 2; z < c[0] + 2; z++)
          for (let r = c[1] - 2; r < c[1] + 2; r++)
            for (let x = c[2] - 2; x < c[2] + 2; x++) v[(z * 24 + r) * 24 + x] = (z + r + x) % 2 ? -500 : -1000;
      const name = `${split}_${i}_a_1`;
      const file = `volumes/${name}.safetensors`;
      const [image, m] = [torch.tensor(v, S), torch.tensor(organs, S)];
      torch.saveSafetensors(join(dir, file), { image, mask: m });
      torch.dispose([image, m]);
      lines.push(
        JSON.stringify({ name, file, split, shape: S, spacing: [1, 1, 1], sourceHash: name, labels: [y], report: '' }),
      );
    }
  writeFileSync(
    join(dir, 'index.jsonl'),
    lines.map((l) => l.replace('}', ',"hasMask":true,"rescale":"none"}')).join('\n') + '\n',
  );
  const preset = { name: 'tiny-24', description: 'test', spacing: [1, 1, 1], shape: S, huWindow: [-1000, 1000] };
  writeFileSync(
    join(dir, 'cache.json'),
    JSON.stringify({ preset: { ...preset, scale: 1000, padValue: -1 }, labelNames: ['Patch'], count: lines.length }),
  );
}

class TinyEncoder extends torch.nn.Module implements VisionEncoder {
  readonly outChannels = 8;
  readonly outputStride = 1;
  private readonly conv = this.registerModule('conv', new torch.nn.Conv3d(1, 8, 3, { padding: 1 }));
  private readonly bn = this.registerModule('bn', new torch.nn.BatchNorm3d(8));
  encode(x: torch.Tensor): { featureMap: torch.Tensor; pooled: torch.Tensor } {
    return torch.tidy(() => {
      const h = this.bn.forward(this.conv.forward(x)).abs();
      return { featureMap: h, pooled: h.mean([2, 3, 4]) };
    });
  }
}

/** Test AUROC of a transfer run at crop scale (8³ lobe crops) on a fresh one-lobe-finding cache. */
async function cropAuroc(
  name: string,
  o: { mode: 'linear' | 'finetune'; epochs: number; batchSize: number; lr: number },
) {
  const cache = join(tmp, name);
  writeCache(cache);
  const makeEncoder = () => {
    torch.manualSeed(3);
    return new TinyEncoder();
  };
  const base = { cacheDir: cache, fraction: 1, splits: evalSplits(cache), patience: 20, seed: 0, workers: 1 };
  const r = await runTransfer(makeEncoder, { ...base, ...o, crop: [8, 8, 8] as Shape3 });
  return macroAuroc(r.testScores, r.testLabels).value;
}

test('crop-scale probe: lobe crops at native resolution find a finding that lives in one lobe', async () => {
  const auroc = await cropAuroc('cache', { mode: 'linear', epochs: 80, batchSize: 32, lr: 0.02 });
  assert.ok(auroc > 0.85, `crop readout AUROC ${auroc.toFixed(3)}`);
});

test('crop-scale fine-tuning: encoder and head trained on the five lobe crops find the one-lobe finding', async () => {
  const auroc = await cropAuroc('cache-finetune', { mode: 'finetune', epochs: 12, batchSize: 8, lr: 0.01 });
  assert.ok(auroc > 0.85, `crop fine-tuning AUROC ${auroc.toFixed(3)}`);
});

test('crop-CLIP (objective.clip.localWeight): each crop against its report by InfoNCE, averaged; finite differences agree', () => {
  torch.manualSeed(1);
  const base = applyOverrides(loadConfig(fixture('pretrain', 'tiny.json')), ['model.textPooling="mean"']);
  const model = buildT3dModel(base.model, [4, 4, 4], 40).to({ dtype: 'float64' });
  model.eval();
  const objective: ObjectiveConfig = {
    ...base.objective,
    clip: { weight: 0, localWeight: 1 },
    tma: { ...base.objective.tma, weight: 0 },
  };
  const ids = torch.tensor(new BigInt64Array([2n, 7n, 9n, 3n, 2n, 11n, 3n, 0n, 2n, 5n, 8n, 3n]), [3, 4]).keep();
  const mask = torch.tensor(new BigInt64Array([1n, 1n, 1n, 1n, 1n, 1n, 1n, 0n, 1n, 1n, 1n, 1n]), [3, 4]).keep();
  const g = new torch.Generator(5);
  const [x, l0, l1] = [
    [3, 1, 4, 4, 4],
    [3, 1, 2, 2, 2],
    [3, 1, 2, 2, 2],
  ].map((s) => torch.randn(s, { dtype: 'float64', generator: g }).keep());
  const batch = (local: torch.Tensor) => ({ global: x!, locals: [local, l1!], inputIds: ids, attentionMask: mask });
  torch.tidy(() => {
    const { total, parts } = t3dLoss(model, batch(l0!), objective, 0);
    const report = model.encodeReport(ids, mask).emb;
    const want = [l0!, l1!]
      .map((l) => clipLoss(model.encodeVolume(l).emb, report, model.logit_scale.value))
      .reduce((a, b) => a.add(b))
      .div(2);
    assertClose(total, want, { atol: 1e-12 });
    assert.ok(Math.abs(parts.clipLocal! - want.item()) < 1e-9);
    assert.equal(parts.clip, undefined, 'the global CLIP term is off');
  });
  const res = torch.gradcheck((local) => t3dLoss(model, batch(local), objective, 0).total, [l0!], {
    atol: 1e-6,
    rtol: 1e-4,
  });
  assert.ok(res.ok, res.worst);
  assert.throws(
    () => validateConfig(applyOverrides(base, ['objective.clip.localWeight=1', 'data.views.numLocal=0'])),
    /localWeight > 0 needs local views/,
  );
  torch.dispose([ids, mask, x!, l0!, l1!]);
  model.dispose();
});
