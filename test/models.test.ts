// Model zoo: MONAI-named ResNet3D loads PyTorch-made weights strictly and gives the same outputs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as torch from '../src/torch/index.js';
import { type Tensor } from '../src/torch/index.js';
import { ResNet3d, type ResNet3dConfig } from '../src/models/resnet3d.js';
import { assertClose, fixture } from './helpers.js';

const { tensors } = torch.loadSafetensors(fixture('models', 'resnet.safetensors'));
const keys = JSON.parse(readFileSync(fixture('models', 'resnet.json'), 'utf8')) as Record<string, { keys: string[] }>;
const stateOf = (prefix: string) => new Map([...tensors].filter(([k]) => k.startsWith(`${prefix}.sd.`)).map(([k, t]) => [k.slice(prefix.length + 4), t] as [string, Tensor]));

const configs: Record<string, ResNet3dConfig> = {
  resnet10: { depth: 10, widenFactor: 8 / 64, numClasses: 3 },
  resnet50: { depth: 50, widenFactor: 2 / 64, numClasses: 3, conv1Kernel: 3, noMaxPool: true },
};

for (const [name, cfg] of Object.entries(configs)) {
  test(`${name}: MONAI state-dict names, strict load, eval and train outputs equal PyTorch's`, () => {
    const m = new ResNet3d(cfg);
    assert.deepEqual([...m.stateDict().keys()].sort(), [...keys[name]!.keys].sort());
    m.loadStateDict(stateOf(name));
    m.eval();
    torch.tidy(() => {
      const x = tensors.get('input')!;
      const { featureMap, pooled } = m.encode(x);
      assertClose(featureMap, tensors.get(`${name}.out.features`)!, { atol: 1e-5, rtol: 1e-4, what: 'features' });
      assert.deepEqual(pooled.shape, [2, m.outChannels]);
      assertClose(m.forward(x), tensors.get(`${name}.out.logits`)!, { atol: 1e-5, rtol: 1e-4, what: 'logits' });
      m.train();
      assertClose(m.forward(x), tensors.get(`${name}.out.logits_train`)!, { atol: 1e-4, rtol: 1e-4, what: 'train logits' });
      assertClose(m.getSubmodule('bn1')!.getBuffer('running_mean')!, tensors.get(`${name}.out.running_mean_after`)!, { atol: 1e-6, what: 'running mean' });
    });
    m.dispose();
  });
}

test('ResNet3d options: conv1 stride 2, GroupNorm, widen; bad depth is a clear error', () => {
  torch.tidy(() => {
    const m = new ResNet3d({ depth: 18, widenFactor: 0.125, conv1Stride: 2, norm: 'group' });
    const { featureMap, pooled } = m.encode(torch.randn([1, 1, 32, 32, 32]));
    assert.deepEqual(featureMap.shape, [1, 64, 1, 1, 1]);
    assert.deepEqual(pooled.shape, [1, 64]);
    assert.ok([...m.stateDict().keys()].includes('layer1.0.bn1.weight'));
    assert.ok(![...m.stateDict().keys()].some((k) => k.includes('running_mean')), 'GroupNorm has no running stats');
    m.dispose();
  });
  assert.throws(() => new ResNet3d({ depth: 101 as never }), /depth must be one of 10, 18, 34, 50/);
});
