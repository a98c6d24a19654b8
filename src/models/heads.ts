// Heads on top of the encoders (docs/ARCHITECTURE.md §4): projections into the shared embedding space, the
// text-informed cross-attention fusion of local tokens, and the TMA prototypes.
import * as torch from '../torch/index.js';
import { F, nn, type Tensor } from '../torch/index.js';

/**
 * Linear (without bias unless `bias`, as CLIP's), or a 2-layer MLP (Linear-GELU-Linear) when hidden > 0. Names: `0`,
 * `2` as in nn.Sequential.
 */
export function projectionHead(inDim: number, outDim: number, hidden = 0, bias = false): nn.Module & nn.Layer {
  return hidden > 0
    ? new nn.Sequential(new nn.Linear(inDim, hidden), new nn.GELU(), new nn.Linear(hidden, outDim))
    : new nn.Linear(inDim, outDim, bias);
}

/**
 * Ũ = LN(U' + MHA(q = U', k = v = T')) with U' = proj_u(U), T' = proj_t(T); h = normalize(proj_h(mean Ũ)).
 * Without text (the "TMA without text" ablation) the attention is skipped: Ũ = LN(U').
 */
export class TextInformedFusion extends nn.Module {
  readonly proj_u: nn.Linear;
  readonly proj_t: nn.Linear;
  readonly attn: nn.MultiheadAttention;
  readonly norm: nn.LayerNorm;
  readonly proj_h: nn.Module & nn.Layer;

  constructor(
    visionDim: number,
    textDim: number,
    readonly dim: number,
    outDim: number,
    heads = 8,
  ) {
    super();
    this.proj_u = this.registerModule('proj_u', new nn.Linear(visionDim, dim));
    this.proj_t = this.registerModule('proj_t', new nn.Linear(textDim, dim));
    this.attn = this.registerModule('attn', new nn.MultiheadAttention(dim, heads, { batchFirst: true }));
    this.norm = this.registerModule('norm', new nn.LayerNorm(dim));
    this.proj_h = this.registerModule('proj_h', projectionHead(dim, outDim, dim));
  }

  /**
   * tokens (B, N, visionDim); text (B, L, textDim) with paddingMask (B, L) true at padding, or undefined.
   * Returns normalised view embeddings h (B, outDim).
   */
  forward(tokens: Tensor, text?: { tokens: Tensor; paddingMask: Tensor }): Tensor {
    return this.forwardViews(tokens, 1, text);
  }

  /**
   * `views` views of each volume at once: tokens (views·B, N, visionDim) view-major (as the encoder returns a
   * concatenation of views), text (B, L, textDim) once per volume. Each volume's views attend to its report
   * together, as one query sequence: attention is per query, so this equals one view at a time against the report
   * repeated, while the report is projected once instead of once per view. Returns h (views·B, outDim), view-major.
   */
  forwardViews(tokens: Tensor, views: number, text?: { tokens: Tensor; paddingMask: Tensor }): Tensor {
    return torch.tidy(() => {
      const [VB, N, C] = tokens.shape as [number, number, number];
      const B = VB / views;
      if (!Number.isInteger(B)) throw new Error(`fusion: ${VB} token rows are not ${views} views of equal batches`);
      const grouped =
        views === 1
          ? tokens
          : tokens
              .reshape(views, B, N, C)
              .transpose(0, 1)
              .reshape(B, views * N, C);
      const u = this.proj_u.forward(grouped);
      let fused = u;
      if (text) {
        const t = this.proj_t.forward(text.tokens);
        fused = u.add(this.attn.forward(u, t, t, { keyPaddingMask: text.paddingMask })[0]);
      }
      const pooled = this.norm.forward(fused).reshape(B, views, N, this.dim).mean(2);
      const h = F.normalize(this.proj_h.forward(pooled), -1);
      return views === 1 ? h.reshape(B, -1) : h.transpose(0, 1).reshape(views * B, -1);
    });
  }
}

/** K learnable prototypes (K, dim), renormalised to unit length before each use (SwAV). */
export class Prototypes extends nn.Module {
  constructor(
    readonly count: number,
    readonly dim: number,
  ) {
    super();
    const w = this.registerParameter('weight', torch.empty([count, dim]))!;
    nn.init.normal_(w, 0, 1);
    this.normalize_();
  }
  get weight(): Tensor {
    return this.getParameter('weight')!;
  }
  /** In place, outside autograd. */
  normalize_(): void {
    torch.noGrad(() =>
      torch.tidy(() => {
        this.weight.copy_(F.normalize(this.weight, 1));
      }),
    );
  }
  /** scores (B, K) = emb · Cᵀ */
  scores(emb: Tensor): Tensor {
    return emb.matmul(this.weight.T);
  }
}

/** CLIP's learnable temperature, stored as log(scale) (open_clip: `logit_scale`), initialised to log(1/0.07). */
export class LogitScale extends nn.Module {
  constructor(init = Math.log(1 / 0.07)) {
    super();
    this.registerParameter('logit_scale', torch.scalar(init));
  }
  get value(): Tensor {
    return this.getParameter('logit_scale')!;
  }
}

/**
 * Attention pooling (COLIPRI's, docs/models/colipri.md): the mean of the kept tokens asks one multi-head attention
 * over the tokens, with the padding masked out of both the mean and the keys. Module name `attention`.
 */
export class AttentionPool extends nn.Module {
  readonly attention: nn.MultiheadAttention;
  constructor(dim: number, heads: number) {
    super();
    this.attention = this.registerModule('attention', new nn.MultiheadAttention(dim, heads, { batchFirst: true }));
  }
  /** tokens (B, N, C), keep (B, N) true at the tokens to pool → (B, C) */
  forward(tokens: Tensor, keep: Tensor): Tensor {
    return torch.tidy(() => {
      const k = keep.to(tokens.dtype).unsqueeze(2);
      const query = tokens.mul(k).sum(1, true).div(k.sum(1, true).clampMin(1));
      const [out] = this.attention.forward(query, tokens, tokens, { keyPaddingMask: keep.logicalNot() });
      return out.squeeze(1);
    });
  }
}
