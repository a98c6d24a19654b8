// Merlin's image encoder: parity with a PyTorch reference written from its description, loaded from a real
// torch.save .pt in the released key layout (scripts/fixtures/make_merlin_fixtures.py); the full-size model's key
// names and shapes; the LPS → RAS input layout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/torch/index.js';
import { type Tensor } from '../src/torch/index.js';
import { loadTorchPt } from '../src/io/torch-pt/load.js';
import { MERLIN_RESNET152, MerlinImageEncoder, fromLps } from '../src/models/merlin.js';
import { loadMerlinImageEncoder } from '../src/train/merlin-load.js';
import { assertClose, fixture } from './helpers.js';

test('the tiny Merlin .pt loads and reproduces the reference features, embedding and logits (≤ 1e-4)', () => {
  const { encoder, config, skipped } = loadMerlinImageEncoder(fixture('merlin', 'merlin_tiny.pt'));
  assert.deepEqual(config, { layers: [2, 2, 3, 2], width: 2, embedDim: 8, classes: 6 });
  assert.deepEqual(skipped.sort(), ['encode_text.linear_layer.bias', 'encode_text.linear_layer.weight', 'logit_scale']);
  const io = loadTorchPt(fixture('merlin', 'merlin_io.pt'));
  const ref = io.root as Record<string, Tensor>;
  const out = torch.noGrad(() => encoder.forward(ref.input!));
  assertClose(out.features, ref.features!, { atol: 1e-4, rtol: 0, what: 'features' });
  assertClose(out.embedding, ref.embedding!, { atol: 1e-4, rtol: 0, what: 'embedding' });
  assertClose(out.logits, ref.logits!, { atol: 1e-4, rtol: 0, what: 'logits' });
  // the check can fail: the same weights in training mode (batch statistics) give other features
  encoder.train();
  const trained = torch.noGrad(() => encoder.forward(ref.input!));
  assert.ok(trained.features.sub(ref.features!).abs().max().item() > 1e-3, 'train-mode output should differ');
  // the five-year checkpoint's layout (bare keys) loads to the same model
  const bare = loadMerlinImageEncoder(fixture('merlin', 'merlin_tiny_bare.pt'));
  assert.deepEqual(bare.skipped, []);
  const again = torch.noGrad(() => bare.encoder.forward(ref.input!));
  assertClose(again.embedding, ref.embedding!, { atol: 1e-4, rtol: 0, what: 'embedding (bare keys)' });
  torch.dispose([out, trained, again, io.tensors]);
  encoder.dispose();
  bare.encoder.dispose();
});

test('the full-size encoder has ResNet-152 inflated key names and shapes, with no shortcut bias', () => {
  const enc = new MerlinImageEncoder(MERLIN_RESNET152);
  const sd = enc.stateDict();
  const shape = (k: string) => sd.get(`i3_resnet.${k}`)?.shape;
  assert.deepEqual(shape('conv1.weight'), [64, 3, 3, 7, 7]);
  assert.deepEqual(shape('layer1.0.downsample.0.weight'), [256, 64, 1, 1, 1]);
  assert.deepEqual(shape('layer2.7.conv2.weight'), [128, 128, 3, 3, 3]);
  assert.deepEqual(shape('layer3.35.conv3.weight'), [1024, 256, 1, 1, 1]);
  assert.deepEqual(shape('layer4.2.bn3.running_var'), [2048]);
  assert.deepEqual(shape('classifier.weight'), [1692, 2048, 1, 1, 1]);
  assert.deepEqual(shape('contrastive_head.bias'), [512]);
  assert.equal(shape('layer3.36.conv1.weight'), undefined);
  assert.ok(![...sd.keys()].some((k) => k.includes('downsample.0.bias') || /conv\d\.bias/.test(k)));
  const blocks = [...sd.keys()].filter((k) => k.endsWith('.conv1.weight') && k.includes('layer')).length;
  assert.equal(blocks, 3 + 8 + 36 + 3);
  // the PyTorch reference at full size (make_merlin_fixtures.py with ResNet-152's sizes) counts the same
  assert.equal(
    enc.parameters().reduce((n, p) => n + p.numel, 0),
    121_882_204,
  );
  enc.dispose();
});

test('a .pt that is not Merlin is refused naming the file; fromLps maps LPS columns/rows/slices to RAS X/Y/Z', () => {
  assert.throws(() => loadMerlinImageEncoder(fixture('torch-pt', 'tensors.pt')), /tensors\.pt: .*not a Merlin/);
  // (1, 1, D=2, H=3, W=4): value = 100·d + 10·h + w
  const vals: number[] = [];
  for (let d = 0; d < 2; d++) for (let h = 0; h < 3; h++) for (let w = 0; w < 4; w++) vals.push(100 * d + 10 * h + w);
  const lps = torch.tensor(vals, [1, 1, 2, 3, 4]);
  const ras = fromLps(lps);
  assert.deepEqual(ras.shape, [1, 1, 4, 3, 2]);
  // X = 0 is the rightmost column (w = 3), Y = 0 the most anterior row (h = 2), Z = d
  const at = (x: number, y: number, z: number) => ras.toArray()[(x * 3 + y) * 2 + z];
  assert.equal(at(0, 0, 0), 23);
  assert.equal(at(3, 2, 1), 100);
  assert.equal(at(1, 0, 1), 122);
  torch.dispose([lps, ras]);
});
