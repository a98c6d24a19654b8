// Report-derived labels (docs/ARCHITECTURE.md §3), the field's recipe beside CLIP: a linear head on the image
// embedding trained with multi-label BCE on labels that the rule-based extractor read from each report when the data
// were prepared — never the data set's true labels, so that the supervision is only as good as the reports and the
// extractor (RESULTS.md measures how good).
import * as torch from '../torch/index.js';
import { F, type Tensor } from '../torch/index.js';

/** objective.labels */
export interface LabelsConfig {
  weight: number;
}

/** Mean over volumes and labels of −[y log σ(x) + (1 − y) log(1 − σ(x))], for logits x and 0/1 targets y (B, L). */
export function labelLoss(logits: Tensor, targets: Tensor): Tensor {
  if (logits.shape.join() !== targets.shape.join()) {
    throw new Error(
      `labelLoss: logits [${logits.shape.join(', ')}] and report labels [${targets.shape.join(', ')}] differ ` +
        '(model.labels must equal the number of extracted labels)',
    );
  }
  return torch.tidy(() => F.binaryCrossEntropyWithLogits(logits, targets.to(logits.dtype)));
}
