// The transfer task's model: a linear head on pooled features, or on an encoder's pooled output when fine-tuning.
import * as torch from '../../torch/index.js';
import { nn, type Tensor } from '../../torch/index.js';
import { type VisionEncoder } from '../../models/t3d.js';

/** The head (and, when fine-tuning, the encoder) under one module, so state-dict keys are encoder.* / head.*. */
export class Classifier extends nn.Module {
  constructor(
    readonly encoder: VisionEncoder | undefined,
    readonly head: nn.Linear,
  ) {
    super();
    if (encoder) this.registerModule('encoder', encoder);
    this.registerModule('head', head);
  }
  logits(x: Tensor): Tensor {
    if (!this.encoder) return this.head.forward(x);
    return torch.tidy(() => this.head.forward(this.encoder!.encode(x).pooled));
  }
  /**
   * A volume's logits from its V crops (each (B, 1, d, h, w)): the mean of the crops' logits, which for a linear head
   * is the head of the mean feature, as the crop-scale probe reads. The crops go through the encoder as one batch of
   * V·B, so BatchNorm's training statistics are those of every crop.
   */
  cropLogits(crops: Tensor[]): Tensor {
    return torch.tidy(() => {
      const [V, B] = [crops.length, crops[0]!.size(0)];
      const logits = this.logits(torch.cat(crops, 0));
      return logits.view(V, B, logits.size(1)).mean(0);
    });
  }
}
