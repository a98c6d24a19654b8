// 3D ResNet with MONAI's architecture and state-dict names (monai.networks.nets.ResNet): conv1, bn1,
// maxpool, layer1..4 of ResNetBlock / ResNetBottleneck (conv1, bn1, conv2, bn2[, conv3, bn3],
// downsample.0 = 1×1 conv with bias, downsample.1 = norm), fc. ResNet3D-50 is T3D's vision encoder.
import * as torch from '../torch/index.js';
import { F, nn, type Tensor } from '../torch/index.js';

export type NormKind = 'batch' | 'group' | 'instance';

export interface ResNet3dConfig {
  depth: 10 | 18 | 34 | 50;
  inChannels?: number;
  /** conv1 kernel / stride: MONAI's default is 7 / 1; 7 / 2 halves the input early, 3 / 1 keeps detail */
  conv1Kernel?: number;
  conv1Stride?: number;
  noMaxPool?: boolean;
  /** channel multiplier on [64, 128, 256, 512] */
  widenFactor?: number;
  /** MONAI uses BatchNorm; GroupNorm / InstanceNorm are options for small, mixed-size batches */
  norm?: NormKind;
  /** classifier classes; 0 = encoder only (no fc) */
  numClasses?: number;
}

const LAYERS: Record<ResNet3dConfig['depth'], { block: 'basic' | 'bottleneck'; layers: number[] }> = {
  10: { block: 'basic', layers: [1, 1, 1, 1] },
  18: { block: 'basic', layers: [2, 2, 2, 2] },
  34: { block: 'basic', layers: [3, 4, 6, 3] },
  50: { block: 'bottleneck', layers: [3, 4, 6, 3] },
};

function makeNorm(kind: NormKind, channels: number): nn.Module & nn.Layer {
  if (kind === 'group')
    return new nn.GroupNorm(
      [32, 16, 8, 4, 2, 1].find((g) => channels % g === 0)!,
      channels,
    );
  if (kind === 'instance') return new nn.GroupNorm(channels, channels);
  return new nn.BatchNorm3d(channels);
}

/** MONAI's Conv3d init: Kaiming-normal, fan_out, ReLU gain. */
function conv(inC: number, outC: number, k: number, stride: number, bias = false): nn.Conv3d {
  const c = new nn.Conv3d(inC, outC, k, { stride, padding: Math.floor(k / 2), bias });
  nn.init.kaimingNormal_(c.weight, { mode: 'fan_out', nonlinearity: 'relu' });
  return c;
}

/** One residual block (basic, or bottleneck with expansion 4); also the bottleneck of Merlin's I3D ResNet-152. */
export class Block extends nn.Module {
  readonly conv1: nn.Conv3d;
  readonly bn1: nn.Module & nn.Layer;
  readonly conv2: nn.Conv3d;
  readonly bn2: nn.Module & nn.Layer;
  readonly conv3?: nn.Conv3d;
  readonly bn3?: nn.Module & nn.Layer;
  readonly downsample?: nn.Sequential;

  constructor(
    inPlanes: number,
    planes: number,
    stride: number,
    bottleneck: boolean,
    norm: NormKind,
    downsample: boolean,
    /** MONAI's 1×1 shortcut conv has a bias; torchvision's (and the I3D inflations of it) has none */
    downsampleBias = true,
  ) {
    super();
    const out = bottleneck ? planes * 4 : planes;
    if (bottleneck) {
      this.conv1 = this.registerModule('conv1', conv(inPlanes, planes, 1, 1));
      this.bn1 = this.registerModule('bn1', makeNorm(norm, planes));
      this.conv2 = this.registerModule('conv2', conv(planes, planes, 3, stride));
      this.bn2 = this.registerModule('bn2', makeNorm(norm, planes));
      this.conv3 = this.registerModule('conv3', conv(planes, out, 1, 1));
      this.bn3 = this.registerModule('bn3', makeNorm(norm, out));
    } else {
      this.conv1 = this.registerModule('conv1', conv(inPlanes, planes, 3, stride));
      this.bn1 = this.registerModule('bn1', makeNorm(norm, planes));
      this.conv2 = this.registerModule('conv2', conv(planes, planes, 3, 1));
      this.bn2 = this.registerModule('bn2', makeNorm(norm, planes));
    }
    if (downsample)
      this.downsample = this.registerModule(
        'downsample',
        new nn.Sequential(conv(inPlanes, out, 1, stride, downsampleBias), makeNorm(norm, out)),
      );
  }

  forward(x: Tensor): Tensor {
    return torch.tidy(() => {
      // in place, as MONAI's: norm layers' and add's backward passes do not read their outputs
      let h = this.bn2.forward(this.conv2.forward(this.bn1.forward(this.conv1.forward(x)).relu_()));
      if (this.conv3 && this.bn3) h = this.bn3.forward(this.conv3.forward(h.relu_()));
      return h.addRecorded_(this.downsample ? this.downsample.forward(x) : x).relu_();
    });
  }
}

export interface EncoderOutput {
  /** (B, C, d, h, w) last feature map: the local tokens */
  featureMap: Tensor;
  /** (B, C) global average */
  pooled: Tensor;
}

export class ResNet3d extends nn.Module {
  readonly conv1: nn.Conv3d;
  readonly bn1: nn.Module & nn.Layer;
  readonly layers: nn.Sequential[] = [];
  readonly fc?: nn.Linear;
  readonly outChannels: number;
  /** channels of encodeStages' outputs: the stem, then layer1..layer4 */
  readonly stageChannels: number[];

  constructor(readonly config: ResNet3dConfig) {
    super();
    const spec = LAYERS[config.depth];
    if (!spec) throw new Error(`ResNet3d: depth must be one of 10, 18, 34, 50, got ${String(config.depth)}`);
    const widen = config.widenFactor ?? 1;
    const planes = [64, 128, 256, 512].map((p) => Math.round(p * widen));
    const norm = config.norm ?? 'batch';
    const bottleneck = spec.block === 'bottleneck';
    const k = config.conv1Kernel ?? 7;
    let inPlanes = planes[0]!;
    this.conv1 = this.registerModule('conv1', conv(config.inChannels ?? 1, inPlanes, k, config.conv1Stride ?? 1));
    this.bn1 = this.registerModule('bn1', makeNorm(norm, inPlanes));
    this.stageChannels = [inPlanes];
    spec.layers.forEach((n, li) => {
      const blocks: Block[] = [];
      for (let b = 0; b < n; b++) {
        const stride = b === 0 && li > 0 ? 2 : 1;
        const out = bottleneck ? planes[li]! * 4 : planes[li]!;
        blocks.push(
          new Block(inPlanes, planes[li]!, stride, bottleneck, norm, b === 0 && (stride !== 1 || inPlanes !== out)),
        );
        inPlanes = out;
      }
      this.layers.push(this.registerModule(`layer${li + 1}`, new nn.Sequential(...blocks)));
      this.stageChannels.push(inPlanes);
    });
    this.outChannels = inPlanes;
    if (config.numClasses) {
      this.fc = this.registerModule('fc', new nn.Linear(inPlanes, config.numClasses));
      this.fc.bias!.zero_();
    }
  }

  /** conv1 stride × max-pool × three stride-2 stages */
  get outputStride(): number {
    return (this.config.conv1Stride ?? 1) * (this.config.noMaxPool ? 1 : 2) * 8;
  }

  /** Input voxels per cell of each encodeStages output (stem, layer1..layer4). */
  get stageStrides(): number[] {
    const stem = this.config.conv1Stride ?? 1;
    const l1 = stem * (this.config.noMaxPool ? 1 : 2);
    return [stem, l1, l1 * 2, l1 * 4, l1 * 8];
  }

  /**
   * The feature maps a U-Net decoder takes as skips: the stem (after conv1, bn1, ReLU; before the max-pool),
   * then the outputs of layer1..layer4 (the last one is encode()'s featureMap).
   */
  encodeStages(x: Tensor): Tensor[] {
    return torch.tidy(() => {
      const stem = this.bn1.forward(this.conv1.forward(x)).relu_();
      const out = [stem];
      let h = this.config.noMaxPool ? stem : F.maxPool3d(stem, 3, { stride: 2, padding: 1 });
      for (const layer of this.layers) {
        h = layer.forward(h);
        out.push(h);
      }
      return out;
    });
  }

  /** Feature map and pooled vector (no classifier). */
  encode(x: Tensor): EncoderOutput {
    return torch.tidy(() => {
      let h = this.bn1.forward(this.conv1.forward(x)).relu_();
      if (!this.config.noMaxPool) h = F.maxPool3d(h, 3, { stride: 2, padding: 1 });
      for (const layer of this.layers) h = layer.forward(h);
      return { featureMap: h, pooled: h.mean([2, 3, 4]) };
    });
  }

  /** MONAI's forward: logits when numClasses > 0, else the pooled features. */
  forward(x: Tensor): Tensor {
    return torch.tidy(() => {
      const { pooled } = this.encode(x);
      return this.fc ? this.fc.forward(pooled) : pooled;
    });
  }
}
