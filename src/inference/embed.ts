// A model's global embeddings of volumes (a cache split, no augmentation) and of report texts: what zero-shot
// evaluation, retrieval, search indexes and `t3d embed` all start from.
import * as torch from '../torch/index.js';
import { F, type Tensor } from '../torch/index.js';
import { type ClipModel } from '../models/t3d.js';
import { type WordPieceTokenizer, toBigInt64 } from '../text/wordpiece.js';
import { Loader } from '../data/loader.js';
import { lobeCropViews, type Shape3 } from '../data/views.js';

export interface Embedded {
  names: string[];
  volumes: Tensor;
  /** absent for an image-only model */
  reports?: Tensor;
  labels: number[][];
  reportTexts: string[];
}

/** Normalised report embeddings (B, D) for a list of texts; an image-only model (no tokenizer) refuses. */
export function embedTexts(
  model: ClipModel,
  tokenizer: WordPieceTokenizer | undefined,
  texts: string[],
  maxTokens: number,
  device?: string,
): Tensor {
  model.textSide(); // refuses an image-only model, naming why
  if (!tokenizer) throw new Error('embedTexts: the model has a text tower but no tokenizer');
  return torch.noGrad(() =>
    torch.tidy(() => {
      const enc = tokenizer.encodeBatch(texts, { maxLength: maxTokens, padding: 'longest' });
      const ids = torch.tensor(toBigInt64(enc.inputIds), enc.shape, { device });
      const mask = torch.tensor(toBigInt64(enc.attentionMask), enc.shape, { device });
      return model.encodeReport(ids, mask).emb;
    }),
  );
}

/** The reports' embeddings of `e`; an image-only model has none (tasks that need them are skipped for it). */
export function reportsOf(e: Embedded): Tensor {
  if (!e.reports) throw new Error('an image-only model embeds no reports');
  return e.reports;
}

export interface EmbedSplitOptions {
  names?: string[];
  batchSize?: number;
  maxTokens?: number;
  device?: string;
  limit?: number;
  fullResolution?: boolean;
  /**
   * the crop-scale readout: the volume's embedding is the normalised mean of its five lobe crops' embeddings, each crop
   * of this shape at the cache's resolution (data/views.ts lobeCropViews)
   */
  crop?: Shape3;
}

/**
 * Every volume (no augmentation) and its report of a cache split (or named volumes); the reports' embeddings only
 * when the model has a text tower. The caller disposes them.
 */
export async function embedSplit(
  model: ClipModel,
  tokenizer: WordPieceTokenizer | undefined,
  cacheDir: string,
  split: string | undefined,
  o: EmbedSplitOptions = {},
): Promise<Embedded> {
  const loader = new Loader({
    cacheDir,
    split,
    names: o.names,
    batchSize: o.batchSize ?? 8,
    seed: 0,
    shuffle: false,
    dropLast: false,
    workers: 1,
    fullResolution: o.fullResolution,
    views: o.crop ? lobeCropViews(o.crop) : { numLocal: 0, globalIntensity: false, noiseStd: 0 },
  });
  const vols: Tensor[] = [],
    reps: Tensor[] = [];
  const names: string[] = [],
    labels: number[][] = [],
    reportTexts: string[] = [];
  try {
    for await (const b of loader.epoch(0)) {
      const L = b.labels.length / b.indices.length;
      torch.noGrad(() =>
        torch.tidy(() => {
          const B = b.indices.length;
          if (!o.crop) {
            const x = torch.tensor(b.global, [B, 1, ...loader.globalShape], { device: o.device });
            vols.push(model.encodeVolume(x).emb.keep());
            return;
          }
          const crops = b.locals.map(
            (l) => model.encodeVolume(torch.tensor(l, [B, 1, ...loader.localShape], { device: o.device })).emb,
          );
          vols.push(F.normalize(torch.stack(crops, 0).mean(0), -1).keep());
        }),
      );
      if (model.text) reps.push(embedTexts(model, tokenizer, b.reports, o.maxTokens ?? 256, o.device).keep());
      b.names.forEach((n, i) => {
        names.push(n);
        reportTexts.push(b.reports[i]!);
        labels.push(Array.from(b.labels.subarray(i * L, (i + 1) * L)));
      });
      if (o.limit && names.length >= o.limit) break;
    }
  } finally {
    await loader.close();
  }
  const out = torch.tidy(() => ({
    volumes: torch.cat(vols, 0).keep(),
    reports: reps.length ? torch.cat(reps, 0).keep() : undefined,
  }));
  torch.dispose([vols, reps]);
  return { names, labels, reportTexts, ...out };
}
