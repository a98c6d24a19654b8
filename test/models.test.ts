// Model zoo: MONAI-named ResNet3D loads PyTorch-made weights strictly and gives the same outputs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../src/torch/index.js';
import { optim, type Tensor } from '../src/torch/index.js';
import { ResNet3d, type ResNet3dConfig } from '../src/models/resnet3d.js';
import { loadConfig } from '../src/train/config.js';
import { buildT3dModel } from '../src/train/factory.js';
import { assertClose, fixture } from './helpers.js';

const { tensors } = torch.loadSafetensors(fixture('models', 'resnet.safetensors'));
const keys = JSON.parse(readFileSync(fixture('models', 'resnet.json'), 'utf8')) as Record<string, { keys: string[] }>;
const stateOf = (prefix: string) =>
  new Map(
    [...tensors]
      .filter(([k]) => k.startsWith(`${prefix}.sd.`))
      .map(([k, t]) => [k.slice(prefix.length + 4), t] as [string, Tensor]),
  );

const configs: Record<string, ResNet3dConfig> = {
  resnet10: { depth: 10, widenFactor: 8 / 64, numClasses: 3 },
  resnet50: { depth: 50, widenFactor: 2 / 64, numClasses: 3, conv1Kernel: 3, noMaxPool: true },
};

for (const [name, cfg] of Object.entries(configs))
  for (const memoryFormat of ['contiguous', 'channels-last'] as const) {
    test(`${name}, ${memoryFormat} weights: MONAI state-dict names, strict load, eval and train outputs equal PyTorch's`, () => {
      const m = new ResNet3d(cfg).to({ memoryFormat });
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
        // train-mode BatchNorm over 2 volumes of 1-2 voxels amplifies rounding: PyTorch's own channels_last_3d run of
        // this resnet50 differs from its row-major one by 3.5e-4 here
        const tol = memoryFormat === 'channels-last' ? 1e-3 : 1e-4;
        assertClose(m.forward(x), tensors.get(`${name}.out.logits_train`)!, {
          atol: tol,
          rtol: tol,
          what: 'train logits',
        });
        assertClose(m.getSubmodule('bn1')!.getBuffer('running_mean')!, tensors.get(`${name}.out.running_mean_after`)!, {
          atol: 1e-6,
          what: 'running mean',
        });
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

test('channels-last: 5-D weights restrided (one-channel ones too); saved bytes, gradients and AdamW losses as row-major', () => {
  const dir = mkdtempSync(join(tmpdir(), 't3d-layout-'));
  try {
    const build = (memoryFormat: torch.MemoryFormat) => {
      torch.manualSeed(3);
      return new ResNet3d({ depth: 10, widenFactor: 0.125, conv1Kernel: 3, conv1Stride: 2, numClasses: 2 }).to({
        memoryFormat,
      });
    };
    const rowMajor = build('contiguous'),
      channelsLast = build('channels-last');
    const conv1 = channelsLast.getSubmodule('conv1')!.getParameter('weight')!;
    assert.deepEqual(conv1.strides, [27, 1, 9, 3, 1], 'the one-channel stem weight is restrided, as PyTorch does');
    const w = channelsLast.getSubmodule('layer1')!.getSubmodule('0')!.getSubmodule('conv1')!.getParameter('weight')!;
    assert.ok(w.isContiguous('channels-last') && !w.isContiguous());
    assert.ok(
      channelsLast.getSubmodule('bn1')!.getParameter('weight')!.isContiguous(),
      '1-D parameters keep their layout',
    );
    torch.saveModule(rowMajor, join(dir, 'a.safetensors'));
    torch.saveModule(channelsLast, join(dir, 'b.safetensors'));
    assert.ok(
      readFileSync(join(dir, 'a.safetensors')).equals(readFileSync(join(dir, 'b.safetensors'))),
      'the saved state dict is the same bytes',
    );
    const x = torch.randn([4, 1, 32, 48, 48]).keep();
    const y = torch.tensor(BigInt64Array.from([0n, 1n, 1n, 0n]), [4]).keep();
    const step = (m: ResNet3d, opt: optim.AdamW) =>
      torch.tidy(() => {
        const loss = torch.F.crossEntropy(m.forward(x), y);
        loss.backward();
        opt.step();
        opt.zeroGrad();
        return loss.item();
      });
    torch.tidy(() => {
      for (const m of [rowMajor, channelsLast]) torch.F.crossEntropy(m.forward(x), y).backward();
      const gradA = new Map(rowMajor.namedParameters());
      for (const [k, p] of channelsLast.namedParameters())
        assertClose(p.grad!, gradA.get(k)!.grad!, { atol: 1e-6, rtol: 1e-3, what: `${k}.grad` });
      rowMajor.zeroGrad();
      channelsLast.zeroGrad();
    });
    // AdamW's normalised steps magnify rounding in near-zero gradients, so its trajectories are compared by loss
    const optA = new optim.AdamW(rowMajor.parameters(), { lr: 1e-3 }),
      optB = new optim.AdamW(channelsLast.parameters(), { lr: 1e-3 });
    for (let i = 0; i < 3; i++) {
      const [a, b] = [step(rowMajor, optA), step(channelsLast, optB)];
      assert.ok(Math.abs(a - b) < 1e-5, `step ${i}: loss ${a} (row-major) vs ${b} (channels-last)`);
    }
    assert.ok(w.isContiguous('channels-last'), 'AdamW keeps the layout');
    torch.tidy(() => {
      // the moments are created like the parameter (torch.zeros_like), so AdamW's fused CPU pass takes them
      assert.ok(
        torch.zerosLike(w).isContiguous('channels-last') &&
          torch.onesLike(w, { dtype: 'float64' }).isContiguous('channels-last'),
      );
      assert.deepEqual(torch.zerosLike(w, { dtype: 'float64' }).toArray().slice(0, 3), [0, 0, 0]);
      const filled = torch.fullLike(w, 2.5);
      assert.ok(filled.isContiguous('channels-last'));
      assert.deepEqual(filled.toArray().slice(0, 3), [2.5, 2.5, 2.5]);
    });
    torch.dispose([x, y]);
    optA.dispose();
    optB.dispose();
    rowMajor.dispose();
    channelsLast.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  torch.tidy(() => {
    assert.throws(
      () => torch.randn([2, 3, 4]).contiguous('channels-last'),
      /channels-last needs a 4-D or 5-D tensor, got 3-D/,
    );
    assert.throws(
      () => torch.randn([1, 2, 2, 2, 2]).contiguous('nhwc' as never),
      /memory format must be 'channels-last' or 'contiguous'/,
    );
  });
});

test('T3D parameters in registration order: vision, text, projections, temperature, then the T3D heads', () => {
  // parameter order is optimizer-state and gradient-norm order: moving a module changes training at rounding level
  const cfg = loadConfig(fixture('pretrain', 'tiny.json'));
  const model = buildT3dModel(cfg.model, [8, 16, 16], 40);
  try {
    const tops = [...new Set([...model.namedParameters()].map(([n]) => n.split('.')[0]!))];
    assert.deepEqual(tops.slice(0, 5), ['visual', 'text', 'visual_projection', 'text_projection', 'logit_scale']);
  } finally {
    model.dispose();
  }
});
