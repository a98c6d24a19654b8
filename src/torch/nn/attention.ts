// nn.MultiheadAttention with PyTorch's packed in_proj parameters and masking conventions.
import { type Tensor } from '../tensor.js';
import { empty, zeros } from '../creation.js';
import * as F from '../functional.js';
import { tidy } from '../scope.js';
import { Module } from './module.js';
import { Linear } from './layers.js';
import { xavierUniform_ } from './init.js';

export interface AttentionOptions {
  /** (B, S) booleans, true = padding to ignore (key_padding_mask). */
  keyPaddingMask?: Tensor;
  /** (L, S) or (B·H, L, S): boolean true = not allowed, or an additive float mask (attn_mask). */
  attnMask?: Tensor;
  /** Return head-averaged attention weights as well. */
  needWeights?: boolean;
}

export class MultiheadAttention extends Module {
  readonly headDim: number;
  readonly outProj: Linear;

  constructor(
    readonly embedDim: number,
    readonly numHeads: number,
    readonly o: { dropout?: number; bias?: boolean; batchFirst?: boolean } = {},
  ) {
    super();
    if (embedDim % numHeads)
      throw new Error(`MultiheadAttention: embedDim ${embedDim} not divisible by numHeads ${numHeads}`);
    this.headDim = embedDim / numHeads;
    xavierUniform_(this.registerParameter('in_proj_weight', empty([3 * embedDim, embedDim]))!);
    if (o.bias ?? true) this.registerParameter('in_proj_bias', zeros([3 * embedDim]));
    this.outProj = this.registerModule('out_proj', new Linear(embedDim, embedDim, o.bias ?? true));
    if (this.outProj.bias) this.outProj.bias.zero_();
  }

  /**
   * query (B, L, E), key/value (B, S, E) when batchFirst, else sequence-first (L, B, E).
   * Returns [output, weights?] like PyTorch (weights averaged over heads, (B, L, S)).
   */
  forward(query: Tensor, key: Tensor, value: Tensor, opts: AttentionOptions = {}): [Tensor, Tensor | undefined] {
    return tidy(() => {
      const bf = this.o.batchFirst ?? false;
      const [q0, k0, v0] = bf
        ? [query, key, value]
        : [query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)];
      const [B, L, E] = q0.shape as [number, number, number];
      const S = k0.size(1);
      if (E !== this.embedDim)
        throw new Error(`MultiheadAttention: query has embedding size ${E}, expected ${this.embedDim}`);
      const [wq, wk, wv] = this.param('in_proj_weight').chunk(3, 0) as [Tensor, Tensor, Tensor];
      const bias = this.getParameter('in_proj_bias');
      const [bq, bk, bv] = bias ? (bias.chunk(3, 0) as [Tensor, Tensor, Tensor]) : [undefined, undefined, undefined];
      const H = this.numHeads,
        Dh = this.headDim;
      const heads = (x: Tensor, n: number) => x.view(B, n, H, Dh).transpose(1, 2); // (B, H, n, Dh)
      const q = heads(F.linear(q0, wq, bq), L);
      const k = heads(F.linear(k0, wk, bk), S);
      const v = heads(F.linear(v0, wv, bv), S);

      let scores = q.matmul(k.transpose(-2, -1)).mul(1 / Math.sqrt(Dh)); // (B, H, L, S)
      if (opts.attnMask) {
        const m = opts.attnMask.ndim === 3 ? opts.attnMask.view(B, H, L, S) : opts.attnMask;
        scores = m.dtype === 'bool' ? scores.maskedFill(m, -Infinity) : scores.add(m);
      }
      if (opts.keyPaddingMask) {
        if (opts.keyPaddingMask.shape.join() !== `${B},${S}`) {
          throw new Error(
            `MultiheadAttention: keyPaddingMask must be (${B}, ${S}), got [${opts.keyPaddingMask.shape.join(', ')}]`,
          );
        }
        const pad = opts.keyPaddingMask.dtype === 'bool' ? opts.keyPaddingMask : opts.keyPaddingMask.ne(0);
        scores = scores.maskedFill(pad.view(B, 1, 1, S), -Infinity);
      }
      const attn = F.dropout(scores.softmax(-1), this.o.dropout ?? 0, this.training);
      const ctx = attn.matmul(v).transpose(1, 2).reshape(B, L, E);
      const out = this.outProj.forward(ctx);
      const result = bf ? out : out.transpose(0, 1);
      return [result, opts.needWeights ? attn.mean(1) : undefined] as [Tensor, Tensor | undefined];
    });
  }
}
