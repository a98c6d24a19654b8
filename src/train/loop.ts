// The one training loop of every trainer (pre-training, text pre-training, transfer, segmentation, report
// generation). It owns the optimiser step (gradient accumulation, mixed precision and the float16 loss scale,
// data-parallel gradient reduction, clipping, the LR schedule), skipping non-finite steps, the progress window,
// the checkpoint cadence and the position a resumed run continues from. A trainer supplies its batches, the
// loss of one batch, and what happens after a step or an epoch (logging, validation, early stopping).
// Step-based runs (`{ steps }`) stop mid-epoch at the step count; epoch-based runs (`{ epochs }`) after an epoch.
// The driver is written once as a generator whose `yield` means "await", so the same loop runs asynchronously
// (a data loader, async hooks) or synchronously (text pre-training, whose API is synchronous).
import * as torch from '../torch/index.js';
import { optim, type GradientReducer, type Tensor } from '../torch/index.js';
import { type AutocastDtype } from '../torch/system.js';

/** Where a run stands; saved in checkpoints so that a resumed run continues exactly. */
export interface LoopState {
  /** optimiser steps taken */
  step: number;
  epoch: number;
  /** batches of `epoch` already consumed */
  batchInEpoch: number;
  consecutiveNonFinite: number;
  skippedSteps: number;
}

export const freshLoopState = (): LoopState => ({
  step: 0,
  epoch: 0,
  batchInEpoch: 0,
  consecutiveNonFinite: 0,
  skippedSteps: 0,
});

/** What one batch's forward pass gives: the loss, and anything else the trainer's hooks want to see. */
export type Forward<X> = { loss: Tensor } & X;

/** Handed to `forward`: runs the model part under the loop's autocast (or as is, without mixed precision). */
export type Autocast = <T>(fn: () => T) => T;

export interface StepInfo<X> {
  state: LoopState;
  /** the loss of the batch that completed the step, and what `forward` returned besides it */
  loss: number;
  extra: Omit<X, 'loss'>;
  /** global gradient norm before clipping (undefined without clipping) */
  gradNorm?: number;
}

export interface ProgressInfo<X> extends StepInfo<X> {
  total: number;
  /** since the last progress report: seconds per step, share of the time spent waiting for data, mean loss */
  secsPerStep: number;
  dataWait: number;
  meanLoss: number;
  /** steps and seconds since this process started the loop */
  stepsRun: number;
  elapsed: number;
}

export interface EpochInfo {
  state: LoopState;
  /** the epoch just finished (0-based), its optimiser steps and its skipped (non-finite) batches */
  epoch: number;
  steps: number;
  skipped: number;
}

type MaybePromise<T> = T | Promise<T>;
type Batches<B> = Iterator<B> | AsyncIterator<B>;

export interface LoopSpec<B, X> {
  /** mutated as the run goes; a resumed run passes the state its checkpoint saved */
  state: LoopState;
  length: { steps: number } | { epochs: number };
  /** batches of `epoch`, the first `skip` of them left out (a run resumed mid-epoch) */
  batches(epoch: number, skip: number): Batches<B>;
  /** the batch's loss (inside a tidy scope); the model's forward pass goes through `autocast` */
  forward(batch: B, state: LoopState, autocast: Autocast): Forward<X>;
  optimizer: optim.Optimizer<object>;
  scheduler?: optim.LRScheduler;
  /** clips the global norm of `params`' gradients; a non-finite norm skips the step */
  clip?: { params: Tensor[]; maxNorm: number };
  /** micro-batches per optimiser step (default 1); each loss is divided by it */
  gradAccum?: number;
  autocast?: { deviceType: 'cpu' | 'cuda'; dtype: AutocastDtype };
  /** float16: the dynamic loss scale and the parameters it unscales */
  scaler?: { scaler: optim.GradScaler; params: Tensor[] };
  /** data-parallel: gradients summed over ranks while backward runs; `afterReduce` fixes up the sums */
  reducer?: { reducer: GradientReducer; afterReduce(): void };
  /** consecutive non-finite steps that stop the run (default: never) */
  maxConsecutiveNonFinite?: number;
  /** test hook: transforms the loss before the finiteness check (e.g. to inject NaN) */
  lossHook?: (loss: Tensor, step: number) => Tensor;
  /** once the step's gradients are complete (reduced, unscaled), before clipping: e.g. frozen ones cleared */
  beforeClip?(): void;
  /** after the optimiser update, before the schedule moves on (e.g. an EMA teacher follows the weights) */
  afterUpdate?(): void;
  /** step-based: a progress report every `every` steps and at the last */
  progress?: { every: number; report(p: ProgressInfo<X>): void };
  /** after every optimiser step (after the progress report) */
  afterStep?(s: StepInfo<X>): MaybePromise<void>;
  /** after every epoch; true stops the run (early stopping) */
  afterEpoch?(e: EpochInfo): MaybePromise<boolean | void>;
  /** saves a checkpoint and returns its path: step-based every `everySteps` steps and at the last, else per epoch */
  checkpoint?: { everySteps?: number; save(): string };
  /** the checkpoint the run resumed from, named when non-finite steps stop it */
  resumedFrom?: string;
  log: (line: string) => void;
}

export interface LoopResult {
  lastLoss: number;
  checkpoint: string;
}

export class TrainLoop<B, X> {
  private micro = 0;
  private lastCheckpoint: string;
  private lastLoss = NaN;
  private readonly t0 = performance.now();
  private readonly startStep: number;
  private window = performance.now();
  private windowSteps = 0;
  private windowLoss = 0;
  private waited = 0;
  private epochSteps = 0;
  private epochSkipped = 0;

  constructor(private readonly spec: LoopSpec<B, X>) {
    this.lastCheckpoint = spec.resumedFrom ?? '';
    this.startStep = spec.state.step;
  }

  private get total(): number {
    return 'steps' in this.spec.length ? this.spec.length.steps : this.spec.length.epochs;
  }

  async run(): Promise<LoopResult> {
    const g = this.drive();
    for (let r = g.next(); ; r = g.next(await r.value)) if (r.done) return r.value;
  }

  /** The same loop without awaiting: every batch source and hook must be synchronous. */
  runSync(): LoopResult {
    const g = this.drive();
    for (let r = g.next(); ; r = g.next(r.value)) {
      if (r.done) return r.value;
      if (r.value instanceof Promise) throw new Error('TrainLoop.runSync: a batch source or hook returned a promise');
    }
  }

  /** `yield x` stands for `await x`. */
  private *drive(): Generator<unknown, LoopResult, unknown> {
    const { spec } = this,
      s = spec.state;
    const bySteps = 'steps' in spec.length;
    const done = () => (bySteps ? s.step >= this.total : s.epoch >= this.total);
    while (!done()) {
      const it = spec.batches(s.epoch, s.batchInEpoch);
      for (;;) {
        const w0 = performance.now();
        const next = (yield it.next()) as IteratorResult<B>;
        this.waited += performance.now() - w0;
        if (next.done) break;
        s.batchInEpoch += 1;
        const step = this.trainBatch(next.value);
        if (!step) continue;
        this.windowSteps += 1;
        this.windowLoss += step.loss;
        this.lastLoss = step.loss;
        if (spec.progress && this.due(spec.progress.every)) this.report(step);
        yield spec.afterStep?.(step);
        const ckpt = bySteps ? spec.checkpoint : undefined;
        if (ckpt && this.due(ckpt.everySteps ?? Infinity)) this.lastCheckpoint = ckpt.save();
        if (bySteps && done()) break;
      }
      if (bySteps && done()) break;
      const stop = yield spec.afterEpoch?.({
        state: s,
        epoch: s.epoch,
        steps: this.epochSteps,
        skipped: this.epochSkipped,
      });
      this.epochSteps = 0;
      this.epochSkipped = 0;
      s.epoch += 1;
      s.batchInEpoch = 0;
      if (!bySteps && spec.checkpoint) this.lastCheckpoint = spec.checkpoint.save();
      if (stop === true) break;
    }
    return { lastLoss: this.lastLoss, checkpoint: this.lastCheckpoint };
  }

  private due(every: number): boolean {
    const { step } = this.spec.state;
    return step % every === 0 || step === this.total;
  }

  private report(step: StepInfo<X>): void {
    const now = performance.now();
    const s = this.spec.state;
    this.spec.progress!.report({
      ...step,
      total: this.total,
      secsPerStep: (now - this.window) / 1000 / Math.max(1, this.windowSteps),
      dataWait: this.waited / Math.max(1, now - this.window),
      meanLoss: this.windowLoss / Math.max(1, this.windowSteps),
      stepsRun: s.step - this.startStep,
      elapsed: (now - this.t0) / 1000,
    });
    this.waited = 0;
    this.window = now;
    this.windowSteps = 0;
    this.windowLoss = 0;
  }

  /** Forward and backward of one batch, and the optimiser step when it completes one; the step's info, if taken. */
  private trainBatch(batch: B): StepInfo<X> | undefined {
    const { spec } = this,
      s = spec.state;
    const accum = spec.gradAccum ?? 1;
    const reducer = spec.reducer?.reducer;
    const scaler = spec.scaler?.scaler;
    const ac = spec.autocast;
    const autocast: Autocast = ac ? (fn) => torch.autocast(ac.deviceType, ac.dtype, fn) : (fn) => fn();
    // the reducer counts gradients in during the backward pass that completes the step
    if (reducer && this.micro + 1 === accum) reducer.arm();
    const result = torch.tidy(() => {
      const { loss: raw, ...extra } = spec.forward(batch, s, autocast);
      const loss = spec.lossHook ? spec.lossHook(raw, s.step) : raw;
      const value = loss.item();
      if (Number.isFinite(value)) (scaler ? scaler.scaleLoss(loss) : loss).div(accum).backward();
      return { value, extra: extra as Omit<X, 'loss'> };
    });
    this.micro += 1;
    let skip = !Number.isFinite(result.value);
    // every rank issues the bucket reductions, also one whose loss was not finite (it skipped backward)
    let late = reducer && this.micro === accum ? reducer.wait() : false;
    if (reducer) {
      // every rank must take the same branch: a step is skipped when any rank's loss is not finite, and the
      // buckets are reduced again when any rank had a gradient that came after its bucket had started
      const flag = torch.tensor([skip ? 1 : 0, late ? 1 : 0], [2]);
      torch.distributed.allReduce(flag, 'max');
      [skip, late] = flag.toArray().map((v) => v > 0) as [boolean, boolean];
      flag.dispose();
    }
    if (!skip && this.micro < accum) return undefined;
    this.micro = 0;
    const opt = spec.optimizer;
    if (!skip && reducer) {
      reducer.writeBack(late);
      spec.reducer!.afterReduce();
    }
    if (!skip && scaler && scaler.unscale(spec.scaler!.params)) {
      // float16 overflow: the normal way a loss scale finds its level, not a training failure
      scaler.update(true);
      opt.zeroGrad();
      s.skippedSteps += 1;
      spec.log(`step ${s.step}: float16 gradients overflowed; step skipped, loss scale now ${scaler.scale}`);
      return undefined;
    }
    if (!skip) spec.beforeClip?.();
    const gradNorm = skip || !spec.clip ? undefined : optim.clipGradNorm(spec.clip.params, spec.clip.maxNorm);
    skip ||= gradNorm !== undefined && !Number.isFinite(gradNorm);
    if (skip) {
      opt.zeroGrad();
      s.consecutiveNonFinite += 1;
      s.skippedSteps += 1;
      this.epochSkipped += 1;
      const inARow = s.consecutiveNonFinite;
      spec.log(`step ${s.step}: non-finite loss or gradient (loss ${result.value}); step skipped (${inARow} in a row)`);
      if (inARow >= (spec.maxConsecutiveNonFinite ?? Infinity)) {
        const last = `the last good checkpoint is ${this.lastCheckpoint || '(none yet)'}`;
        throw new Error(`stopping: ${inARow} consecutive non-finite steps at step ${s.step}; ${last}`);
      }
      return undefined;
    }
    s.consecutiveNonFinite = 0;
    opt.step();
    opt.zeroGrad();
    scaler?.update(false);
    spec.afterUpdate?.();
    spec.scheduler?.step();
    s.step += 1;
    this.epochSteps += 1;
    return { state: s, loss: result.value, extra: result.extra, gradNorm };
  }
}
