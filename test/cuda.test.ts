// The CUDA path: runs only where the addon was built against a CUDA libtorch and a GPU is visible (skipped
// elsewhere, CI included). The CPU is the independent reference: float64 work on the GPU must match it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/torch/index.js';
import { F, optim } from '../src/torch/index.js';
import { applyOverrides, loadConfig } from '../src/train/config.js';
import { buildT3dModel } from '../src/train/factory.js';
import { ResNet3d } from '../src/models/resnet3d.js';
import { t3dLoss, type ObjectiveConfig } from '../src/objectives/t3d.js';
import { assertClose, fixture } from './helpers.js';

const skip = torch.cuda.isAvailable() ? false : 'no CUDA device in this build or machine';
const cuda = 'cuda';

test('tensors go to a CUDA device from pinned memory and come back bit-exact, strided views included', { skip }, () => {
  torch.tidy(() => {
    const data = Float32Array.from({ length: 24 }, (_, i) => i * 0.37 - 3);
    const t = torch.tensor(data, [2, 3, 4], { device: cuda });
    assert.equal(t.device, 'cuda:0');
    assert.deepEqual(t.toTypedArray(), data);
    assert.deepEqual(t.transpose(0, 2).to('cpu').toArray(), torch.tensor(data, [2, 3, 4]).transpose(0, 2).toArray());
    const ids = torch.tensor(new BigInt64Array([5n, -2n, 9007199254740993n]), [3], { device: cuda });
    assert.deepEqual(ids.toTypedArray(), new BigInt64Array([5n, -2n, 9007199254740993n]));
    assert.equal(torch.randn([3, 3], { device: cuda }).device, 'cuda:0');
  });
});

test('a float64 T3D model (CLIP + swapped TMA) trains on CUDA step for step like on the CPU', { skip }, () => {
  const cfg = applyOverrides(loadConfig(fixture('pretrain', 'tiny.json')), ['model.textPooling="mean"']);
  const tma = { ...cfg.objective.tma, formulation: 'swapped' as const, weight: 0.5, warmupSteps: 0, queue: 0 };
  const objective: ObjectiveConfig = { ...cfg.objective, tma };
  torch.manualSeed(3);
  const cpu = buildT3dModel(cfg.model, [8, 8, 8], 40).to({ dtype: 'float64' });
  const gpu = buildT3dModel(cfg.model, [8, 8, 8], 40).to({ dtype: 'float64' });
  gpu.loadStateDict(cpu.stateDict());
  gpu.to({ device: cuda });
  // eval mode: no dropout, whose random masks differ between devices; BatchNorm then uses its running statistics
  cpu.eval();
  gpu.eval();
  const g = new torch.Generator(7);
  const batch = {
    global: torch.randn([3, 1, 8, 8, 8], { dtype: 'float64', generator: g }).keep(),
    local: torch.randn([3, 1, 4, 4, 4], { dtype: 'float64', generator: g }).keep(),
    ids: torch.tensor(new BigInt64Array([2n, 7n, 9n, 3n, 2n, 11n, 3n, 0n, 2n, 5n, 8n, 3n]), [3, 4]).keep(),
    mask: torch.tensor(new BigInt64Array([1n, 1n, 1n, 1n, 1n, 1n, 1n, 0n, 1n, 1n, 1n, 1n]), [3, 4]).keep(),
  };
  const onGpu = Object.fromEntries(Object.entries(batch).map(([k, v]) => [k, v.to(cuda).keep()])) as typeof batch;
  const train = (model: typeof cpu, b: typeof batch) => {
    const opt = new optim.AdamW(model.parameters(), { lr: 1e-2, weightDecay: 0.05 });
    const losses: number[] = [];
    for (let step = 0; step < 3; step++) {
      losses.push(
        torch.tidy(() => {
          const loss = t3dLoss(
            model,
            { global: b.global, locals: [b.local], inputIds: b.ids, attentionMask: b.mask },
            objective,
            10,
          ).total;
          loss.backward();
          return loss.item();
        }),
      );
      opt.step();
      opt.zeroGrad();
    }
    opt.dispose();
    return losses;
  };
  const lc = train(cpu, batch),
    lg = train(gpu, onGpu);
  for (let i = 0; i < 3; i++)
    assert.ok(
      Math.abs(lc[i]! - lg[i]!) < 1e-9 * Math.max(1, Math.abs(lc[i]!)),
      `step ${i}: CPU ${lc[i]}, CUDA ${lg[i]}`,
    );
  assert.notEqual(lc[0], lc[2], 'the steps changed the model');
  const back = gpu.stateDict();
  for (const [name, p] of cpu.stateDict())
    assertClose(back.get(name)!.to('cpu'), p, { atol: 1e-9, rtol: 1e-9, what: name });
  torch.dispose([...Object.values(batch), ...Object.values(onGpu)]);
  cpu.dispose();
  gpu.dispose();
});

/** A small ResNet3D classifier on CUDA and one fixed batch of 4 volumes with labels. */
function classifier(seed: number) {
  torch.manualSeed(seed);
  const model = new ResNet3d({
    depth: 10,
    widenFactor: 0.25,
    conv1Kernel: 3,
    conv1Stride: 1,
    noMaxPool: true,
    numClasses: 2,
  }).to({ device: cuda });
  const x = torch.randn([4, 1, 16, 16, 16], { device: cuda }).keep();
  const y = torch.tensor(new BigInt64Array([0n, 1n, 1n, 0n]), [4], { device: cuda }).keep();
  return { model, x, y };
}

test(
  'float16 autocast with dynamic loss scaling: an overflowing scale skips the step and backs off, then training converges',
  { skip },
  () => {
    const { model, x, y } = classifier(11);
    const opt = new optim.AdamW(model.parameters(), { lr: 1e-3 });
    const scaler = new optim.GradScaler({ initScale: 2 ** 40, growthInterval: 1000 });
    const before = model.parameters().map((p) => p.clone().keep());
    const losses: number[] = [];
    for (let step = 0; step < 40; step++) {
      const loss = torch.tidy(() => {
        const l = torch.autocast('cuda', 'float16', () => {
          const logits = model.forward(x);
          assert.equal(logits.dtype, 'float16');
          return F.crossEntropy(logits, y);
        });
        assert.equal(l.dtype, 'float32');
        scaler.scaleLoss(l).backward();
        return l.item();
      });
      const overflow = scaler.unscale(model.parameters());
      if (!overflow) opt.step();
      scaler.update(overflow);
      opt.zeroGrad();
      if (step === 0) {
        // 2^40 × a loss near log 2 overflows float16 (max 65504): the step must be skipped and the scale halved
        assert.equal(overflow, true);
        assert.equal(scaler.scale, 2 ** 39);
        model
          .parameters()
          .forEach((p, i) =>
            assertClose(p, before[i]!, { atol: 0, rtol: 0, what: 'parameters after the skipped step' }),
          );
      }
      losses.push(loss);
    }
    assert.ok(scaler.scale < 2 ** 20, `the scale backed off to a usable value (${scaler.scale})`);
    assert.ok(losses.every(Number.isFinite));
    assert.ok(losses.at(-1)! < 0.5 * losses[0]!, `4 volumes are memorised: loss ${losses[0]} → ${losses.at(-1)}`);
    torch.dispose([...before, x, y]);
    opt.dispose();
    model.dispose();
  },
);

test('bfloat16 autocast on CUDA: convolutions run in bfloat16 and stay within 2 % of float32', { skip }, () => {
  const { model, x, y } = classifier(12);
  model.eval();
  torch.tidy(() => {
    const ref = model.forward(x);
    const half = torch.autocast('cuda', 'bfloat16', () => model.forward(x));
    assert.equal(half.dtype, 'bfloat16');
    const rel = half.to('float32').sub(ref).norm().div(ref.norm()).item();
    assert.ok(rel < 2e-2, `relative error ${rel}`);
  });
  torch.dispose([x, y]);
  model.dispose();
});

test('memory: live tensors and CUDA bytes stay flat over 30 training steps', { skip }, () => {
  const { model, x, y } = classifier(13);
  const opt = new optim.AdamW(model.parameters(), { lr: 1e-3 });
  const step = () => {
    torch.tidy(() => F.crossEntropy(model.forward(x), y).backward());
    opt.step();
    opt.zeroGrad();
  };
  for (let i = 0; i < 3; i++) step(); // AdamW's moments exist from the first step on
  torch.cuda.synchronize();
  const live = torch.memory().numTensors,
    bytes = torch.cuda.memoryAllocated();
  assert.ok(bytes > 0);
  for (let i = 0; i < 30; i++) step();
  torch.cuda.synchronize();
  assert.equal(torch.memory().numTensors, live);
  assert.equal(torch.cuda.memoryAllocated(), bytes);
  assert.ok(torch.cuda.maxMemoryAllocated() > bytes, 'the peak includes the activations freed after each step');
  torch.dispose([x, y]);
  opt.dispose();
  model.dispose();
});
