// `t3d pretrain-text`: masked-language-model pre-training of the report encoder on the training reports, so that
// `t3d pretrain --set model.text.pretrained=<out>` starts alignment from a text encoder that knows the reports.
import { join } from 'node:path';
import { applyOverrides, loadConfig, validateConfig } from '../train/config.js';
import { pretrainText } from '../train/text-pretrain.js';
import { readCacheIndex } from '../data/cache.js';
import { bertConfig } from '../models/bert.js';
import { ensureCache } from '../data/synth-cache.js';
import { prepareTokenizer } from '../train/tokenizer.js';
import { parseOptions } from './args.js';

export async function runPretrainText(args: string[]): Promise<void> {
  const o = parseOptions(args, {
    string: ['config', 'out', 'device'],
    number: ['steps', 'batch-size', 'lr', 'mask-prob'],
    list: ['set'],
  });
  const sets = o.set ?? [];
  const cfg = applyOverrides(loadConfig(o.config ?? 'cpu-96'), sets);
  validateConfig(cfg);
  if ('pretrained' in cfg.model.text)
    throw new Error(
      'pretrain-text trains model.text from scratch; this config loads a pre-trained text encoder (model.text.pretrained)',
    );
  const outDir = o.out ?? join('runs', 'text', cfg.name);
  await ensureCache(cfg);
  const tok = prepareTokenizer(cfg, outDir);
  const entries = readCacheIndex(cfg.data.cache).entries;
  const reports = (split: string) => entries.filter((e) => e.split === split).map((e) => e.report);
  const train = reports(cfg.data.trainSplit),
    valid = reports(cfg.data.valSplit);
  const steps = o.steps ?? 2000;
  const r = pretrainText(
    bertConfig({ ...cfg.model.text, vocab_size: tok.vocabSize }, 'model.text'),
    tok,
    train,
    valid,
    outDir,
    {
      steps,
      batchSize: o['batch-size'] ?? 32,
      lr: o.lr ?? 5e-4,
      weightDecay: 0.01,
      warmupSteps: Math.min(100, Math.floor(steps / 10)),
      maskProb: o['mask-prob'] ?? 0.15,
      maxTokens: cfg.data.maxTokens,
      seed: cfg.train.seed,
      textAugment: cfg.data.textAugment,
      logEvery: Math.max(1, Math.min(100, Math.floor(steps / 20))),
      checkpointEvery: 500,
    },
    (l) => console.log(l),
    o.device ?? 'cpu',
  );
  console.log(`pretrain-text: done at step ${r.step}; use it with --set model.text.pretrained=${outDir}`);
}
