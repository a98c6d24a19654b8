// CLIP's symmetric InfoNCE between L2-normalised image and text embeddings (open_clip's ClipLoss, one
// process). The temperature is learned as log(scale) and the scale is clamped at 100 as in CLIP.
import * as torch from '../torch/index.js';
import { F, type Tensor } from '../torch/index.js';

export const MAX_LOGIT_SCALE = 100;

/** exp(logScale) clamped to ≤ 100 (no gradient past the clamp, as open_clip's clamp of the parameter). */
export function logitScaleValue(logScale: Tensor): Tensor {
  return torch.tidy(() => logScale.clamp(undefined, Math.log(MAX_LOGIT_SCALE)).exp());
}

/** ½ [CE(image→text) + CE(text→image)] with the diagonal as targets. Inputs must be normalised. */
export function clipLoss(imageEmb: Tensor, textEmb: Tensor, logScale: Tensor): Tensor {
  if (imageEmb.shape.join() !== textEmb.shape.join()) {
    throw new Error(
      `clipLoss: image embeddings [${imageEmb.shape.join(', ')}] and text embeddings [${textEmb.shape.join(', ')}] ` +
        `differ`,
    );
  }
  return torch.tidy(() => {
    const logits = imageEmb.matmul(textEmb.T).mul(logitScaleValue(logScale));
    const target = torch.arange(imageEmb.size(0), undefined, 1, { device: imageEmb.device });
    return F.crossEntropy(logits, target).add(F.crossEntropy(logits.T, target)).mul(0.5);
  });
}
