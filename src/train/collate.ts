// The collator: a loader's raw batch → the tensors of one training step (ViewBatch). The volumes go to the device;
// each report is augmented (sentence shuffle / drop, seeded by seed, epoch and volume, so a resumed run draws the
// same) and tokenised; sentence indices are made only when the TMA formulation or sentence-level CLIP needs them, and
// the report-extracted labels (made once before training) are attached when objective.labels is on.
import * as torch from '../torch/index.js';
import { type Loader, type RawBatch, batchToTensors } from '../data/loader.js';
import { type WordPieceTokenizer, toBigInt64 } from '../text/wordpiece.js';
import { augmentReport } from '../text/report.js';
import { Rng } from '../util/rng.js';
import { type ViewBatch } from '../objectives/t3d.js';
import { type TmaNeeds } from '../objectives/tma/index.js';
import { type PretrainConfig } from './config.js';

export interface CollatorOptions {
  tokenizer: WordPieceTokenizer;
  loader: Pick<Loader, 'globalShape' | 'localShape'>;
  data: Pick<PretrainConfig['data'], 'textAugment' | 'maxTokens'>;
  seed: number;
  needs: Pick<TmaNeeds, 'sentenceIndex'>;
  /** labels extracted from each loader entry's report (objective.labels), indexed like the loader's entries */
  reportLabels?: readonly (readonly number[])[];
  device?: string;
}

/** The batch of an epoch's raw batch (inside the caller's tidy scope). */
export type Collator = (raw: RawBatch, epoch: number) => ViewBatch;

export function collator(o: CollatorOptions): Collator {
  return (raw, epoch) => {
    const views = batchToTensors(raw, o.loader, o.device);
    const rng = (i: number) => new Rng(o.seed, epoch, raw.indices[i]!, 17);
    const texts = raw.reports.map((r, i) => augmentReport(r, rng(i), o.data.textAugment));
    const enc = o.tokenizer.encodeBatch(texts, { maxLength: o.data.maxTokens, padding: 'longest' });
    const ids = (values: Int32Array) => torch.tensor(toBigInt64(values), enc.shape, { device: o.device });
    const inputIds = ids(enc.inputIds);
    const attentionMask = ids(enc.attentionMask);
    const sentenceIndex = o.needs.sentenceIndex ? ids(o.tokenizer.sentenceIndex(texts, enc)) : undefined;
    const extracted = o.reportLabels;
    const rows = extracted && raw.indices.map((i) => extracted[i]!);
    const reportLabels = rows
      ? torch.tensor(Float32Array.from(rows.flat()), [rows.length, rows[0]!.length], { device: o.device })
      : undefined;
    return { global: views.global, locals: views.locals, inputIds, attentionMask, sentenceIndex, reportLabels };
  };
}
