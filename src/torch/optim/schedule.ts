// Learning-rate schedules as factors of each group's initial lr (like LambdaLR), plus presets.
import { type Optimizer } from './optimizer.js';

export type LrFactor = (step: number) => number;

/** Linear warm-up from 0 to 1 over warmupSteps, then cosine decay to minFactor at totalSteps. */
export function warmupCosine(warmupSteps: number, totalSteps: number, minFactor = 0): LrFactor {
  if (!(totalSteps > 0) || warmupSteps < 0 || warmupSteps > totalSteps) {
    throw new Error(`warmupCosine: need 0 ≤ warmupSteps (${warmupSteps}) ≤ totalSteps (${totalSteps}), totalSteps > 0`);
  }
  return (step) => {
    if (step < warmupSteps) return (step + 1) / warmupSteps;
    const t = Math.min(1, (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps));
    return minFactor + (1 - minFactor) * 0.5 * (1 + Math.cos(Math.PI * t));
  };
}
/** Multiplies by gamma every stepSize steps (StepLR). */
export const stepDecay =
  (stepSize: number, gamma = 0.1): LrFactor =>
  (step) =>
    gamma ** Math.floor(step / stepSize);
export const constant = (): LrFactor => () => 1;

/** Applies a factor schedule to an optimizer; call step() once per optimizer step. */
export class LRScheduler {
  private count = 0;
  constructor(
    private readonly optimizer: Optimizer<object>,
    private readonly factor: LrFactor,
  ) {
    this.apply();
  }
  step(): void {
    this.count += 1;
    this.apply();
  }
  get lastStep(): number {
    return this.count;
  }
  /** Resume at a given step (the optimizer's group lrs are recomputed). */
  setStep(step: number): void {
    this.count = step;
    this.apply();
  }
  currentLrs(): number[] {
    return this.optimizer.groups.map((g) => g.options.lr);
  }
  private apply(): void {
    const f = this.factor(this.count);
    for (const g of this.optimizer.groups) g.options.lr = g.initialLr * f;
  }
}
