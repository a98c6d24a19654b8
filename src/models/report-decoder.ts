// Report generation head: a Transformer decoder over a vision encoder's local tokens (R2Gen / CT-CLIP report
// generation style). Tokens: embedding + learned position embedding; N post-LN layers, each exactly PyTorch's
// nn.TransformerDecoderLayer (causal self-attention, cross-attention to the visual tokens, ReLU feed-forward, with
// its attribute names, so that `layers.0.self_attn.in_proj_weight` etc. load into PyTorch); a final linear to the
// vocabulary. The visual tokens are the encoder's feature map (B, C, d, h, w) flattened to (B, N, C), projected by
// `visual_proj` and given a learned position per grid cell (`visual_pos`, N × dModel).
// Decoding is incremental: each layer's inputs at earlier positions are kept (they never change under a causal
// mask), so a new token costs one position of every layer instead of a whole forward pass.
import * as torch from '../torch/index.js';
import { nn, type Tensor } from '../torch/index.js';

export interface ReportDecoderConfig {
  vocabSize: number;
  dModel: number;
  heads: number;
  layers: number;
  /** feed-forward width (PyTorch's dim_feedforward) */
  ffn: number;
  dropout: number;
  /** position-table size: the longest token sequence, BOS and EOS included */
  maxLength: number;
  /** channels C of the encoder's feature map */
  visualDim: number;
  /** N = d·h·w cells of the encoder's feature map */
  numVisualTokens: number;
  /** BOS / EOS / padding ids: the tokenizer's [CLS], [SEP], [PAD] */
  bosId: number;
  eosId: number;
  padId: number;
}

export interface BeamSearchOptions {
  beams: number;
  /** most tokens generated (EOS included); at most (and by default) maxLength − 1 */
  maxLen?: number;
  /** α in score = Σ log p / length^α (Hugging Face's length_penalty); default 1 */
  lengthPenalty?: number;
}

/** nn.TransformerDecoderLayer(d_model, nhead, dim_feedforward, dropout, batch_first=True, norm_first=False). */
export class TransformerDecoderLayer extends nn.Module {
  readonly self_attn: nn.MultiheadAttention;
  readonly multihead_attn: nn.MultiheadAttention;
  readonly linear1: nn.Linear;
  readonly dropout: nn.Dropout;
  readonly linear2: nn.Linear;
  readonly norm1: nn.LayerNorm;
  readonly norm2: nn.LayerNorm;
  readonly norm3: nn.LayerNorm;
  readonly dropout1: nn.Dropout;
  readonly dropout2: nn.Dropout;
  readonly dropout3: nn.Dropout;

  constructor(dModel: number, heads: number, ffn: number, dropout: number, layerNormEps = 1e-5) {
    super();
    this.self_attn = this.registerModule(
      'self_attn',
      new nn.MultiheadAttention(dModel, heads, { dropout, batchFirst: true }),
    );
    this.multihead_attn = this.registerModule(
      'multihead_attn',
      new nn.MultiheadAttention(dModel, heads, { dropout, batchFirst: true }),
    );
    this.linear1 = this.registerModule('linear1', new nn.Linear(dModel, ffn));
    this.dropout = this.registerModule('dropout', new nn.Dropout(dropout));
    this.linear2 = this.registerModule('linear2', new nn.Linear(ffn, dModel));
    this.norm1 = this.registerModule('norm1', new nn.LayerNorm(dModel, layerNormEps));
    this.norm2 = this.registerModule('norm2', new nn.LayerNorm(dModel, layerNormEps));
    this.norm3 = this.registerModule('norm3', new nn.LayerNorm(dModel, layerNormEps));
    this.dropout1 = this.registerModule('dropout1', new nn.Dropout(dropout));
    this.dropout2 = this.registerModule('dropout2', new nn.Dropout(dropout));
    this.dropout3 = this.registerModule('dropout3', new nn.Dropout(dropout));
  }

  /**
   * x (B, L, D) attends to `selfKeys` (B, S, D) — x itself in a full pass, every position so far when decoding one
   * step — and to `memory` (B, N, D). attnMask: (L, S) boolean, true = blocked; keyPaddingMask: (B, S), true = pad.
   */
  forward(x: Tensor, selfKeys: Tensor, memory: Tensor, o: { attnMask?: Tensor; keyPaddingMask?: Tensor } = {}): Tensor {
    return torch.tidy(() => {
      const [sa] = this.self_attn.forward(x, selfKeys, selfKeys, {
        attnMask: o.attnMask,
        keyPaddingMask: o.keyPaddingMask,
      });
      const h1 = this.norm1.forward(x.add(this.dropout1.forward(sa)));
      const [ca] = this.multihead_attn.forward(h1, memory, memory);
      const h2 = this.norm2.forward(h1.add(this.dropout2.forward(ca)));
      const ff = this.linear2.forward(this.dropout.forward(this.linear1.forward(h2).relu()));
      return this.norm3.forward(h2.add(this.dropout3.forward(ff)));
    });
  }
}

/** Incremental decoding state: the memory and, per layer, that layer's inputs at every position so far. */
interface DecodeCache {
  memory: Tensor;
  inputs: Tensor[];
}

export class ReportDecoder extends nn.Module {
  readonly token_embedding: nn.Embedding;
  readonly position_embedding: nn.Embedding;
  readonly visual_proj: nn.Linear;
  readonly layers: nn.ModuleList<TransformerDecoderLayer>;
  readonly lm_head: nn.Linear;
  readonly embedDropout: nn.Dropout;

  constructor(readonly config: ReportDecoderConfig) {
    super();
    const c = config;
    const bad: string[] = [];
    for (const k of [
      'vocabSize',
      'dModel',
      'heads',
      'layers',
      'ffn',
      'maxLength',
      'visualDim',
      'numVisualTokens',
    ] as const) {
      if (!Number.isInteger(c[k]) || c[k] < 1) bad.push(`${k} must be a positive integer (got ${c[k]})`);
    }
    if (c.dModel % c.heads) bad.push(`dModel ${c.dModel} is not divisible by heads ${c.heads}`);
    if (!(c.dropout >= 0 && c.dropout < 1)) bad.push(`dropout must be in [0, 1) (got ${c.dropout})`);
    if (c.maxLength < 2) bad.push(`maxLength must be ≥ 2 (BOS and EOS), got ${c.maxLength}`);
    for (const k of ['bosId', 'eosId', 'padId'] as const)
      if (!(Number.isInteger(c[k]) && c[k] >= 0 && c[k] < c.vocabSize))
        bad.push(`${k} ${c[k]} is outside the vocabulary (size ${c.vocabSize})`);
    if (bad.length) throw new Error(`ReportDecoder: ${bad.join('; ')}`);
    this.token_embedding = this.registerModule('token_embedding', new nn.Embedding(c.vocabSize, c.dModel, c.padId));
    this.position_embedding = this.registerModule('position_embedding', new nn.Embedding(c.maxLength, c.dModel));
    this.visual_proj = this.registerModule('visual_proj', new nn.Linear(c.visualDim, c.dModel));
    this.registerParameter('visual_pos', torch.empty([c.numVisualTokens, c.dModel]).normal_(0, 0.02));
    this.layers = this.registerModule(
      'layers',
      new nn.ModuleList(
        Array.from({ length: c.layers }, () => new TransformerDecoderLayer(c.dModel, c.heads, c.ffn, c.dropout)),
      ),
    );
    this.lm_head = this.registerModule('lm_head', new nn.Linear(c.dModel, c.vocabSize));
    this.embedDropout = this.registerModule('embed_dropout', new nn.Dropout(c.dropout));
  }

  /** The visual tokens of a feature map: (B, C, d, h, w) → (B, d·h·w, C). */
  static visualTokens(featureMap: Tensor): Tensor {
    if (featureMap.ndim !== 5)
      throw new Error(
        `ReportDecoder.visualTokens: expected a (B, C, d, h, w) feature map, got [${featureMap.shape.join(', ')}]`,
      );
    return torch.tidy(() => featureMap.flatten(2).transpose(1, 2).contiguous());
  }

  /** Projected visual tokens with their positions: the cross-attention memory (B, N, dModel). */
  memory(visualTokens: Tensor): Tensor {
    const { numVisualTokens: N, visualDim: C } = this.config;
    if (visualTokens.ndim !== 3 || visualTokens.size(1) !== N || visualTokens.size(2) !== C) {
      throw new Error(`ReportDecoder: visual tokens must be (B, ${N}, ${C}), got [${visualTokens.shape.join(', ')}]`);
    }
    return torch.tidy(() => this.visual_proj.forward(visualTokens).add(this.param('visual_pos')));
  }

  private checkIds(inputIds: Tensor): void {
    if (inputIds.ndim !== 2)
      throw new Error(`ReportDecoder: inputIds must be (B, L), got [${inputIds.shape.join(', ')}]`);
    if (inputIds.size(1) > this.config.maxLength)
      throw new Error(`ReportDecoder: ${inputIds.size(1)} tokens exceed maxLength ${this.config.maxLength}`);
  }

  /**
   * Teacher-forced logits (B, L, V) for token ids (B, L) int64 under a causal mask. paddingMask (B, L): true at
   * padding (default: where inputIds is the pad id).
   */
  forward(visualTokens: Tensor, inputIds: Tensor, paddingMask?: Tensor): Tensor {
    this.checkIds(inputIds);
    return torch.tidy(() => {
      const L = inputIds.size(1);
      const memory = this.memory(visualTokens);
      const positions = this.position_embedding.weight.narrow(0, 0, L);
      let h = this.embedDropout.forward(this.token_embedding.forward(inputIds).add(positions));
      const causal = torch.ones([L, L], { dtype: 'bool', device: inputIds.device }).triu(1);
      const keyPaddingMask = paddingMask ?? inputIds.eq(this.config.padId);
      for (const layer of this.layers) h = layer.forward(h, h, memory, { attnMask: causal, keyPaddingMask });
      return this.lm_head.forward(h);
    });
  }

  /** Log-probabilities (B, V) of the next token after appending `tokens` (B) at position `t`; extends `cache`. */
  private step(cache: DecodeCache, tokens: Tensor, t: number): { logProbs: Tensor; cache: DecodeCache } {
    if (t >= this.config.maxLength)
      throw new Error(`ReportDecoder: position ${t} is beyond maxLength ${this.config.maxLength}`);
    return torch.tidy(() => {
      let h = this.token_embedding.forward(tokens).add(this.position_embedding.weight.select(0, t)).unsqueeze(1);
      const inputs: Tensor[] = [];
      let k = 0;
      for (const layer of this.layers) {
        const keys = t === 0 ? h : torch.cat([cache.inputs[k]!, h], 1);
        inputs.push(keys);
        h = layer.forward(h, keys, cache.memory);
        k++;
      }
      return { logProbs: this.lm_head.forward(h.squeeze(1)).logSoftmax(-1), cache: { memory: cache.memory, inputs } };
    });
  }

  /** Greedy decoding of a batch: token ids per sample, BOS and EOS excluded; at most maxLen tokens are generated
   *  (EOS included, and never more than maxLength − 1, so that BOS + tokens fit the position table). */
  greedy(visualTokens: Tensor, maxLen = this.config.maxLength - 1): number[][] {
    const B = visualTokens.size(0);
    const limit = Math.min(maxLen, this.config.maxLength - 1);
    const out: number[][] = Array.from({ length: B }, () => []);
    const done = new Array<boolean>(B).fill(false);
    torch.noGrad(() =>
      torch.tidy(() => {
        let cache: DecodeCache = { memory: this.memory(visualTokens), inputs: [] };
        let tokens = Array<number>(B).fill(this.config.bosId);
        for (let t = 0; t < limit && !done.every(Boolean); t++) {
          const ids = torch.tensor(BigInt64Array.from(tokens, BigInt), [B], { device: visualTokens.device });
          const next = this.step(cache, ids, t);
          ids.dispose();
          for (const x of cache.inputs) x.dispose();
          cache = next.cache;
          const best = torch.tidy(() => next.logProbs.argmax(-1).to({ device: 'cpu' }).toArray());
          next.logProbs.dispose();
          tokens = best.map((v, b) => {
            if (!done[b]) {
              if (v === this.config.eosId) done[b] = true;
              else out[b]!.push(v);
            }
            return done[b] ? this.config.padId : v;
          });
        }
      }),
    );
    return out;
  }

  /** Beam search per sample (Hugging Face's scoring with early stopping); ids without BOS and EOS. */
  beamSearch(visualTokens: Tensor, o: BeamSearchOptions): number[][] {
    const B = visualTokens.size(0);
    const maxLen = Math.min(o.maxLen ?? this.config.maxLength - 1, this.config.maxLength - 1);
    return Array.from({ length: B }, (_, b) =>
      torch.noGrad(() =>
        torch.tidy(() => {
          const memory = this.memory(visualTokens.narrow(0, b, 1));
          let cache: DecodeCache | undefined;
          let t = 0;
          const step = (parents: number[], tokens: number[]): Float64Array[] => {
            const K = parents.length;
            const index = torch.tensor(BigInt64Array.from(parents, BigInt), [K], { device: memory.device });
            const ids = torch.tensor(BigInt64Array.from(tokens, BigInt), [K], { device: memory.device });
            const current: DecodeCache = {
              memory: memory.expand(K, memory.size(1), memory.size(2)),
              inputs: cache ? cache.inputs.map((x) => x.indexSelect(0, index)) : [],
            };
            const next = this.step(current, ids, t++);
            if (cache) for (const x of [...cache.inputs, cache.memory]) x.dispose();
            for (const x of [...current.inputs, index, ids]) x.dispose();
            cache = next.cache;
            const V = this.config.vocabSize;
            const flat = torch.tidy(
              () => next.logProbs.to({ dtype: 'float64', device: 'cpu' }).toTypedArray() as Float64Array,
            );
            next.logProbs.dispose();
            return Array.from({ length: K }, (_, k) => flat.subarray(k * V, (k + 1) * V));
          };
          return beamSearchCore(step, { ...o, maxLen, bosId: this.config.bosId, eosId: this.config.eosId }).tokens;
        }),
      ),
    );
  }
}

/**
 * Beam search over any next-token model. `step(parents, tokens)` must return log-probabilities for each live beam,
 * where live beam i is row `parents[i]` of the previous call extended by `tokens[i]` (the first call: parents [0],
 * tokens [BOS]). As Hugging Face's BeamSearchScorer with early_stopping=True: each step keeps the best `beams`
 * continuations out of the top 2·beams candidates, a candidate ending in EOS among the top `beams` becomes a
 * hypothesis scored Σ log p / length^lengthPenalty (length = generated tokens, EOS included), and search stops once
 * `beams` hypotheses are finished; at maxLen the live beams are scored the same way. Hence beams = 1 is greedy.
 */
export function beamSearchCore(
  step: (parents: number[], tokens: number[]) => ArrayLike<number>[],
  o: BeamSearchOptions & { maxLen: number; bosId: number; eosId: number },
): { tokens: number[]; score: number; sumLogProb: number } {
  const K = o.beams,
    alpha = o.lengthPenalty ?? 1;
  if (!Number.isInteger(K) || K < 1) throw new Error(`beam search: beams must be a positive integer, got ${K}`);
  if (!Number.isInteger(o.maxLen) || o.maxLen < 1)
    throw new Error(`beam search: maxLen must be a positive integer, got ${o.maxLen}`);
  let live: { tokens: number[]; sum: number }[] = [{ tokens: [], sum: 0 }];
  let parents = [0],
    last = [o.bosId];
  const finished: { tokens: number[]; score: number; sumLogProb: number }[] = [];
  let t = 0;
  while (t < o.maxLen) {
    const rows = step(parents, last);
    t++;
    const candidates: { row: number; token: number; sum: number }[] = [];
    rows.forEach((lp, row) => {
      for (const token of topIndices(lp, 2 * K)) candidates.push({ row, token, sum: live[row]!.sum + lp[token]! });
    });
    // stable sort: ties keep (row, token) order, so beams = 1 picks what argmax picks
    candidates.sort((a, b) => b.sum - a.sum);
    const next: typeof candidates = [];
    for (const [rank, c] of candidates.slice(0, 2 * K).entries()) {
      if (c.token === o.eosId) {
        if (rank < K) finished.push({ tokens: live[c.row]!.tokens, score: c.sum / t ** alpha, sumLogProb: c.sum });
      } else {
        next.push(c);
      }
      if (next.length === K) break;
    }
    if (finished.length >= K || next.length === 0) break;
    live = next.map((c) => ({ tokens: [...live[c.row]!.tokens, c.token], sum: c.sum }));
    parents = next.map((c) => c.row);
    last = next.map((c) => c.token);
    if (t === o.maxLen)
      for (const b of live) finished.push({ tokens: b.tokens, score: b.sum / t ** alpha, sumLogProb: b.sum });
  }
  if (finished.length === 0) throw new Error('beam search: no hypothesis finished (vocabulary smaller than 2 tokens?)');
  let best = finished[0]!;
  for (const h of finished) if (h.score > best.score) best = h;
  return best;
}

/** Indices of the k largest values, largest first (ties: lower index first). */
function topIndices(values: ArrayLike<number>, k: number): number[] {
  const idx: number[] = [];
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (idx.length === k && !(v > values[idx[k - 1]!]!)) continue;
    let j = idx.length === k ? k - 1 : idx.length;
    while (j > 0 && v > values[idx[j - 1]!]!) j--;
    idx.splice(j, 0, i);
    if (idx.length > k) idx.pop();
  }
  return idx;
}
