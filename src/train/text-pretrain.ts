// Masked-language-model pre-training of the report encoder (docs/ARCHITECTURE.md §3: the text encoder may know
// the reports before alignment starts). BertForMaskedLM with HF's names; every checkpoint folder is also a Hugging
// Face model folder (config.json as BertConfig, model.safetensors with bert.* and cls.predictions.*), loadable by
// transformers and by `model.text.pretrained`. Trained on the shared loop (loop.ts), which resumes exactly.
import { join } from 'node:path';
import * as torch from '../torch/index.js';
import { optim } from '../torch/index.js';
import { BertForMaskedLM } from '../models/bert-mlm.js';
import { type BertConfig } from '../models/bert.js';
import { type WordPieceTokenizer, toBigInt64 } from '../text/wordpiece.js';
import { maskTokens } from '../text/mlm.js';
import { augmentReport, type AugmentOptions } from '../text/report.js';
import { Rng } from '../util/rng.js';
import { TrainLoop } from './loop.js';
import { freshTrainerState, resumeStepCheckpoint, saveStepCheckpoint } from './step-checkpoints.js';

export interface TextPretrainOptions {
  steps: number;
  batchSize: number;
  lr: number;
  weightDecay: number;
  warmupSteps: number;
  maskProb: number;
  maxTokens: number;
  seed: number;
  textAugment?: AugmentOptions;
  logEvery: number;
  checkpointEvery: number;
}

export interface TextPretrainResult {
  checkpoint: string;
  step: number;
  valLoss: number;
  valAccuracy: number;
}

/** Held-out masked-token loss and accuracy (fixed masks, seed 0, no augmentation). */
function validate(
  model: BertForMaskedLM,
  tok: WordPieceTokenizer,
  reports: string[],
  o: TextPretrainOptions,
  special: Set<number>,
  device: string,
): { loss: number; accuracy: number } {
  model.eval();
  let lossSum = 0,
    correct = 0,
    count = 0;
  const rng = new Rng(0, 0x7a11d);
  for (let i = 0; i < reports.length; i += o.batchSize) {
    const enc = tok.encodeBatch(reports.slice(i, i + o.batchSize), { maxLength: o.maxTokens, padding: 'longest' });
    const m = maskTokens(
      enc.inputIds,
      { maskProb: o.maskProb, maskId: tok.tokenToId(tok.maskToken)!, vocabSize: tok.vocabSize, specialIds: special },
      rng,
    );
    const n = m.labels.reduce((s, l) => s + (l >= 0 ? 1 : 0), 0);
    if (n === 0) continue;
    torch.noGrad(() =>
      torch.tidy(() => {
        const ids = torch.tensor(toBigInt64(m.inputIds), enc.shape, { device });
        const mask = torch.tensor(toBigInt64(enc.attentionMask), enc.shape, { device });
        const labels = torch.tensor(toBigInt64(m.labels), enc.shape, { device });
        lossSum += model.loss(ids, mask, labels).item() * n;
        const hit = model.logits(ids, mask).argmax(-1).eq(labels).logicalAnd(labels.ge(0));
        correct += hit.sum().item();
      }),
    );
    count += n;
  }
  model.train();
  return { loss: lossSum / Math.max(1, count), accuracy: correct / Math.max(1, count) };
}

/**
 * Trains (or resumes) MLM on `train` reports, checkpoints to <outDir>/checkpoints, validates on `valid` reports.
 * `bertConfig` must have the tokenizer's vocabulary size.
 */
export function pretrainText(
  bertConfig: BertConfig,
  tok: WordPieceTokenizer,
  train: string[],
  valid: string[],
  outDir: string,
  o: TextPretrainOptions,
  log: (l: string) => void,
  device = 'cpu',
): TextPretrainResult {
  if (train.length < o.batchSize)
    throw new Error(`pretrain-text: ${train.length} training reports, fewer than one batch of ${o.batchSize}`);
  const maskId = tok.tokenToId(tok.maskToken);
  if (maskId === undefined) throw new Error(`pretrain-text: the tokenizer has no mask token '${tok.maskToken}'`);
  const special = new Set([tok.clsId, tok.sepId, tok.padId, maskId]);
  const config = { ...bertConfig, architectures: ['BertForMaskedLM'], model_type: 'bert' };
  const { logEvery: _l, checkpointEvery: _c, ...settings } = o;
  torch.manualSeed(o.seed);
  const model = new BertForMaskedLM(bertConfig);
  if (device !== 'cpu') model.to({ device });
  const opt = new optim.AdamW(model.parameters(), {
    lr: o.lr,
    weightDecay: o.weightDecay,
    betas: [0.9, 0.999],
    eps: 1e-8,
  });
  const sched = new optim.LRScheduler(opt, optim.warmupCosine(Math.min(o.warmupSteps, o.steps), o.steps, 0.01));
  const target = {
    dir: join(outDir, 'checkpoints'),
    model,
    optimizer: opt,
    log,
    settings: { config, settings, n: train.length },
  };
  let state = freshTrainerState(target.settings);
  const resumed = resumeStepCheckpoint(target);
  if (resumed) {
    torch.dispose([...resumed.extra.values()]);
    state = resumed.state;
    sched.setStep(state.step);
    log(`pretrain-text: resuming from ${resumed.from} (step ${state.step})`);
  }
  const perEpoch = Math.floor(train.length / o.batchSize);
  // batches and masks are functions of (seed, epoch, batch), so a resumed run sees what an uninterrupted one does
  function* batches(epoch: number, skip: number): Generator<{ texts: string[]; mask: Rng }> {
    const order = Array.from(train.keys());
    new Rng(o.seed, 0x7e47, epoch).shuffle(order);
    for (let b = skip; b < perEpoch; b++) {
      const augment = (i: number) => augmentReport(train[i]!, new Rng(o.seed, epoch, i, 0x7e47), o.textAugment ?? {});
      const texts = order.slice(b * o.batchSize, (b + 1) * o.batchSize).map(augment);
      yield { texts, mask: new Rng(o.seed, 0x3a5c, epoch * perEpoch + b) };
    }
  }
  const ids = (v: Parameters<typeof toBigInt64>[0], shape: [number, number]) =>
    torch.tensor(toBigInt64(v), shape, { device });
  model.train();
  const loop = new TrainLoop({
    state,
    length: { steps: o.steps },
    optimizer: opt,
    scheduler: sched,
    clip: { params: model.parameters(), maxNorm: 1 },
    resumedFrom: resumed?.from,
    log,
    batches,
    forward: (b) => {
      const enc = tok.encodeBatch(b.texts, { maxLength: o.maxTokens, padding: 'longest' });
      const mlm = { maskProb: o.maskProb, maskId, vocabSize: tok.vocabSize, specialIds: special };
      const m = maskTokens(enc.inputIds, mlm, b.mask);
      return {
        loss: model.loss(ids(m.inputIds, enc.shape), ids(enc.attentionMask, enc.shape), ids(m.labels, enc.shape)),
      };
    },
    progress: {
      every: o.logEvery,
      report: (p) => {
        const rate = p.stepsRun / p.elapsed;
        const eta = Math.round((o.steps - p.state.step) / Math.max(rate, 1e-9));
        const lr = sched.currentLrs()[0]!.toExponential(2);
        const loss = p.meanLoss.toFixed(4);
        const speed = `${rate.toFixed(1)} steps/s ETA ${eta} s`;
        log(`pretrain-text: step ${p.state.step}/${o.steps} MLM loss ${loss} lr ${lr} ${speed}`);
      },
    },
    checkpoint: {
      everySteps: o.checkpointEvery,
      save: () => saveStepCheckpoint(target, { config, tokenizerJson: tok.toTokenizerJson(), keep: 2 }, state),
    },
  });
  try {
    const last = loop.runSync().checkpoint;
    const v = validate(model, tok, valid, o, special, device);
    log(
      `pretrain-text: held-out masked-token loss ${v.loss.toFixed(4)}, accuracy ${(100 * v.accuracy).toFixed(1)} % ` +
        `(${valid.length} reports) → ${last}`,
    );
    return { checkpoint: last, step: state.step, valLoss: v.loss, valAccuracy: v.accuracy };
  } finally {
    model.dispose();
    opt.dispose();
  }
}
