// One masked-language-model run of the report encoder from a pre-training config: the config's cache (the synthetic
// set is generated when absent), its tokenizer, and its training and validation reports.
import { join } from 'node:path';
import { readCacheIndex } from '../data/cache.js';
import { ensureCache } from '../data/synth-cache.js';
import { bertConfig } from '../models/bert.js';
import { type PretrainConfig } from './config.js';
import { pretrainText, type TextPretrainResult } from './text-pretrain.js';
import { prepareTokenizer } from './tokenizer.js';

export interface TextPretrainRun {
  /** default runs/text/<config name> */
  out?: string;
  /** defaults: 2,000 steps, batch 32, lr 5e-4 (AdamW, warm-up 100 steps or a tenth of the run), masking 0.15 */
  steps?: number;
  batchSize?: number;
  lr?: number;
  maskProb?: number;
  device?: string;
  print?: (line: string) => void;
}

export async function runTextPretraining(
  cfg: PretrainConfig,
  o: TextPretrainRun = {},
): Promise<TextPretrainResult & { outDir: string }> {
  if ('pretrained' in cfg.model.text) {
    throw new Error(
      'pretrain-text trains model.text from scratch; ' +
        'this config loads a pre-trained text encoder (model.text.pretrained)',
    );
  }
  const outDir = o.out ?? join('runs', 'text', cfg.name);
  await ensureCache(cfg);
  const tok = prepareTokenizer(cfg, outDir);
  const entries = readCacheIndex(cfg.data.cache).entries;
  const reports = (split: string) => entries.filter((e) => e.split === split).map((e) => e.report);
  const steps = o.steps ?? 2000;
  const bert = bertConfig({ ...cfg.model.text, vocab_size: tok.vocabSize }, 'model.text');
  const settings = {
    steps,
    batchSize: o.batchSize ?? 32,
    lr: o.lr ?? 5e-4,
    weightDecay: 0.01,
    warmupSteps: Math.min(100, Math.floor(steps / 10)),
    maskProb: o.maskProb ?? 0.15,
    maxTokens: cfg.data.maxTokens,
    seed: cfg.train.seed,
    textAugment: cfg.data.textAugment,
    logEvery: Math.max(1, Math.min(100, Math.floor(steps / 20))),
    checkpointEvery: 500,
  };
  const print = o.print ?? ((line: string) => console.log(line));
  const r = pretrainText(
    bert,
    tok,
    reports(cfg.data.trainSplit),
    reports(cfg.data.valSplit),
    outDir,
    settings,
    print,
    o.device ?? 'cpu',
  );
  return { ...r, outDir };
}
