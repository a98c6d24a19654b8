// BERT with Hugging Face's masked-language-model head (transformers' BertForMaskedLM), so a checkpoint written here
// has HF's keys — bert.* (no pooler), cls.predictions.transform.{dense,LayerNorm}, cls.predictions.bias — and the
// decoder's weight tied to the word embeddings (not stored, as save_pretrained does).
import * as torch from '../torch/index.js';
import { F, nn, type Tensor } from '../torch/index.js';
import { BertModel, initBertWeights, type BertConfig } from './bert.js';

class BertPredictionHeadTransform extends nn.Module {
  readonly dense: nn.Linear;
  readonly LayerNorm: nn.LayerNorm;

  constructor(private readonly c: BertConfig) {
    super();
    this.dense = this.registerModule('dense', new nn.Linear(c.hidden_size, c.hidden_size));
    this.LayerNorm = this.registerModule('LayerNorm', new nn.LayerNorm(c.hidden_size, c.layer_norm_eps));
  }

  forward(x: Tensor): Tensor {
    return torch.tidy(() =>
      this.LayerNorm.forward(this.dense.forward(x).gelu(this.c.hidden_act === 'gelu' ? 'none' : 'tanh')),
    );
  }
}

class BertLMPredictionHead extends nn.Module {
  readonly transform: BertPredictionHeadTransform;
  readonly bias: Tensor;

  constructor(
    c: BertConfig,
    private readonly decoderWeight: Tensor,
  ) {
    super();
    this.transform = this.registerModule('transform', new BertPredictionHeadTransform(c));
    this.bias = this.registerParameter('bias', torch.zeros([c.vocab_size]))!;
  }

  forward(hidden: Tensor): Tensor {
    return torch.tidy(() => F.linear(this.transform.forward(hidden), this.decoderWeight, this.bias));
  }
}

class BertOnlyMLMHead extends nn.Module {
  readonly predictions: BertLMPredictionHead;
  constructor(c: BertConfig, decoderWeight: Tensor) {
    super();
    this.predictions = this.registerModule('predictions', new BertLMPredictionHead(c, decoderWeight));
  }
}

/** Label value ignored by the loss (PyTorch's and HF's ignore_index). */
export const IGNORE_INDEX = -100;

export class BertForMaskedLM extends nn.Module {
  readonly bert: BertModel;
  readonly cls: BertOnlyMLMHead;

  constructor(readonly config: BertConfig) {
    super();
    this.bert = this.registerModule('bert', new BertModel(config, { addPoolingLayer: false }));
    this.cls = this.registerModule('cls', new BertOnlyMLMHead(config, this.bert.embeddings.word_embeddings.weight));
    initBertWeights(this.cls, config);
  }

  /** Vocabulary logits (B, L, V). */
  logits(inputIds: Tensor, attentionMask: Tensor): Tensor {
    return torch.tidy(() => this.cls.predictions.forward(this.bert.forward(inputIds, attentionMask).lastHiddenState));
  }

  /**
   * Mean cross-entropy over positions whose label is not IGNORE_INDEX (HF's masked_lm_loss). Only those positions go
   * through the head: the same value as HF's, which scores every position, at a fraction of the vocabulary matmul.
   */
  loss(inputIds: Tensor, attentionMask: Tensor, labels: Tensor): Tensor {
    return torch.tidy(() => {
      const H = this.config.hidden_size;
      const flat = labels.reshape(-1);
      const at = flat.ne(IGNORE_INDEX).nonzero().squeeze(1);
      const hidden = this.bert.forward(inputIds, attentionMask).lastHiddenState.reshape(-1, H).indexSelect(0, at);
      return F.crossEntropy(this.cls.predictions.forward(hidden), flat.indexSelect(0, at));
    });
  }
}
