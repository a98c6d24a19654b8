// `t3d demo`: a small end-to-end training run on generated volumes, printing falling loss.
// (Replaced by the T3D pre-training demo on the synthetic CT set once that exists.)
import * as torch from '../torch/index.js';
import { nn, optim, F, type Tensor } from '../torch/index.js';
import { parseOptions } from './args.js';

/** Volumes with a bright cube in the left or right half; the label says which. */
function makeBatch(batch: number, size: number, g: torch.Generator): { x: Tensor; y: Tensor } {
  return torch.tidy(() => {
    const y = torch.randint(0, 2, [batch], { generator: g });
    const half = size / 2;
    const left = torch.cat([torch.ones([1, 1, size, size, half]), torch.zeros([1, 1, size, size, half])], 4);
    const right = left.flip([4]);
    const yf = y.to('float32').view(batch, 1, 1, 1, 1);
    const signal = left.mul(yf.rsub(1)).add(right.mul(yf));
    const x = torch.randn([batch, 1, size, size, size], { generator: g }).mul(0.8).add(signal.mul(0.5));
    return { x, y };
  });
}

class TinyCNN extends nn.Module {
  readonly features = this.registerModule('features', new nn.Sequential(
    new nn.Conv3d(1, 8, 3, { padding: 1 }), new nn.BatchNorm3d(8), new nn.ReLU(),
    new nn.Conv3d(8, 16, 3, { padding: 1, stride: 2 }), new nn.BatchNorm3d(16), new nn.ReLU(),
  ));
  readonly head = this.registerModule('head', new nn.Linear(16, 2));
  forward(x: Tensor): Tensor {
    return torch.tidy(() => this.head.forward(F.adaptiveAvgPool3d(this.features.forward(x), 1).flatten(1)));
  }
}

export function runDemo(args: string[]): void {
  const o = parseOptions(args, { steps: 'number', seed: 'number' });
  const steps = (o.steps as number | undefined) ?? 60;
  const seed = (o.seed as number | undefined) ?? 0;
  torch.manualSeed(seed);
  const g = new torch.Generator(seed + 1);
  const model = new TinyCNN();
  const opt = new optim.AdamW(model.parameters(), { lr: 3e-3, weightDecay: 1e-4 });
  const sched = new optim.LRScheduler(opt, optim.warmupCosine(5, steps));
  console.log(`demo: TinyCNN (${model.numParameters()} parameters), batch 8 × 1×16³, ${steps} steps, engine libtorch ${torch.buildInfo().torchVersion}`);
  let running = 0;
  const t0 = performance.now();
  for (let step = 1; step <= steps; step++) {
    const loss = torch.tidy(() => {
      const { x, y } = makeBatch(8, 16, g);
      const l = F.crossEntropy(model.forward(x), y);
      l.backward();
      return l.item();
    });
    optim.clipGradNorm(model.parameters(), 1.0);
    opt.step();
    opt.zeroGrad();
    sched.step();
    running = step === 1 ? loss : 0.9 * running + 0.1 * loss;
    if (step % 10 === 0 || step === 1) console.log(`step ${String(step).padStart(4)}  loss ${loss.toFixed(4)}  (smoothed ${running.toFixed(4)})`);
  }
  const acc = torch.tidy(() => {
    model.eval();
    const { x, y } = makeBatch(64, 16, g);
    return model.forward(x).argmax(1).eq(y).to('float32').mean().item();
  });
  console.log(`demo: held-out accuracy ${(acc * 100).toFixed(1)} % after ${steps} steps in ${((performance.now() - t0) / 1000).toFixed(1)} s; live tensors ${torch.memory().numTensors}`);
}
