// Zero-shot classification (CT-RATE protocol: "{label} is present." vs "{label} is not present.", softmax
// over the pair) and report↔volume retrieval, from a model's global embeddings.
import * as torch from '../torch/index.js';
import { type Tensor } from '../torch/index.js';
import { type T3dModel } from '../models/t3d.js';
import { type WordPieceTokenizer, toBigInt64 } from '../text/wordpiece.js';
import { Loader } from '../data/loader.js';
import { macroAuroc, recallAtK } from './metrics.js';

export interface Embedded { names: string[]; volumes: Tensor; reports: Tensor; labels: number[][]; reportTexts: string[] }

/** Normalised report embeddings (B, D) for a list of texts. */
export function embedTexts(model: T3dModel, tokenizer: WordPieceTokenizer, texts: string[], maxTokens: number, device?: string): Tensor {
  return torch.noGrad(() => torch.tidy(() => {
    const enc = tokenizer.encodeBatch(texts, { maxLength: maxTokens, padding: 'longest' });
    const ids = torch.tensor(toBigInt64(enc.inputIds), enc.shape, { device });
    const mask = torch.tensor(toBigInt64(enc.attentionMask), enc.shape, { device });
    return model.encodeReport(ids, mask).emb;
  }));
}

/** Embeds every volume (no augmentation) and its report from a cache split. The caller disposes the tensors. */
export async function embedSplit(model: T3dModel, tokenizer: WordPieceTokenizer, cacheDir: string, split: string, o: { batchSize?: number; maxTokens?: number; device?: string; limit?: number } = {}): Promise<Embedded> {
  const loader = new Loader({
    cacheDir, split, batchSize: o.batchSize ?? 8, seed: 0, shuffle: false, dropLast: false, workers: 1,
    views: { numLocal: 0, globalIntensity: false, noiseStd: 0 },
  });
  const vols: Tensor[] = [], reps: Tensor[] = [];
  const names: string[] = [], labels: number[][] = [], reportTexts: string[] = [];
  try {
    for await (const b of loader.epoch(0)) {
      const L = b.labels.length / b.indices.length;
      torch.noGrad(() => torch.tidy(() => {
        const x = torch.tensor(b.global, [b.indices.length, 1, ...loader.preset.shape], { device: o.device });
        vols.push(model.encodeVolume(x).emb.keep());
      }));
      reps.push(embedTexts(model, tokenizer, b.reports, o.maxTokens ?? 256, o.device).keep());
      b.names.forEach((n, i) => { names.push(n); reportTexts.push(b.reports[i]!); labels.push(Array.from(b.labels.subarray(i * L, (i + 1) * L))); });
      if (o.limit && names.length >= o.limit) break;
    }
  } finally {
    await loader.close();
  }
  const out = torch.tidy(() => ({ volumes: torch.cat(vols, 0).keep(), reports: torch.cat(reps, 0).keep() }));
  torch.dispose([vols, reps]);
  return { names, labels, reportTexts, ...out };
}

export const PROMPTS = { present: (l: string) => `${l} is present.`, absent: (l: string) => `${l} is not present.` };

/** Positive-prompt probability per volume and label: softmax over (present, absent) of scaled similarities. */
export function zeroShotScores(model: T3dModel, tokenizer: WordPieceTokenizer, volumes: Tensor, labelNames: string[], maxTokens = 64, device?: string): number[][] {
  return torch.noGrad(() => torch.tidy(() => {
    const pos = embedTexts(model, tokenizer, labelNames.map(PROMPTS.present), maxTokens, device);
    const neg = embedTexts(model, tokenizer, labelNames.map(PROMPTS.absent), maxTokens, device);
    const scale = model.logit_scale.value.exp().clamp(undefined, 100);
    const sp = volumes.matmul(pos.T).mul(scale), sn = volumes.matmul(neg.T).mul(scale); // (N, L)
    const prob = torch.stack([sp, sn], 2).softmax(2).select(2, 0);
    const flat = prob.to('float64').toArray();
    const L = labelNames.length;
    return Array.from({ length: volumes.size(0) }, (_, i) => flat.slice(i * L, (i + 1) * L));
  }));
}

export interface ZeroShotResult { macroAuroc: number; labelsCounted: number; perLabel: Record<string, number>; recallReportToVolume: Record<number, number>; recallVolumeToReport: Record<number, number> }

export function evaluateEmbedded(model: T3dModel, tokenizer: WordPieceTokenizer, e: Embedded, labelNames: string[], device?: string): ZeroShotResult {
  const scores = zeroShotScores(model, tokenizer, e.volumes, labelNames, 64, device);
  const m = macroAuroc(scores, e.labels);
  const sim = torch.noGrad(() => torch.tidy(() => {
    const s = e.reports.matmul(e.volumes.T).to('float64');
    const n = s.size(0);
    const flat = s.toArray();
    return Array.from({ length: n }, (_, i) => flat.slice(i * n, (i + 1) * n));
  }));
  const transpose = sim.map((_, i) => sim.map((row) => row[i]!));
  const ks = [1, 5, 10].filter((k) => k <= sim.length);
  return {
    macroAuroc: m.value, labelsCounted: m.labelsCounted,
    perLabel: Object.fromEntries(labelNames.map((l, i) => [l, m.perLabel[i]!])),
    recallReportToVolume: recallAtK(sim, ks), recallVolumeToReport: recallAtK(transpose, ks),
  };
}
