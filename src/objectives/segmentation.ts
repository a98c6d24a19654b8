// Dice + cross-entropy for multi-class segmentation, with MONAI's DiceCELoss semantics at its usual settings
// (to_onehot_y=True, softmax=True):
//   p = softmax(logits) over classes, g = one-hot(target)
//   per (case b, class k): dice_bk = 1 − (2·Σ p·g + smooth_nr) / (Σ p + Σ g + smooth_dr), sums over voxels
//   (batch=True sums over the cases too, giving one value per class); Dice loss = mean over what remains
//   CE = mean over voxels of −log p[target] (torch.nn.CrossEntropyLoss)
//   total = λ_dice · Dice + λ_ce · CE
// As in MONAI, a class absent from a case's target costs dice_bk ≈ 1 for any non-zero softmax mass on it (the
// smoothing terms only give 0 when Σ p is exactly 0); batch=True avoids that when the class is present in
// another case. include_background=False drops class 0 from the Dice term only (CE always sees every class).
import * as torch from '../torch/index.js';
import { F, type Tensor } from '../torch/index.js';

export interface DiceCEOptions {
  /** keep class 0 in the Dice term (default true) */
  includeBackground?: boolean;
  /** added to the numerator (default 1e-5) */
  smoothNr?: number;
  /** added to the denominator (default 1e-5) */
  smoothDr?: number;
  /** pool the Dice sums over the batch before the ratio (default false) */
  batch?: boolean;
  /** weights of the two terms (default 1 and 1) */
  lambdaDice?: number;
  lambdaCe?: number;
}

export interface DiceCEResult {
  total: Tensor;
  dice: Tensor;
  ce: Tensor;
}

/** logits (B, K, D, H, W) floating, target (B, D, H, W) int64 class indices in [0, K). */
export function diceCELoss(logits: Tensor, target: Tensor, o: DiceCEOptions = {}): DiceCEResult {
  if (logits.ndim < 3)
    throw new Error(`diceCELoss: logits must be (B, K, ...spatial), got [${logits.shape.join(', ')}]`);
  const K = logits.size(1);
  if (K < 2) throw new Error(`diceCELoss: need ≥ 2 classes (softmax over channels), got ${K}`);
  const want = [logits.size(0), ...logits.shape.slice(2)];
  if (target.shape.join() !== want.join()) {
    throw new Error(
      `diceCELoss: target must be (B, ...spatial) = [${want.join(', ')}] class indices, got ` +
        `[${target.shape.join(', ')}]`,
    );
  }
  if (target.dtype !== 'int64') throw new Error(`diceCELoss: target must be int64 class indices, got ${target.dtype}`);
  return torch.tidy(() => {
    const nd = logits.ndim;
    const probs = logits.softmax(1);
    // one_hot puts classes last: move them to dim 1 like the logits
    const order = [0, nd - 1, ...Array.from({ length: nd - 2 }, (_, i) => i + 1)];
    const onehot = torch
      .oneHot(target, K)
      .permute(...order)
      .to({ dtype: logits.dtype });
    let p = probs,
      g = onehot;
    if (o.includeBackground === false) {
      p = probs.narrow(1, 1, K - 1);
      g = onehot.narrow(1, 1, K - 1);
    }
    const spatial = Array.from({ length: nd - 2 }, (_, i) => i + 2);
    const axes = o.batch ? [0, ...spatial] : spatial;
    const intersection = p.mul(g).sum(axes);
    const denominator = g.sum(axes).add(p.sum(axes));
    const ratio = intersection
      .mul(2)
      .add(o.smoothNr ?? 1e-5)
      .div(denominator.add(o.smoothDr ?? 1e-5));
    const dice = ratio.rsub(1).mean();
    const ce = F.crossEntropy(logits, target);
    const total = dice.mul(o.lambdaDice ?? 1).add(ce.mul(o.lambdaCe ?? 1));
    return { total, dice, ce };
  });
}
