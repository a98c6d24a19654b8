// Masked-language-model pre-training of the report encoder (DESIGN §4: the text encoder may know the reports before
// alignment starts). BertForMaskedLM with HF's names; every checkpoint folder is also a Hugging Face model folder
// (config.json as BertConfig, model.safetensors with bert.* and cls.predictions.*), loadable by transformers and by
// `model.text.pretrained`. Batches and masks are functions of (seed, step), so a resumed run equals an uninterrupted one.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import * as torch from '../torch/index.js';
import { optim } from '../torch/index.js';
import { BertForMaskedLM } from '../models/bert-mlm.js';
import { type BertConfig } from '../models/bert.js';
import { type WordPieceTokenizer, toBigInt64 } from '../text/wordpiece.js';
import { maskTokens } from '../text/mlm.js';
import { augmentReport, type AugmentOptions } from '../text/report.js';
import { Rng } from '../util/rng.js';
import {
  type TrainerState,
  listCheckpoints,
  loadCheckpoint,
  resolveCheckpoint,
  saveCheckpoint,
  TRAINING_FILES,
} from './checkpoint.js';

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
  const fingerprint = createHash('sha256')
    .update(JSON.stringify({ config, settings, n: train.length }))
    .digest('hex')
    .slice(0, 16);
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
  const ckptDir = join(outDir, 'checkpoints');
  let state: TrainerState = {
    step: 0,
    epoch: 0,
    batchInEpoch: 0,
    consecutiveNonFinite: 0,
    skippedSteps: 0,
    fingerprint,
  };
  const resume = listCheckpoints(ckptDir).length
    ? resolveCheckpoint(ckptDir, { requires: TRAINING_FILES, log })
    : undefined;
  if (resume) {
    const loaded = loadCheckpoint(resume, model, opt);
    const rng = loaded.extra.get('rng.torch_cpu'); // dropout's stream continues where it stopped
    if (rng) torch.setDefaultGeneratorState(rng);
    torch.dispose([...loaded.extra.values()]);
    if (loaded.state.fingerprint !== fingerprint)
      throw new Error(
        `${resume}: written with other settings (fingerprint ${loaded.state.fingerprint}, now ${fingerprint}); use another --out`,
      );
    state = loaded.state;
    sched.setStep(state.step);
    log(`pretrain-text: resuming from ${resume} (step ${state.step})`);
  }
  const perEpoch = Math.floor(train.length / o.batchSize);
  const save = (): string => {
    const rng = torch.getDefaultGeneratorState();
    try {
      return saveCheckpoint(
        ckptDir,
        {
          config,
          model,
          optimizer: opt,
          extra: new Map([['rng.torch_cpu', rng]]),
          tokenizerJson: tok.toTokenizerJson(),
          state,
        },
        2,
        log,
      );
    } finally {
      rng.dispose();
    }
  };
  let last = resume ?? '';
  model.train();
  let lossSum = 0,
    lossN = 0;
  const t0 = performance.now();
  const startStep = state.step;
  while (state.step < o.steps) {
    const epoch = Math.floor(state.step / perEpoch);
    const order = Array.from(train.keys());
    new Rng(o.seed, 0x7e47, epoch).shuffle(order);
    const at = (state.step % perEpoch) * o.batchSize;
    const texts = order
      .slice(at, at + o.batchSize)
      .map((i) => augmentReport(train[i]!, new Rng(o.seed, epoch, i, 0x7e47), o.textAugment ?? {}));
    const enc = tok.encodeBatch(texts, { maxLength: o.maxTokens, padding: 'longest' });
    const m = maskTokens(
      enc.inputIds,
      { maskProb: o.maskProb, maskId, vocabSize: tok.vocabSize, specialIds: special },
      new Rng(o.seed, 0x3a5c, state.step),
    );
    const loss = torch.tidy(() => {
      const l = model.loss(
        torch.tensor(toBigInt64(m.inputIds), enc.shape, { device }),
        torch.tensor(toBigInt64(enc.attentionMask), enc.shape, { device }),
        torch.tensor(toBigInt64(m.labels), enc.shape, { device }),
      );
      opt.zeroGrad();
      l.backward();
      optim.clipGradNorm(model.parameters(), 1.0);
      opt.step();
      sched.step();
      return l.item();
    });
    state = { ...state, step: state.step + 1, epoch, batchInEpoch: (state.step % perEpoch) + 1 };
    if (Number.isFinite(loss)) {
      lossSum += loss;
      lossN += 1;
    }
    if (state.step % o.logEvery === 0 || state.step === o.steps) {
      const rate = (state.step - startStep) / ((performance.now() - t0) / 1000);
      log(
        `pretrain-text: step ${state.step}/${o.steps} MLM loss ${(lossSum / Math.max(1, lossN)).toFixed(4)} lr ${sched.currentLrs()[0]!.toExponential(2)} ${rate.toFixed(1)} steps/s ETA ${Math.round((o.steps - state.step) / Math.max(rate, 1e-9))} s`,
      );
      lossSum = 0;
      lossN = 0;
    }
    if (state.step % o.checkpointEvery === 0 || state.step === o.steps) last = save();
  }
  const v = validate(model, tok, valid, o, special, device);
  log(
    `pretrain-text: held-out masked-token loss ${v.loss.toFixed(4)}, accuracy ${(100 * v.accuracy).toFixed(1)} % (${valid.length} reports) → ${last}`,
  );
  model.dispose();
  opt.dispose();
  return { checkpoint: last, step: state.step, valLoss: v.loss, valAccuracy: v.accuracy };
}
