// The T3D model: a 3D vision encoder and a text encoder joined by CLIP projections (ClipModel, all that inference
// needs, and the whole of an imported CLIP-style model), plus the TMA parts (text-informed fusion of local tokens,
// prototypes). Encoders are injected, so the same model class serves ResNet3D / ViT3D and any BERT-family text
// encoder.
import * as torch from '../torch/index.js';
import { F, nn, type Tensor } from '../torch/index.js';
import { AttentionPool, LogitScale, Prototypes, TextInformedFusion, projectionHead } from './heads.js';
import { RestorationDecoder } from './restoration.js';

export interface VisionEncoder extends nn.Module {
  readonly outChannels: number;
  /** input voxels per feature-map cell along the coarsest axis */
  readonly outputStride: number;
  /** featureMap (B, C, d, h, w) = local tokens on a grid; pooled (B, C) */
  encode(x: Tensor): { featureMap: Tensor; pooled: Tensor };
}
/** A BERT-family encoder with Hugging Face's interface: hidden states (B, L, H) for ids and a mask. */
export interface TextEncoder extends nn.Module {
  readonly config: { hidden_size: number };
  forward(inputIds: Tensor, attentionMask: Tensor): { lastHiddenState: Tensor };
}

export interface ClipHeadsConfig {
  /** shared embedding size D */
  embedDim: number;
  /** hidden size of the projection MLPs (0 = linear projections as in CLIP) */
  projectionHidden: number;
  /** linear projections with a bias (default false, as CLIP's) */
  projectionBias?: boolean;
  /**
   * report vector from the [CLS] state (BERT/CXR-BERT style), the mean of the token states, or an attention pool
   * over them (`text_pooler`, COLIPRI's) with `textPoolHeads` heads
   */
  textPooling?: 'cls' | 'mean' | 'attention';
  textPoolHeads?: number;
  /** 'none': the encoders already give the shared space (COLIPRI), the projections are identities */
  projection?: 'none';
}

export interface T3dHeadsConfig extends ClipHeadsConfig {
  fusionDim: number;
  fusionHeads: number;
  /** number of prototypes K */
  prototypes: number;
  /** build the restoration decoder (docs/ARCHITECTURE.md §3); set automatically when its objective is on */
  restoration?: boolean;
  /** outputs of a linear label head on the image embedding (report-derived labels, §3); set automatically when its
   * objective is on */
  labels?: number;
}

export interface VolumeEncoding {
  tokens: Tensor;
  pooled: Tensor;
  emb: Tensor;
}
export interface ReportEncoding {
  tokens: Tensor;
  paddingMask: Tensor;
  sentence: Tensor;
  emb: Tensor;
}

/**
 * Vision and text encoders joined by projections into one embedding space, with CLIP's temperature. An image-only
 * model (a published model imported without its text tower) has no text encoder, text projection or temperature:
 * its volume embeddings serve probing, similar cases and export, and encodeReport refuses.
 */
export class ClipModel extends nn.Module {
  readonly visual_projection: nn.Module & nn.Layer;
  readonly text_projection?: nn.Module & nn.Layer;
  readonly logit_scale?: LogitScale;
  readonly text_pooler?: AttentionPool;

  constructor(
    readonly visual: VisionEncoder,
    readonly text: TextEncoder | undefined,
    readonly heads: ClipHeadsConfig,
  ) {
    super();
    // registration order is parameter order (optimizer state, gradient norms, checkpoints): text before the projections
    this.registerModule('visual', visual);
    if (text) this.registerModule('text', text);
    const { embedDim, projectionHidden, projectionBias } = heads;
    const head = (inDim: number) =>
      heads.projection === 'none'
        ? new nn.Identity()
        : projectionHead(inDim, embedDim, projectionHidden, projectionBias);
    this.visual_projection = this.registerModule('visual_projection', head(visual.outChannels));
    if (!text) return;
    if (heads.textPooling === 'attention')
      this.text_pooler = this.registerModule(
        'text_pooler',
        new AttentionPool(text.config.hidden_size, heads.textPoolHeads ?? 1),
      );
    this.text_projection = this.registerModule('text_projection', head(text.config.hidden_size));
    this.logit_scale = this.registerModule('logit_scale', new LogitScale());
  }

  /** The text side, or an error saying this model has none. */
  textSide(): { text: TextEncoder; projection: nn.Module & nn.Layer; logitScale: LogitScale } {
    if (!this.text || !this.text_projection || !this.logit_scale)
      throw new Error('this model is image-only (imported without its text tower): it cannot embed text');
    return { text: this.text, projection: this.text_projection, logitScale: this.logit_scale };
  }

  /** Local tokens (B, N, C), pooled features and the normalised global embedding z (B, D). */
  encodeVolume(x: Tensor): VolumeEncoding {
    return torch.tidy(() => {
      const { featureMap, pooled } = this.visual.encode(x);
      return {
        tokens: featureMap.flatten(2).transpose(1, 2),
        pooled,
        emb: F.normalize(this.visual_projection.forward(pooled), -1),
      };
    });
  }

  /** Token states, padding mask (true at padding), the pooled report vector t and its normalised embedding e (B, D). */
  encodeReport(inputIds: Tensor, attentionMask: Tensor): ReportEncoding {
    const { text, projection } = this.textSide();
    return torch.tidy(() => {
      const tokens = text.forward(inputIds, attentionMask).lastHiddenState;
      const keep = attentionMask.to(tokens.dtype).unsqueeze(2);
      const sentence = this.text_pooler
        ? this.text_pooler.forward(tokens, attentionMask.ne(0))
        : this.heads.textPooling === 'mean'
          ? tokens.mul(keep).sum(1).div(keep.sum(1).clampMin(1))
          : tokens.select(1, 0);
      return {
        tokens,
        paddingMask: attentionMask.eq(0),
        sentence,
        emb: F.normalize(projection.forward(sentence), -1),
      };
    });
  }
}

export class T3dModel extends ClipModel {
  declare readonly text: TextEncoder;
  declare readonly text_projection: nn.Module & nn.Layer;
  declare readonly logit_scale: LogitScale;
  readonly fusion: TextInformedFusion;
  readonly prototypes: Prototypes;
  readonly restoration_decoder?: RestorationDecoder;
  readonly label_head?: nn.Linear;

  constructor(visual: VisionEncoder, text: TextEncoder, heads: T3dHeadsConfig) {
    super(visual, text, heads);
    this.fusion = this.registerModule(
      'fusion',
      new TextInformedFusion(
        visual.outChannels,
        text.config.hidden_size,
        heads.fusionDim,
        heads.embedDim,
        heads.fusionHeads,
      ),
    );
    this.prototypes = this.registerModule('prototypes', new Prototypes(heads.prototypes, heads.embedDim));
    if (heads.labels) this.label_head = this.registerModule('label_head', new nn.Linear(heads.embedDim, heads.labels));
    if (heads.restoration) {
      this.restoration_decoder = this.registerModule(
        'restoration_decoder',
        new RestorationDecoder({
          inChannels: visual.outChannels,
          outputStride: visual.outputStride,
          textDim: text.config.hidden_size,
        }),
      );
    }
  }
}
