// Segmentation over a pre-trained encoder.
// - ResNet3D (any encoder with stage outputs): a U-Net-style decoder takes the stages as skips (the stem before
//   the max-pool, then layer1..layer4). Each decoder block upsamples the coarser map (transposed conv, kernel =
//   stride = the scale step between the two stages), concatenates the skip, and applies two 3×3×3 conv + norm +
//   ReLU; a 1×1×1 conv gives class logits, resized to the input when the stem is strided.
// - ViT3D: UNETR-style (Hatamizadeh et al. 2022). For a patch of 2^L voxels (per axis, powers of two), the token
//   maps after blocks round(depth·ℓ/L), ℓ = 1..L (UNETR's 3, 6, 9, 12 for depth 12 and patch 16) are reshaped
//   to the patch grid; map ℓ < L is brought up to 1/2^ℓ of the input by L − ℓ (transposed conv + conv) steps,
//   a conv block on the input gives the full-resolution skip, and the last (normed) map is decoded up through
//   them with the same blocks as the U-Net.
// Instance norm by default: segmentation batches are tiny. State-dict names:
//   encoder.*                                     the encoder's own (MONAI names for ResNet3D, timm's for ViT3D)
//   decoder.blocks.N.up.{weight,bias}             N = 0 is the coarsest block
//   decoder.blocks.N.conv1.weight / norm1.{weight,bias} / conv2.weight / norm2.{weight,bias}
//   decoder.head.{weight,bias}
//   UNETR only: decoder.stem.{conv1,norm1,conv2,norm2}.*, decoder.skips.M.steps.S.{up,conv,norm}.* (M = ℓ − 1)
import * as torch from '../torch/index.js';
import { F, nn, type Tensor } from '../torch/index.js';

type Triple = [number, number, number];

/** An encoder that exposes its stage outputs, finest first. */
export interface SkipEncoder extends nn.Module {
  /** channels of each stage output, finest first */
  readonly stageChannels: number[];
  /** input voxels per cell of each stage output, finest first */
  readonly stageStrides: number[];
  encodeStages(x: Tensor): Tensor[];
}

export function isSkipEncoder(m: nn.Module): m is SkipEncoder {
  const e = m as unknown as Partial<Pick<SkipEncoder, 'encodeStages' | 'stageChannels' | 'stageStrides'>>;
  return typeof e.encodeStages === 'function' && Array.isArray(e.stageChannels) && Array.isArray(e.stageStrides);
}

/** A ViT-style encoder that exposes token maps on its patch grid after chosen blocks. */
export interface TokenEncoder extends nn.Module {
  readonly patchSize: Triple;
  readonly outChannels: number;
  readonly config: { depth: number; inChannels: number };
  hiddenMaps(x: Tensor, depths: number[]): Tensor[];
}

export function isTokenEncoder(m: nn.Module): m is TokenEncoder {
  const e = m as unknown as Partial<Pick<TokenEncoder, 'hiddenMaps' | 'patchSize'>>;
  return typeof e.hiddenMaps === 'function' && Array.isArray(e.patchSize);
}

export type SegNorm = 'instance' | 'group';

export interface UNetDecoderConfig {
  /** channels of the encoder's stages, finest first (ResNet3D: stem, layer1..layer4) */
  skipChannels: number[];
  /** input voxels per cell of each stage, finest first */
  skipStrides: number[];
  numClasses: number;
  /**
   * Output channels of each decoder block, coarsest block first (one fewer than the stages). Default:
   * each block as wide as the skip it joins, capped at 256, 128, 64, 32, … so a ResNet-50's decoder stays light.
   */
  channels?: number[];
  /** 'instance' (default; GroupNorm with one channel per group, affine) or 'group' (up to 8 groups) */
  norm?: SegNorm;
}

function makeNorm(kind: SegNorm, channels: number): nn.GroupNorm {
  return new nn.GroupNorm(kind === 'instance' ? channels : [8, 4, 2, 1].find((g) => channels % g === 0)!, channels);
}

/** Two 3×3×3 conv + norm + ReLU (UNETR's input-resolution skip). */
class ConvBlock extends nn.Module {
  readonly conv1: nn.Conv3d;
  readonly norm1: nn.GroupNorm;
  readonly conv2: nn.Conv3d;
  readonly norm2: nn.GroupNorm;
  constructor(inChannels: number, outChannels: number, norm: SegNorm) {
    super();
    this.conv1 = this.registerModule('conv1', new nn.Conv3d(inChannels, outChannels, 3, { padding: 1, bias: false }));
    this.norm1 = this.registerModule('norm1', makeNorm(norm, outChannels));
    this.conv2 = this.registerModule('conv2', new nn.Conv3d(outChannels, outChannels, 3, { padding: 1, bias: false }));
    this.norm2 = this.registerModule('norm2', makeNorm(norm, outChannels));
  }
  forward(x: Tensor): Tensor {
    return torch.tidy(() =>
      this.norm2.forward(this.conv2.forward(this.norm1.forward(this.conv1.forward(x)).relu())).relu(),
    );
  }
}

/** Transposed conv (kernel = stride = scale) + 3×3×3 conv + norm + ReLU: one ×2 step of a UNETR skip path. */
class UpStep extends nn.Module {
  readonly up: nn.ConvTranspose3d;
  readonly conv: nn.Conv3d;
  readonly norm: nn.GroupNorm;
  constructor(inChannels: number, outChannels: number, scale: Triple, norm: SegNorm) {
    super();
    this.up = this.registerModule('up', new nn.ConvTranspose3d(inChannels, outChannels, scale, { stride: scale }));
    this.conv = this.registerModule('conv', new nn.Conv3d(outChannels, outChannels, 3, { padding: 1, bias: false }));
    this.norm = this.registerModule('norm', makeNorm(norm, outChannels));
  }
  forward(x: Tensor): Tensor {
    return torch.tidy(() => this.norm.forward(this.conv.forward(this.up.forward(x))).relu());
  }
}

class SkipPath extends nn.Module {
  readonly steps: nn.ModuleList<UpStep>;
  constructor(steps: UpStep[]) {
    super();
    this.steps = this.registerModule('steps', new nn.ModuleList(steps));
  }
  forward(x: Tensor): Tensor {
    return torch.tidy(() => {
      let h = x;
      for (const s of this.steps) h = s.forward(h);
      return h;
    });
  }
}

class DecoderBlock extends nn.Module {
  readonly up: nn.ConvTranspose3d;
  readonly conv1: nn.Conv3d;
  readonly norm1: nn.GroupNorm;
  readonly conv2: nn.Conv3d;
  readonly norm2: nn.GroupNorm;

  constructor(inChannels: number, skipChannels: number, outChannels: number, scale: number | Triple, norm: SegNorm) {
    super();
    this.up = this.registerModule('up', new nn.ConvTranspose3d(inChannels, outChannels, scale, { stride: scale }));
    this.conv1 = this.registerModule(
      'conv1',
      new nn.Conv3d(outChannels + skipChannels, outChannels, 3, { padding: 1, bias: false }),
    );
    this.norm1 = this.registerModule('norm1', makeNorm(norm, outChannels));
    this.conv2 = this.registerModule('conv2', new nn.Conv3d(outChannels, outChannels, 3, { padding: 1, bias: false }));
    this.norm2 = this.registerModule('norm2', makeNorm(norm, outChannels));
  }

  forward(x: Tensor, skip: Tensor): Tensor {
    return torch.tidy(() => {
      let u = this.up.forward(x);
      // Odd stage sizes (e.g. 25 → 13 → 26) leave the upsampled map a voxel off its skip: resample onto it.
      const size = skip.shape.slice(2) as Triple;
      if (u.shape.slice(2).some((s, i) => s !== size[i])) u = F.interpolate(u, size, 'trilinear');
      const h = this.norm1.forward(this.conv1.forward(torch.cat([u, skip], 1))).relu();
      return this.norm2.forward(this.conv2.forward(h)).relu();
    });
  }
}

export class UNetDecoder extends nn.Module {
  readonly blocks: nn.ModuleList<DecoderBlock>;
  readonly head: nn.Conv3d;
  readonly channels: number[];

  constructor(readonly config: UNetDecoderConfig) {
    super();
    const { skipChannels: sc, skipStrides: ss } = config;
    if (sc.length < 2 || sc.length !== ss.length) {
      throw new Error(
        `UNetDecoder: need ≥ 2 stages with one stride each, got ${sc.length} channel counts and ${ss.length} strides`,
      );
    }
    if (!Number.isInteger(config.numClasses) || config.numClasses < 2)
      throw new Error(`UNetDecoder: numClasses must be an integer ≥ 2, got ${config.numClasses}`);
    const nBlocks = sc.length - 1;
    const caps = Array.from({ length: nBlocks }, (_, j) => Math.max(8, 256 >> j));
    this.channels = config.channels ?? caps.map((cap, j) => Math.min(sc[nBlocks - 1 - j]!, cap));
    if (this.channels.length !== nBlocks || !this.channels.every((c) => Number.isInteger(c) && c > 0)) {
      throw new Error(
        `UNetDecoder: channels must be ${nBlocks} positive integers (one per block), ` +
          `got ${JSON.stringify(config.channels)}`,
      );
    }
    const blocks: DecoderBlock[] = [];
    let inC = sc[nBlocks]!;
    for (let j = 0; j < nBlocks; j++) {
      const level = nBlocks - 1 - j;
      const scale = ss[level + 1]! / ss[level]!;
      if (!Number.isInteger(scale) || scale < 1)
        throw new Error(`UNetDecoder: stage strides must grow by integer factors, got ${JSON.stringify(ss)}`);
      blocks.push(new DecoderBlock(inC, sc[level]!, this.channels[j]!, scale, config.norm ?? 'instance'));
      inC = this.channels[j]!;
    }
    this.blocks = this.registerModule('blocks', new nn.ModuleList(blocks));
    this.head = this.registerModule('head', new nn.Conv3d(inC, config.numClasses, 1));
  }

  /** stages (finest first, as encodeStages returns them) → logits (B, numClasses, ...outShape). */
  forward(stages: Tensor[], outShape: Triple): Tensor {
    if (stages.length !== this.blocks.length + 1)
      throw new Error(`UNetDecoder: expected ${this.blocks.length + 1} stage outputs, got ${stages.length}`);
    return torch.tidy(() => {
      let h = stages[stages.length - 1]!;
      for (let j = 0; j < this.blocks.length; j++) h = this.blocks.at(j).forward(h, stages[stages.length - 2 - j]!);
      const logits = this.head.forward(h);
      return logits.shape.slice(2).every((s, i) => s === outShape[i])
        ? logits
        : F.interpolate(logits, outShape, 'trilinear');
    });
  }
}

export interface UnetrDecoderConfig {
  inChannels: number;
  /** the ViT's hidden size */
  hiddenSize: number;
  /** the ViT's depth (number of blocks) */
  depth: number;
  /** the ViT's patch size; each axis a power of two ≥ 2 */
  patchSize: Triple;
  numClasses: number;
  /** channels at full resolution; ×2 per halving (UNETR's feature_size, default 16) */
  featureSize?: number;
  norm?: SegNorm;
}

const log2Int = (n: number): number => {
  const l = Math.log2(n);
  return Number.isInteger(l) ? l : NaN;
};

export class UnetrDecoder extends nn.Module {
  readonly stem: ConvBlock;
  readonly skips: nn.ModuleList<SkipPath>;
  readonly blocks: nn.ModuleList<DecoderBlock>;
  readonly head: nn.Conv3d;
  /** 1-based ViT block depths whose token maps the decoder takes, finest skip first; the last is the full depth */
  readonly depths: number[];

  constructor(readonly config: UnetrDecoderConfig) {
    super();
    const { patchSize: p, depth } = config;
    const logs = p.map(log2Int);
    if (!logs.every((l) => l >= 1))
      throw new Error(`UnetrDecoder: every patch size axis must be a power of two ≥ 2, got [${p.join(', ')}]`);
    const L = Math.max(...logs);
    const F = config.featureSize ?? 16;
    const norm = config.norm ?? 'instance';
    // per-axis downsampling of level ℓ (1/2^ℓ of the input, never coarser than the patch grid)
    const factor = (l: number): Triple => p.map((pa) => Math.min(2 ** l, pa)) as Triple;
    const step = (l: number): Triple => factor(l + 1).map((f, a) => f / factor(l)[a]!) as Triple; // level l+1 → l
    this.depths = Array.from({ length: L }, (_, k) => Math.max(1, Math.round((depth * (k + 1)) / L)));
    this.stem = this.registerModule('stem', new ConvBlock(config.inChannels, F, norm));
    const skips: SkipPath[] = [];
    for (let l = 1; l < L; l++) {
      const steps: UpStep[] = [];
      for (let m = L - 1; m >= l; m--)
        steps.push(new UpStep(m === L - 1 ? config.hiddenSize : F * 2 ** l, F * 2 ** l, step(m), norm));
      skips.push(new SkipPath(steps));
    }
    this.skips = this.registerModule('skips', new nn.ModuleList(skips));
    const blocks: DecoderBlock[] = [];
    let inC = config.hiddenSize;
    for (let l = L - 1; l >= 0; l--) {
      blocks.push(new DecoderBlock(inC, F * 2 ** l, F * 2 ** l, step(l), norm));
      inC = F * 2 ** l;
    }
    this.blocks = this.registerModule('blocks', new nn.ModuleList(blocks));
    this.head = this.registerModule('head', new nn.Conv3d(F, config.numClasses, 1));
  }

  /** x: the network input; maps: the ViT's token maps at `depths` → logits (B, numClasses, ...input size). */
  forward(x: Tensor, maps: Tensor[]): Tensor {
    if (maps.length !== this.depths.length)
      throw new Error(`UnetrDecoder: expected ${this.depths.length} token maps, got ${maps.length}`);
    return torch.tidy(() => {
      // level 0..L-1
      const skips = [this.stem.forward(x), ...maps.slice(0, -1).map((m, k) => this.skips.at(k).forward(m))];
      let h = maps[maps.length - 1]!;
      for (let j = 0; j < this.blocks.length; j++) h = this.blocks.at(j).forward(h, skips[skips.length - 1 - j]!);
      return this.head.forward(h);
    });
  }
}

export interface SegmentationNetOptions {
  numClasses: number;
  /** encoder in eval mode and outside autograd; only the decoder trains */
  frozenEncoder?: boolean;
  /** U-Net decoder settings (encoders with stage outputs) */
  decoder?: Pick<UNetDecoderConfig, 'channels' | 'norm'>;
  /** UNETR decoder settings (ViT encoders) */
  unetr?: Pick<UnetrDecoderConfig, 'featureSize' | 'norm'>;
}

/**
 * Encoder + decoder: (B, C, D, H, W) volumes → (B, numClasses, D, H, W) logits. A U-Net decoder over an
 * encoder with stage outputs (ResNet3D), a UNETR decoder over a ViT (input sizes divisible by its patch).
 */
export class SegmentationNet extends nn.Module {
  readonly decoder: UNetDecoder | UnetrDecoder;
  readonly frozenEncoder: boolean;

  constructor(
    readonly encoder: SkipEncoder | TokenEncoder,
    o: SegmentationNetOptions,
  ) {
    super();
    this.frozenEncoder = o.frozenEncoder ?? false;
    this.registerModule('encoder', encoder);
    if (isSkipEncoder(encoder)) {
      this.decoder = new UNetDecoder({
        skipChannels: encoder.stageChannels,
        skipStrides: encoder.stageStrides,
        numClasses: o.numClasses,
        ...o.decoder,
      });
    } else if (isTokenEncoder(encoder)) {
      this.decoder = new UnetrDecoder({
        inChannels: encoder.config.inChannels,
        hiddenSize: encoder.outChannels,
        depth: encoder.config.depth,
        patchSize: encoder.patchSize,
        numClasses: o.numClasses,
        ...o.unetr,
      });
    } else {
      throw new Error(
        `SegmentationNet: the encoder (${(encoder as nn.Module).constructor.name}) exposes neither stage outputs ` +
          '(encodeStages) nor token maps (hiddenMaps)',
      );
    }
    this.registerModule('decoder', this.decoder);
    if (this.frozenEncoder) encoder.freeze().eval();
  }

  /** A frozen encoder stays in eval mode (fixed norm statistics) whatever mode the decoder is put in. */
  override train(mode = true): this {
    super.train(mode);
    if (this.frozenEncoder) this.encoder.train(false);
    return this;
  }

  /** Parameters that train: the decoder's, plus the encoder's unless it is frozen. */
  trainableParameters(): { encoder: Tensor[]; decoder: Tensor[] } {
    return { encoder: this.frozenEncoder ? [] : this.encoder.parameters(), decoder: this.decoder.parameters() };
  }

  forward(x: Tensor): Tensor {
    if (x.ndim !== 5) throw new Error(`SegmentationNet: expected (B, C, D, H, W) input, got [${x.shape.join(', ')}]`);
    const size = x.shape.slice(2) as Triple;
    const encode = <T>(fn: () => T): T => (this.frozenEncoder ? torch.noGrad(fn) : fn());
    return torch.tidy(() => {
      const enc = this.encoder,
        dec = this.decoder;
      if (dec instanceof UnetrDecoder)
        return dec.forward(
          x,
          encode(() => (enc as TokenEncoder).hiddenMaps(x, dec.depths)),
        );
      return dec.forward(
        encode(() => (enc as SkipEncoder).encodeStages(x)),
        size,
      );
    });
  }
}
