// The training part of the segmentation and report-generation tasks: epochs of the shared training loop, a
// checkpoint after each (outDir/checkpoints/epoch-NNNN: the task's files and state.json, sealed; only the newest
// kept), and resuming from the newest one, refused when it was made with other settings.
import { join } from 'node:path';
import { latestEpochDir, readEpochState, saveEpochDir } from '../../train/epoch-checkpoint.js';
import { type Settings, checkSettings } from '../../train/fingerprint.js';
import { TrainLoop, freshLoopState } from '../../train/loop.js';
import { type optim, type Tensor } from '../../torch/index.js';

/** An epoch folder's state.json; the settings are kept as JSON text, the form existing runs were saved with. */
interface EpochState {
  epoch: number;
  trainLoss: number[];
  fingerprint: string;
}

export interface EpochTrainerOptions {
  /** names the task in errors */
  task: string;
  /** checkpoints go to outDir/checkpoints; none without it */
  outDir?: string;
  /** what a resumed run must share with the run it continues */
  settings: Settings;
  /** writes the weights and optimizer state into a new epoch folder */
  save(dir: string): void;
  /** reads them back from the epoch folder a run resumes from */
  load(dir: string): void;
  log(line: string): void;
}

export interface EpochSpec<B> {
  epochs: number;
  optimizer: optim.Optimizer<object>;
  /** clips the global norm of these parameters' gradients before each step */
  clip?: { params: Tensor[]; maxNorm: number };
  /** the batches of one epoch (the model set to train mode here) */
  batches(epoch: number): Iterable<B> | AsyncIterable<B>;
  /** the batch's loss */
  loss(batch: B): Tensor;
}

export class EpochTrainer {
  /** mean training loss of each finished epoch, resumed ones included */
  readonly trainLoss: number[] = [];
  /** the epoch this run starts at (0, or the one after its checkpoint) */
  readonly startEpoch: number = 0;
  private readonly dir?: string;
  private readonly resumedFrom?: string;

  /** Resumes from the newest checkpoint in outDir, if any. */
  constructor(private readonly o: EpochTrainerOptions) {
    this.dir = o.outDir ? join(o.outDir, 'checkpoints') : undefined;
    const from = latestEpochDir(this.dir);
    if (!from) return;
    const state = readEpochState<EpochState>(from);
    const refusal = (diff: string) => `${from}: checkpoint made with other settings (${diff}); use another outDir`;
    checkSettings(state.fingerprint, o.settings, refusal);
    o.load(from);
    this.trainLoss.push(...state.trainLoss);
    this.startEpoch = state.epoch;
    this.resumedFrom = from;
    o.log(`resumed from ${from} (epoch ${state.epoch})`);
  }

  /** Trains up to `epochs` (nothing when the checkpoint is there already); returns the loss of each epoch. */
  async train<B>(spec: EpochSpec<B>): Promise<number[]> {
    const { o, dir } = this;
    const state = { ...freshLoopState(), epoch: this.startEpoch };
    let sum = 0,
      t0 = 0;
    const loop = new TrainLoop<B, object>({
      state,
      length: { epochs: spec.epochs },
      optimizer: spec.optimizer,
      clip: spec.clip,
      log: o.log,
      batches: (epoch) => {
        t0 = Date.now();
        sum = 0;
        return breathing(spec.batches(epoch))[Symbol.asyncIterator]();
      },
      forward: (b) => ({ loss: spec.loss(b) }),
      afterStep: (s) => {
        sum += s.loss;
      },
      afterEpoch: ({ epoch, steps, skipped }) => {
        if (steps === 0) throw new Error(`${o.task}: every step of epoch ${epoch + 1} had a non-finite loss`);
        const loss = sum / steps;
        this.trainLoss.push(loss);
        const nonFinite = skipped ? ` (${skipped} non-finite skipped)` : '';
        const seconds = ((Date.now() - t0) / 1000).toFixed(1);
        o.log(
          `epoch ${epoch + 1}/${spec.epochs}: loss ${loss.toFixed(4)} over ${steps} steps${nonFinite}, ${seconds} s`,
        );
      },
      checkpoint: dir
        ? {
            save: () => {
              const saved: EpochState = {
                epoch: state.epoch,
                trainLoss: this.trainLoss,
                fingerprint: JSON.stringify(o.settings),
              };
              return saveEpochDir(dir, state.epoch, saved, o.save);
            },
          }
        : undefined,
      resumedFrom: this.resumedFrom,
    });
    await loop.run();
    return this.trainLoss;
  }
}

/** The batches with a turn of the event loop after each step. */
async function* breathing<B>(batches: Iterable<B> | AsyncIterable<B>): AsyncGenerator<B> {
  for await (const b of batches) {
    yield b;
    await new Promise((r) => setImmediate(r));
  }
}
