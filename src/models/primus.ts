// COLIPRI's image tower (docs/models/colipri.md): a Primus ViT — nnU-Net's pure-transformer encoder: a Conv3d patch
// embedding (kernel = stride = patch), tokens in the conv output's (d, h, w) order, EVA blocks with a 3D rotary
// position embedding (no absolute table), SwiGLU MLPs with a LayerNorm on their hidden layer — then COLIPRI's
// projector (a 1×1×1 Conv3d to the shared width on every token) and attention pooling. Module names follow the
// release (down_projection, eva.blocks.N.{norm1, attn.{q,k,v}_proj, attn.proj, norm2, mlp.fc1_g/fc1_x/norm/fc2},
// eva.norm, projector, pooler), so its weights load by name.
import * as torch from '../torch/index.js';
import { F, nn, type Tensor } from '../torch/index.js';
import { AttentionPool } from './heads.js';
import { type VisionEncoder } from './t3d.js';

type Triple = [number, number, number];

export interface PrimusConfig {
  /** the (D, H, W) input it was trained at (the rotary grid's reference) */
  inputSize: Triple;
  /** cubic patch edge */
  patch: number;
  embedDim: number;
  depth: number;
  heads: number;
  /** SwiGLU hidden width (Primus: int(embedDim · 4 · 2/3)) */
  mlpHidden: number;
  /** the shared embedding width the projector maps to */
  outDim: number;
  poolHeads: number;
}

/** timm's RotaryEmbeddingCat on a 3D grid (in_pixels false, temperature 10000): sin and cos (N, headDim). */
function rotaryTables(grid: Triple, headDim: number): [Tensor, Tensor] {
  const ropeDim = Math.round(headDim / 1.5);
  if (ropeDim * 1.5 !== headDim || ropeDim % 4)
    throw new Error(`Primus: head width ${headDim} is not 1.5 × a multiple of 4, which its 3D rotary embedding needs`);
  const bands = ropeDim / 4;
  const n = grid[0] * grid[1] * grid[2];
  const sin = new Float32Array(n * headDim);
  const cos = new Float32Array(n * headDim);
  let i = 0;
  for (let d = 0; d < grid[0]; d++)
    for (let h = 0; h < grid[1]; h++)
      for (let w = 0; w < grid[2]; w++)
        for (const p of [d, h, w])
          for (let b = 0; b < bands; b++) {
            const angle = Math.fround(p * Math.fround(1 / Math.pow(10000, b / bands)));
            const [s, c] = [Math.sin(angle), Math.cos(angle)];
            sin[i] = sin[i + 1] = s; // each band rotates an interleaved pair
            cos[i] = cos[i + 1] = c;
            i += 2;
          }
  return [torch.tensor(sin, [n, headDim]), torch.tensor(cos, [n, headDim])];
}

/** x·cos + rot(x)·sin with interleaved pairs: rot([x0, x1, …]) = [−x1, x0, …]. */
function rotate(x: Tensor, sin: Tensor, cos: Tensor): Tensor {
  return torch.tidy(() => {
    const pairs = x.reshape(...x.shape.slice(0, -1), x.size(-1) / 2, 2);
    const rot = torch.stack([pairs.select(-1, 1).neg(), pairs.select(-1, 0)], -1).reshape(...x.shape);
    return x.mul(cos).add(rot.mul(sin));
  });
}

/**
 * the most attention scores (B·heads·rows·N) one chunk of queries may hold: 2²⁴ floats, 64 MiB. libtorch 1.13 holds
 * several copies of a chunk at once: one 13,824-token attention peaked at 7.5 GB RSS with 2²⁷, 1.4–1.9 GB with 2²⁴–2²⁵.
 */
const MAX_SCORES = 2 ** 24;

/**
 * softmax(q kᵀ/√d) v through libtorch's fused kernel where it has one (2.x: no N×N scores), in chunks of query rows
 * small enough that the explicit formula (libtorch 1.13) holds at most MAX_SCORES scores at a time: each row's softmax
 * is its own, so the chunks give the same result. At COLIPRI's 13,824 tokens × 12 heads the whole score matrix would
 * be 9.2 GB (twice that while the softmax is taken).
 */
export function chunkedAttention(q: Tensor, k: Tensor, v: Tensor, maxScores = MAX_SCORES): Tensor {
  const [B, H, N] = q.shape as Triple;
  const rows = Math.max(1, Math.floor(maxScores / (B * H * k.size(2))));
  if (rows >= N) return F.scaledDotProductAttention(q, k, v);
  return torch.tidy(() => {
    const parts: Tensor[] = [];
    for (let start = 0; start < N; start += rows)
      parts.push(F.scaledDotProductAttention(q.narrow(2, start, Math.min(rows, N - start)), k, v));
    return torch.cat(parts, 2);
  });
}

class EvaAttention extends nn.Module {
  readonly q_proj: nn.Linear;
  readonly k_proj: nn.Linear;
  readonly v_proj: nn.Linear;
  readonly proj: nn.Linear;
  constructor(
    dim: number,
    readonly heads: number,
  ) {
    super();
    this.q_proj = this.registerModule('q_proj', new nn.Linear(dim, dim));
    this.k_proj = this.registerModule('k_proj', new nn.Linear(dim, dim, false)); // EVA: no key bias
    this.v_proj = this.registerModule('v_proj', new nn.Linear(dim, dim));
    this.proj = this.registerModule('proj', new nn.Linear(dim, dim));
  }
  forward(x: Tensor, sin: Tensor, cos: Tensor): Tensor {
    return torch.tidy(() => {
      const [B, N, C] = x.shape as Triple;
      const split = (t: Tensor) => t.reshape(B, N, this.heads, C / this.heads).transpose(1, 2);
      const q = rotate(split(this.q_proj.forward(x)), sin, cos);
      const k = rotate(split(this.k_proj.forward(x)), sin, cos);
      const v = split(this.v_proj.forward(x));
      const ctx = chunkedAttention(q, k, v);
      return this.proj.forward(ctx.transpose(1, 2).reshape(B, N, C));
    });
  }
}

class SwiGlu extends nn.Module {
  readonly fc1_g: nn.Linear;
  readonly fc1_x: nn.Linear;
  readonly norm: nn.LayerNorm;
  readonly fc2: nn.Linear;
  constructor(dim: number, hidden: number) {
    super();
    this.fc1_g = this.registerModule('fc1_g', new nn.Linear(dim, hidden));
    this.fc1_x = this.registerModule('fc1_x', new nn.Linear(dim, hidden));
    this.norm = this.registerModule('norm', new nn.LayerNorm(hidden));
    this.fc2 = this.registerModule('fc2', new nn.Linear(hidden, dim));
  }
  forward(x: Tensor): Tensor {
    return torch.tidy(() =>
      this.fc2.forward(this.norm.forward(this.fc1_g.forward(x).silu().mul(this.fc1_x.forward(x)))),
    );
  }
}

class EvaBlock extends nn.Module {
  readonly norm1: nn.LayerNorm;
  readonly attn: EvaAttention;
  readonly norm2: nn.LayerNorm;
  readonly mlp: SwiGlu;
  constructor(c: PrimusConfig) {
    super();
    this.norm1 = this.registerModule('norm1', new nn.LayerNorm(c.embedDim));
    this.attn = this.registerModule('attn', new EvaAttention(c.embedDim, c.heads));
    this.norm2 = this.registerModule('norm2', new nn.LayerNorm(c.embedDim));
    this.mlp = this.registerModule('mlp', new SwiGlu(c.embedDim, c.mlpHidden));
  }
  forward(x: Tensor, sin: Tensor, cos: Tensor): Tensor {
    return torch.tidy(() => {
      const h = x.add(this.attn.forward(this.norm1.forward(x), sin, cos));
      return h.add(this.mlp.forward(this.norm2.forward(h)));
    });
  }
}

class Eva extends nn.Module {
  readonly blocks: nn.ModuleList<EvaBlock>;
  readonly norm: nn.LayerNorm;
  constructor(c: PrimusConfig) {
    super();
    this.blocks = this.registerModule(
      'blocks',
      new nn.ModuleList(Array.from({ length: c.depth }, () => new EvaBlock(c))),
    );
    this.norm = this.registerModule('norm', new nn.LayerNorm(c.embedDim));
  }
}

class PatchEmbed extends nn.Module {
  readonly proj: nn.Conv3d;
  constructor(c: PrimusConfig) {
    super();
    const p: Triple = [c.patch, c.patch, c.patch];
    this.proj = this.registerModule('proj', new nn.Conv3d(1, c.embedDim, p, { stride: p }));
  }
}

class PrimusBackbone extends nn.Module {
  readonly down_projection: PatchEmbed;
  readonly eva: Eva;
  constructor(c: PrimusConfig) {
    super();
    this.down_projection = this.registerModule('down_projection', new PatchEmbed(c));
    this.eva = this.registerModule('eva', new Eva(c));
  }
}

/**
 * COLIPRI's image encoder on this project's input: a (B, 1, D, H, W) LPS volume with the preset's [−1000, 1000] HU
 * window mapped onto [0, 1]. It reorders it into COLIPRI's SAR layout (flips H and W) and its [−1, 1] range inside.
 * featureMap: the projected tokens (B, outDim, d, h, w); pooled: their attention pool, in the shared space.
 */
export class ColipriVisionEncoder extends nn.Module implements VisionEncoder {
  readonly outChannels: number;
  readonly outputStride: number;
  readonly backbone: PrimusBackbone;
  readonly projector: nn.Conv3d;
  readonly pooler: AttentionPool;

  constructor(readonly config: PrimusConfig) {
    super();
    const c = config;
    if (c.embedDim % c.heads) throw new Error(`Primus: width ${c.embedDim} is not divisible by ${c.heads} heads`);
    this.outChannels = c.outDim;
    this.outputStride = c.patch;
    this.backbone = this.registerModule('backbone', new PrimusBackbone(c));
    this.projector = this.registerModule('projector', new nn.Conv3d(c.embedDim, c.outDim, [1, 1, 1]));
    this.pooler = this.registerModule('pooler', new AttentionPool(c.outDim, c.poolHeads));
  }

  /** the backbone's normed tokens (B, N, embedDim) and their grid */
  tokens(x: Tensor): { tokens: Tensor; grid: Triple } {
    return torch.tidy(() => {
      const sar = x.flip([3, 4]).mul(2).sub(1);
      const fmap = this.backbone.down_projection.proj.forward(sar);
      const grid = fmap.shape.slice(2) as Triple;
      const c = this.config;
      if (grid.some((g, i) => g * c.patch !== x.size(i + 2)))
        throw new Error(`COLIPRI: input [${x.shape.slice(2).join(', ')}] is not a multiple of the ${c.patch} patch`);
      const ref = c.inputSize.map((s) => s / c.patch);
      if (grid.join() !== ref.join())
        throw new Error(
          `COLIPRI: input [${x.shape.slice(2).join(', ')}] is not the [${c.inputSize.join(', ')}] it takes`,
        );
      const [sin, cos] = rotaryTables(grid, c.embedDim / c.heads);
      let h = fmap.flatten(2).transpose(1, 2);
      for (const block of this.backbone.eva.blocks) h = block.forward(h, sin, cos);
      return { tokens: this.backbone.eva.norm.forward(h), grid };
    });
  }

  encode(x: Tensor): { featureMap: Tensor; pooled: Tensor } {
    return torch.tidy(() => {
      const { tokens, grid } = this.tokens(x);
      const [B, N, C] = tokens.shape as Triple;
      const w = this.projector.weight.view(this.outChannels, C);
      const projected = F.linear(tokens, w, this.projector.bias); // the 1×1×1 conv on every token
      return {
        featureMap: projected.transpose(1, 2).reshape(B, this.outChannels, ...grid),
        pooled: this.pooler.forward(projected, torch.ones([B, N], { dtype: 'bool' })),
      };
    });
  }
}
