// What a pre-training run logs as validation: zero-shot macro-AUROC and report→volume recall on the validation split
// (of `data.valCache` when the run names one, else of its training cache).
import * as torch from '../torch/index.js';
import { readCacheIndex } from '../data/cache.js';
import { type T3dModel } from '../models/t3d.js';
import { type WordPieceTokenizer } from '../text/wordpiece.js';
import { type PretrainConfig } from '../train/config.js';
import { embedSplit } from '../inference/embed.js';
import { evaluateEmbedded } from './tasks/zeroshot.js';

export function zeroShotValidation(
  model: T3dModel,
  tokenizer: WordPieceTokenizer,
  cfg: PretrainConfig,
  device = 'cpu',
): () => Promise<Record<string, number>> {
  const cache = cfg.data.valCache ?? cfg.data.cache;
  const labelNames = readCacheIndex(cache).labelNames;
  return async () => {
    const e = await embedSplit(model, tokenizer, cache, cfg.data.valSplit, {
      device,
      maxTokens: cfg.data.maxTokens,
    });
    try {
      const z = evaluateEmbedded(model, tokenizer, e, labelNames, device);
      const r2v = z.recallReportToVolume;
      return {
        zeroShotAuroc: z.macroAuroc,
        labelsCounted: z.labelsCounted,
        r2vR1: r2v[1] ?? NaN,
        r2vR5: r2v[5] ?? NaN,
      };
    } finally {
      torch.dispose([e.volumes, e.reports]);
    }
  };
}
