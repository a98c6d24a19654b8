// Small 3D models for engine benchmarks only (the real encoders live in src/models). Their Python
// twins are in engine_bench.py; the two must stay layer-for-layer identical so step times compare.
import * as torch from '../src/torch/index.js';
import { F, nn, type Tensor } from '../src/torch/index.js';

class BasicBlock extends nn.Module {
  readonly conv1: nn.Conv3d;
  readonly bn1: nn.BatchNorm3d;
  readonly conv2: nn.Conv3d;
  readonly bn2: nn.BatchNorm3d;
  readonly downsample?: nn.Sequential;
  constructor(inC: number, outC: number, stride: number) {
    super();
    this.conv1 = this.registerModule('conv1', new nn.Conv3d(inC, outC, 3, { stride, padding: 1, bias: false }));
    this.bn1 = this.registerModule('bn1', new nn.BatchNorm3d(outC));
    this.conv2 = this.registerModule('conv2', new nn.Conv3d(outC, outC, 3, { padding: 1, bias: false }));
    this.bn2 = this.registerModule('bn2', new nn.BatchNorm3d(outC));
    if (stride !== 1 || inC !== outC) {
      this.downsample = this.registerModule(
        'downsample',
        new nn.Sequential(new nn.Conv3d(inC, outC, 1, { stride }), new nn.BatchNorm3d(outC)),
      );
    }
  }
  forward(x: Tensor): Tensor {
    const h = this.bn2.forward(this.conv2.forward(this.bn1.forward(this.conv1.forward(x)).relu()));
    return h.add(this.downsample ? this.downsample.forward(x) : x).relu();
  }
}

export class SmallResNet3d extends nn.Module {
  readonly conv1 = this.registerModule('conv1', new nn.Conv3d(1, 16, 3, { padding: 1, bias: false }));
  readonly bn1 = this.registerModule('bn1', new nn.BatchNorm3d(16));
  readonly layers = this.registerModule(
    'layers',
    new nn.ModuleList([
      new BasicBlock(16, 16, 1),
      new BasicBlock(16, 32, 2),
      new BasicBlock(32, 64, 2),
      new BasicBlock(64, 128, 2),
    ]),
  );
  readonly fc = this.registerModule('fc', new nn.Linear(128, 10));
  forward(x: Tensor): Tensor {
    let h = F.maxPool3d(this.bn1.forward(this.conv1.forward(x)).relu(), 3, { stride: 2, padding: 1 });
    for (const block of this.layers) h = block.forward(h);
    return this.fc.forward(F.adaptiveAvgPool3d(h, 1).flatten(1));
  }
}

class EncoderBlock extends nn.Module {
  readonly norm1: nn.LayerNorm;
  readonly attn: nn.MultiheadAttention;
  readonly norm2: nn.LayerNorm;
  readonly fc1: nn.Linear;
  readonly fc2: nn.Linear;
  constructor(dim: number, heads: number) {
    super();
    this.norm1 = this.registerModule('norm1', new nn.LayerNorm(dim));
    this.attn = this.registerModule('attn', new nn.MultiheadAttention(dim, heads, { batchFirst: true }));
    this.norm2 = this.registerModule('norm2', new nn.LayerNorm(dim));
    this.fc1 = this.registerModule('fc1', new nn.Linear(dim, 4 * dim));
    this.fc2 = this.registerModule('fc2', new nn.Linear(4 * dim, dim));
  }
  forward(x: Tensor): Tensor {
    const n = this.norm1.forward(x);
    const h = x.add(this.attn.forward(n, n, n)[0]);
    return h.add(this.fc2.forward(this.fc1.forward(this.norm2.forward(h)).gelu()));
  }
}

export class SmallViT3d extends nn.Module {
  readonly patch = this.registerModule('patch', new nn.Conv3d(1, 128, 8, { stride: 8 }));
  readonly blocks = this.registerModule(
    'blocks',
    new nn.ModuleList(Array.from({ length: 4 }, () => new EncoderBlock(128, 4))),
  );
  readonly norm = this.registerModule('norm', new nn.LayerNorm(128));
  readonly head = this.registerModule('head', new nn.Linear(128, 10));
  constructor() {
    super();
    this.registerParameter('pos', torch.randn([1, 64, 128]).mul(0.02));
  }
  forward(x: Tensor): Tensor {
    let h = this.patch.forward(x).flatten(2).transpose(1, 2).add(this.getParameter('pos')!);
    for (const b of this.blocks) h = b.forward(h);
    return this.head.forward(this.norm.forward(h).mean(1));
  }
}
