// `t3d pretrain-text`: masked-language-model pre-training of the report encoder on the training reports, so that
// `t3d pretrain --set model.text.pretrained=<out>` starts alignment from a text encoder that knows the reports.
import { join } from 'node:path';
import { applyOverrides, loadConfig, validateConfig } from '../train/config.js';
import { pretrainText } from '../train/text-pretrain.js';
import { readCacheIndex } from '../data/cache.js';
import { bertConfig } from '../models/bert.js';
import { ensureCache, prepareTokenizer } from './pretrain.js';
import { parseOptions } from './args.js';

export const PRETRAIN_TEXT_USAGE = `t3d pretrain-text [--config <pretrain config>] [--set key.path=value ...] [--out dir] [--steps N] [--batch-size B]
                  [--lr X] [--mask-prob P] [--device cpu|cuda]

Trains the config's text encoder (model.text, from scratch) with Hugging Face's BertForMaskedLM head on the reports
of the config's training split (data.cache; the synthetic set is generated when absent), with the config's
tokenizer and text augmentation. Defaults: 2,000 steps, batch 32, lr 5e-4 (AdamW, warm-up 100, cosine), mask
probability 0.15 (80 % [MASK], 10 % random, 10 % kept). Checkpoints go to <out>/checkpoints (default
runs/text/<config name>); each is a Hugging Face model folder. Rerunning the same command resumes. Then:
  t3d pretrain --config cpu-96 --set model.text.pretrained=<out> [--set optim.textLrScale=0.1 | --set model.freezeText=true]
The tokenizer comes with the text checkpoint. The held-out masked-token accuracy on the validation reports is printed.`;

export async function runPretrainText(args: string[]): Promise<void> {
  const o = parseOptions(args, {
    config: 'string',
    out: 'string',
    steps: 'number',
    'batch-size': 'number',
    lr: 'number',
    'mask-prob': 'number',
    device: 'string',
    set: 'list',
  });
  const sets = (o.set as string[] | undefined) ?? [];
  const cfg = applyOverrides(loadConfig((o.config as string | undefined) ?? 'cpu-96'), sets);
  validateConfig(cfg);
  if ('pretrained' in cfg.model.text)
    throw new Error(
      'pretrain-text trains model.text from scratch; this config loads a pre-trained text encoder (model.text.pretrained)',
    );
  const outDir = (o.out as string | undefined) ?? join('runs', 'text', cfg.name);
  await ensureCache(cfg);
  const tok = prepareTokenizer(cfg, outDir);
  const entries = readCacheIndex(cfg.data.cache).entries;
  const reports = (split: string) => entries.filter((e) => e.split === split).map((e) => e.report);
  const train = reports(cfg.data.trainSplit),
    valid = reports(cfg.data.valSplit);
  const steps = (o.steps as number | undefined) ?? 2000;
  const r = pretrainText(
    bertConfig({ ...cfg.model.text, vocab_size: tok.vocabSize }, 'model.text'),
    tok,
    train,
    valid,
    outDir,
    {
      steps,
      batchSize: (o['batch-size'] as number | undefined) ?? 32,
      lr: (o.lr as number | undefined) ?? 5e-4,
      weightDecay: 0.01,
      warmupSteps: Math.min(100, Math.floor(steps / 10)),
      maskProb: (o['mask-prob'] as number | undefined) ?? 0.15,
      maxTokens: cfg.data.maxTokens,
      seed: cfg.train.seed,
      textAugment: cfg.data.textAugment,
      logEvery: Math.max(1, Math.min(100, Math.floor(steps / 20))),
      checkpointEvery: 500,
    },
    (l) => console.log(l),
    (o.device as string | undefined) ?? 'cpu',
  );
  console.log(`pretrain-text: done at step ${r.step}; use it with --set model.text.pretrained=${outDir}`);
}
