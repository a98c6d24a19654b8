// 3D Vision Transformer: timm's VisionTransformer (pre-norm blocks, CLS token, absolute position
// embeddings) with the patch embedding made a Conv3d. State-dict names are timm's:
//   patch_embed.proj.{weight,bias}      Conv3d(inChannels → C, kernel = stride = patch)
//   cls_token (1, 1, C)
//   pos_embed (1, 1 + N, C)             learnable only: the sincos table is rebuilt per input grid and
//                                       kept out of the state dict (our Module has no non-persistent
//                                       buffers; a persistent one would share timm's key with learnable
//                                       checkpoints and be silently overwritten when loading one; as it
//                                       is, that load fails strictly with an unexpected 'pos_embed')
//   blocks.N.norm1 / .attn.qkv (C → 3C) / .attn.proj / .norm2 / .mlp.fc1 (C → rC) / .mlp.fc2
//   norm                                final LayerNorm, applied to every token
// Patch tokens are ordered D, H, W (row-major over the patch grid), as flatten(2) of the conv output.
// With clsPosEmbed false (MONAI's ViT, as in M3D-CLIP) pos_embed is (1, N, C), added to the patch tokens only.
// Differences from timm: mean pooling averages the normed patch tokens (timm's 'avg' swaps `norm` for
// an `fc_norm` after pooling); position embeddings are resampled trilinearly (timm: bicubic in 2D).
import * as torch from '../torch/index.js';
import { F, nn, type Tensor } from '../torch/index.js';
import { type EncoderOutput } from './resnet3d.js';

type Triple = [number, number, number];

export interface ViT3dConfig {
  inChannels?: number;
  /** configured input size [D, H, W]; the learnable pos_embed is sized for it */
  imageSize: Triple;
  /** must divide imageSize (and every input size) axis by axis */
  patchSize: Triple | number;
  hiddenSize: number;
  depth: number;
  numHeads: number;
  mlpRatio?: number;
  qkvBias?: boolean;
  /** after the position embedding, the attention projection and in the MLP (timm's drop_rate / proj_drop) */
  dropout?: number;
  attnDropout?: number;
  /**
   * 'learnable' (default): a trained parameter, trilinearly resampled for other input sizes.
   * 'sincos': fixed 3D sin-cos table, not in the state dict (like a non-persistent buffer) and rebuilt
   * for each input grid; hiddenSize ≥ 6.
   */
  posEmbed?: 'learnable' | 'sincos';
  /**
   * true (default, timm): pos_embed (1, 1 + N, C) covers the CLS token too. false (MONAI's ViT): pos_embed
   * (1, N, C) is added to the patch tokens only and the CLS token enters without one.
   */
  clsPosEmbed?: boolean;
  /** 'mean' (default, the paper's u = mean(U)) over patch tokens, or the CLS token */
  pooling?: 'cls' | 'mean';
  layerNormEps?: number;
}

export interface ViT3dOutput extends EncoderOutput {
  /** (B, N, C) patch tokens after the final norm (CLS excluded): the local tokens */
  tokens: Tensor;
}

/** Linear with timm's ViT init: trunc_normal(std .02) weight, zero bias. */
function linear(inF: number, outF: number, bias = true): nn.Linear {
  const l = new nn.Linear(inF, outF, bias);
  nn.init.truncNormal_(l.weight, 0.02);
  l.bias?.zero_();
  return l;
}

class PatchEmbed extends nn.Module {
  readonly proj: nn.Conv3d;
  constructor(inChannels: number, dim: number, patch: Triple) {
    super();
    this.proj = this.registerModule('proj', new nn.Conv3d(inChannels, dim, patch, { stride: patch }));
    // Initialised like a Linear on the flattened kernel (MAE): xavier_uniform over (C, in·pd·ph·pw);
    // the bias keeps PyTorch's Conv default, as in MAE.
    const flat = this.proj.weight.view(dim, -1);
    nn.init.xavierUniform_(flat);
    flat.dispose();
  }
  /** (B, C, d, h, w) patch features */
  forward(x: Tensor): Tensor {
    return this.proj.forward(x);
  }
}

class Attention extends nn.Module {
  readonly qkv: nn.Linear;
  readonly proj: nn.Linear;
  constructor(
    dim: number,
    readonly numHeads: number,
    qkvBias: boolean,
    readonly attnDrop: number,
    readonly projDrop: number,
  ) {
    super();
    this.qkv = this.registerModule('qkv', linear(dim, 3 * dim, qkvBias));
    this.proj = this.registerModule('proj', linear(dim, dim));
  }
  forward(x: Tensor): Tensor {
    return torch.tidy(() => {
      const [B, N, C] = x.shape as Triple;
      const qkv = this.qkv
        .forward(x)
        .reshape(B, N, 3, this.numHeads, C / this.numHeads)
        .permute(2, 0, 3, 1, 4);
      const [q, k, v] = [0, 1, 2].map((i) => qkv.select(0, i)) as [Tensor, Tensor, Tensor]; // (B, heads, N, Dh)
      const ctx = F.scaledDotProductAttention(q, k, v, { dropoutP: this.attnDrop, training: this.training });
      return dropout(this.proj.forward(ctx.transpose(1, 2).reshape(B, N, C)), this.projDrop, this.training);
    });
  }
}

class Mlp extends nn.Module {
  readonly fc1: nn.Linear;
  readonly fc2: nn.Linear;
  constructor(
    dim: number,
    hidden: number,
    readonly drop: number,
  ) {
    super();
    this.fc1 = this.registerModule('fc1', linear(dim, hidden));
    this.fc2 = this.registerModule('fc2', linear(hidden, dim));
  }
  forward(x: Tensor): Tensor {
    return torch.tidy(() => {
      const h = dropout(this.fc1.forward(x).gelu(), this.drop, this.training);
      return dropout(this.fc2.forward(h), this.drop, this.training);
    });
  }
}

type BlockConfig = Pick<
  Required<ViT3dConfig>,
  'hiddenSize' | 'numHeads' | 'mlpRatio' | 'qkvBias' | 'dropout' | 'attnDropout' | 'layerNormEps'
>;

class Block extends nn.Module {
  readonly norm1: nn.LayerNorm;
  readonly attn: Attention;
  readonly norm2: nn.LayerNorm;
  readonly mlp: Mlp;
  constructor(c: BlockConfig) {
    super();
    this.norm1 = this.registerModule('norm1', new nn.LayerNorm(c.hiddenSize, c.layerNormEps));
    this.attn = this.registerModule(
      'attn',
      new Attention(c.hiddenSize, c.numHeads, c.qkvBias, c.attnDropout, c.dropout),
    );
    this.norm2 = this.registerModule('norm2', new nn.LayerNorm(c.hiddenSize, c.layerNormEps));
    this.mlp = this.registerModule('mlp', new Mlp(c.hiddenSize, Math.round(c.hiddenSize * c.mlpRatio), c.dropout));
  }
  forward(x: Tensor): Tensor {
    return torch.tidy(() => {
      const h = x.add(this.attn.forward(this.norm1.forward(x)));
      return h.add(this.mlp.forward(this.norm2.forward(h)));
    });
  }
}

/** Skips the op entirely at p = 0 (the default), which is every eval pass. */
const dropout = (x: Tensor, p: number, training: boolean): Tensor => (p > 0 && training ? F.dropout(x, p, true) : x);

/**
 * Fixed sin-cos table (1 + N, C) for a patch grid, CLS row zero (as MAE). Each axis gets F = ⌊C/6⌋
 * frequencies ω_f = 10000^(−f/F) laid out [sin, cos] per axis in D, H, W order (MAE's 1D formula per
 * axis); channels beyond 6F stay zero. Positions are in units of the configured grid: token j of an
 * n-token axis sits at (j + ½)·G/n − ½, the point trilinear resampling (align_corners=False) reads, so
 * a half-size local view spans the same position range as the global view, like the learnable case.
 */
function sincosPosEmbed3d(grid: Triple, configuredGrid: Triple, dim: number): Float64Array {
  const nf = Math.floor(dim / 6);
  const omega = Array.from({ length: nf }, (_, f) => 10000 ** (-f / nf));
  const pos = grid.map((n, a) => Array.from({ length: n }, (_, j) => ((j + 0.5) * configuredGrid[a]!) / n - 0.5));
  const [nd, nh, nw] = grid;
  const out = new Float64Array((1 + nd * nh * nw) * dim);
  let row = 1;
  for (let i = 0; i < nd; i++) {
    for (let j = 0; j < nh; j++) {
      for (let k = 0; k < nw; k++, row++) {
        [pos[0]![i]!, pos[1]![j]!, pos[2]![k]!].forEach((p, a) => {
          const base = row * dim + 2 * a * nf;
          for (let f = 0; f < nf; f++) {
            out[base + f] = Math.sin(p * omega[f]!);
            out[base + nf + f] = Math.cos(p * omega[f]!);
          }
        });
      }
    }
  }
  return out;
}

export class ViT3d extends nn.Module {
  readonly patchEmbed: PatchEmbed;
  readonly blocks: nn.ModuleList<Block>;
  readonly norm: nn.LayerNorm;
  readonly patchSize: Triple;
  /** patch grid at the configured image size */
  readonly grid: Triple;
  readonly outChannels: number;
  readonly config: Required<ViT3dConfig>;

  constructor(config: ViT3dConfig) {
    super();
    const c: Required<ViT3dConfig> = {
      inChannels: 1,
      mlpRatio: 4,
      qkvBias: true,
      dropout: 0,
      attnDropout: 0,
      posEmbed: 'learnable',
      clsPosEmbed: true,
      pooling: 'mean',
      layerNormEps: 1e-6,
      ...config,
    };
    this.config = c;
    const p = c.patchSize;
    this.patchSize = typeof p === 'number' ? [p, p, p] : p;
    this.grid = gridOf(c.imageSize, this.patchSize, 'imageSize');
    if (c.hiddenSize % c.numHeads)
      throw new Error(`ViT3d: hiddenSize ${c.hiddenSize} is not divisible by numHeads ${c.numHeads}`);
    const C = (this.outChannels = c.hiddenSize);
    const N = this.grid[0] * this.grid[1] * this.grid[2];

    this.patchEmbed = this.registerModule('patch_embed', new PatchEmbed(c.inChannels, C, this.patchSize));

    // DeiT / MAE: trunc_normal(std .02) for both (newer timm draws cls_token with std 1e-6).
    nn.init.truncNormal_(this.registerParameter('cls_token', torch.empty([1, 1, C]))!, 0.02);
    if (c.posEmbed === 'learnable')
      nn.init.truncNormal_(this.registerParameter('pos_embed', torch.empty([1, this.clsRows + N, C]))!, 0.02);
    else if (C < 6) throw new Error(`ViT3d: sincos position embeddings need hiddenSize ≥ 6, got ${C}`);

    this.blocks = this.registerModule('blocks', new nn.ModuleList(Array.from({ length: c.depth }, () => new Block(c))));
    this.norm = this.registerModule('norm', new nn.LayerNorm(C, c.layerNormEps));
  }

  get outputStride(): number {
    return Math.max(...this.patchSize);
  }

  /** rows of pos_embed before the patches' (the CLS token's, when it has one) */
  private get clsRows(): number {
    return this.config.clsPosEmbed ? 1 : 0;
  }

  /**
   * Position embeddings for a patch grid, resampled or rebuilt when it isn't the configured one: (1, 1 + n, C)
   * with the CLS row first, or (1, n, C) without `clsPosEmbed`.
   */
  posEmbedFor(grid: Triple, like: Tensor): Tensor {
    const C = this.outChannels;
    const lead = this.clsRows;
    if (this.config.posEmbed === 'sincos') {
      const n = grid[0] * grid[1] * grid[2];
      const opts = { dtype: like.dtype, device: like.device };
      return torch.tidy(() =>
        torch.tensor(sincosPosEmbed3d(grid, this.grid, C), [1, 1 + n, C], opts).narrow(1, 1 - lead, lead + n),
      );
    }
    const pe = this.param('pos_embed');
    if (grid.every((g, i) => g === this.grid[i])) return pe;
    return torch.tidy(() => {
      const patches = pe
        .narrow(1, lead, pe.size(1) - lead)
        .reshape(1, ...this.grid, C)
        .permute(0, 4, 1, 2, 3);
      const resized = F.interpolate(patches, grid, 'trilinear', false).flatten(2).transpose(1, 2);
      return lead ? torch.cat([pe.narrow(1, 0, 1), resized], 1) : resized;
    });
  }

  /** The token sequence (B, 1 + n, C) entering the blocks: CLS and patch tokens with their position embeddings. */
  private embed(x: Tensor): { h: Tensor; grid: Triple } {
    if (x.ndim !== 5 || x.size(1) !== this.config.inChannels) {
      throw new Error(`ViT3d: expected input (B, ${this.config.inChannels}, D, H, W), got [${x.shape.join(', ')}]`);
    }
    const grid = gridOf(x.shape.slice(2) as Triple, this.patchSize, 'input size');
    const h = torch.tidy(() => {
      const fmap = this.patchEmbed.forward(x); // (B, C, d, h, w)
      const [B, C] = fmap.shape as [number, number];
      const patches = fmap.flatten(2).transpose(1, 2); // (B, N, C)
      const cls = this.param('cls_token').expand(B, 1, C);
      const pos = this.posEmbedFor(grid, patches);
      const tokens = this.clsRows ? torch.cat([cls, patches], 1).add(pos) : torch.cat([cls, patches.add(pos)], 1);
      return dropout(tokens, this.config.dropout, this.training);
    });
    return { h, grid };
  }

  /** x (B, inChannels, D, H, W), any size divisible by the patch size. */
  encode(x: Tensor): ViT3dOutput {
    return torch.tidy(() => {
      const embedded = this.embed(x);
      const grid = embedded.grid;
      let h = embedded.h;
      const [B, , C] = h.shape as Triple;
      for (const block of this.blocks) h = block.forward(h);
      h = this.norm.forward(h);
      const tokens = h.narrow(1, 1, h.size(1) - 1);
      const pooled = this.config.pooling === 'cls' ? h.select(1, 0) : tokens.mean(1);
      return { tokens, featureMap: tokens.transpose(1, 2).reshape(B, C, ...grid), pooled };
    });
  }

  /**
   * Token maps (B, C, d, h, w) on the patch grid after the blocks at the given 1-based depths, for UNETR-style
   * decoders: block outputs before the final norm, except at the full depth, where the final norm is applied
   * (UNETR takes its intermediate states raw and its last one normed).
   */
  hiddenMaps(x: Tensor, depths: number[]): Tensor[] {
    const bad = depths.find((d) => !Number.isInteger(d) || d < 1 || d > this.blocks.length);
    if (bad !== undefined)
      throw new Error(`ViT3d.hiddenMaps: depths must be integers in 1..${this.blocks.length}, got ${bad}`);
    return torch.tidy(() => {
      const embedded = this.embed(x);
      const grid = embedded.grid;
      let h = embedded.h;
      const [B, , C] = h.shape as Triple;
      const toMap = (t: Tensor) =>
        t
          .narrow(1, 1, t.size(1) - 1)
          .transpose(1, 2)
          .reshape(B, C, ...grid);
      const byDepth = new Map<number, Tensor>();
      for (let d = 1; d <= this.blocks.length && d <= Math.max(...depths); d++) {
        h = this.blocks.at(d - 1).forward(h);
        if (depths.includes(d)) byDepth.set(d, toMap(d === this.blocks.length ? this.norm.forward(h) : h));
      }
      return depths.map((d) => byDepth.get(d)!);
    });
  }

  /** The pooled vector (B, C). */
  forward(x: Tensor): Tensor {
    return torch.tidy(() => this.encode(x).pooled);
  }
}

function gridOf(size: Triple, patch: Triple, what: string): Triple {
  if (size.length !== 3 || patch.length !== 3 || ![...size, ...patch].every((v) => Number.isInteger(v) && v > 0)) {
    throw new Error(
      `ViT3d: ${what} and patchSize must be 3 positive integers, ` +
        `got ${JSON.stringify(size)} and ${JSON.stringify(patch)}`,
    );
  }
  const bad = size.findIndex((s, i) => s % patch[i]! !== 0);
  if (bad >= 0) {
    throw new Error(
      `ViT3d: patchSize [${patch.join(', ')}] must divide the ${what} [${size.join(', ')}] ` +
        `(axis ${'DHW'[bad]}: ${size[bad]} % ${patch[bad]} ≠ 0)`,
    );
  }
  return size.map((s, i) => s / patch[i]!) as Triple;
}
