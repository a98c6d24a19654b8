// Report generation from a vision encoder (frozen or fine-tuned): a Transformer decoder over the encoder's local
// tokens is trained with teacher forcing on the cached training reports, then writes a report for every test volume
// (greedy, or beam search). Scored with NLG metrics (BLEU-1..4, ROUGE-L, METEOR against the cached report) and
// clinical efficacy (the 18 CT-RATE labels read by the rule-based extractor from the generated and from the reference
// report: micro / macro precision, recall, F1, zero_division = 0).
// Conventions:
// - target text = the cached report (Findings + Impressions), [CLS] … [SEP] as BOS … EOS, cut to maxLength tokens;
//   cross-entropy over the next token, padding ignored; AdamW (weight decay 0.01), gradients clipped at norm 1;
// - frozen: the encoder runs in eval mode outside autograd and its features are computed once per volume (kept in
//   memory up to featureCacheMb); fine-tuned: the encoder trains at lr / 10;
// - volumes are the loader's global view without augmentation (as in zero-shot evaluation);
// - generated ids are detokenised by the tokenizer's decode, with the spaces its WordPiece cleanup leaves inside
//   decimals, hyphenated words, brackets and before ':' / ';' removed;
// - with outDir: a checkpoint after every epoch (checkpoints/epoch-NNNN: decoder, encoder when fine-tuned,
//   optimizer, state.json; written atomically, only the newest kept; epoch-trainer.ts) and results.json; a rerun
//   resumes from the newest checkpoint and refuses one made with other settings.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../../torch/index.js';
import { optim, type Tensor } from '../../torch/index.js';
import { readCacheIndex } from '../../data/cache.js';
import { globalShapeOf } from '../../data/presets.js';
import { Loader } from '../../data/loader.js';
import { type ViewConfig } from '../../data/views.js';
import { type VisionEncoder } from '../../models/t3d.js';
import { ReportDecoder } from '../../models/report-decoder.js';
import { type WordPieceTokenizer } from '../../text/wordpiece.js';
import {
  EXTRACTED_LABELS,
  LABEL_EXTRACTOR_VERSION,
  extractLabels,
  extractorAgreement,
} from '../../text/label-extractor.js';
import { corpusBleu, meteor, rougeL, tokenizeForNlg } from '../metrics/nlg.js';
import { type ClinicalEfficacy, clinicalEfficacy } from './clinical-efficacy.js';
import { EpochTrainer } from './epoch-trainer.js';
import { detokenize, encodeTargets, teacherForcingLoss } from './report-text.js';

export interface ReportGenOptions {
  cacheDir: string;
  /** default 'train' */
  trainSplit?: string;
  /** default 'valid' */
  testSplit?: string;
  epochs: number;
  batchSize: number;
  lr: number;
  freezeEncoder: boolean;
  decoder: { dModel: number; layers: number; heads: number; ffn: number; dropout: number };
  /** longest token sequence, [CLS] and [SEP] included: targets are cut to it and generation stops at it */
  maxLength: number;
  /** 1 = greedy decoding, more = beam search */
  beams: number;
  seed: number;
  /** generate for the first N test volumes only */
  limitTest?: number;
  device?: string;
  onProgress?: (msg: string) => void;
  /** checkpoint the decoder here each epoch; resume when present; results.json */
  outDir?: string;
  /** beam-search length penalty α (score = Σ log p / length^α); default 1 */
  lengthPenalty?: number;
  /** memory for frozen-encoder features kept across epochs, MB (default 1024) */
  featureCacheMb?: number;
}

export interface ReportGenResult {
  bleu1: number;
  bleu2: number;
  bleu3: number;
  bleu4: number;
  rougeL: number;
  meteor: number;
  meteorVariant: string;
  clinical: ClinicalEfficacy;
  /**
   * overall agreement of the extractor's labels on the reference reports with the cache's labels (NaN without
   * them)
   */
  extractorAgreementOnReferences: number;
  samples: { name: string; reference: string; generated: string; refLabels: number[]; genLabels: number[] }[];
  /** mean training loss of each epoch */
  trainLoss: number[];
  epochs: number;
  decoding: string;
}

export const METEOR_VARIANT =
  'nltk meteor_score (α 0.9, β 3, γ 0.5), exact + Porter-stem matching, no WordNet synonyms';
const WEIGHT_DECAY = 0.01;
const CLIP_NORM = 1;
const EVAL_VIEWS: Partial<ViewConfig> = { numLocal: 0, globalIntensity: false, noiseStd: 0 };

/** Frozen-encoder features per volume, kept (on the device) up to a byte budget. */
class FeatureCache {
  private readonly kept = new Map<string, Tensor>();
  private bytes = 0;
  constructor(private readonly budget: number) {}
  get(name: string): Tensor | undefined {
    return this.kept.get(name);
  }
  put(name: string, features: Tensor): void {
    const size = features.numel * 4;
    if (this.kept.has(name) || this.bytes + size > this.budget) return;
    this.kept.set(name, features.clone().keep());
    this.bytes += size;
  }
  dispose(): void {
    torch.dispose([...this.kept.values()]);
    this.kept.clear();
  }
}

/** Visual tokens (B, N, C) of a batch, through the frozen cache or with gradients when fine-tuning. */
function visualTokensOf(
  encoder: VisionEncoder,
  x: () => Tensor,
  names: string[],
  frozen: boolean,
  cache?: FeatureCache,
): Tensor {
  if (!frozen) return ReportDecoder.visualTokens(encoder.encode(x()).featureMap);
  return torch.noGrad(() =>
    torch.tidy(() => {
      const hits = names.map((n) => cache?.get(n));
      if (hits.every((h) => h !== undefined)) return torch.stack(hits as Tensor[], 0);
      const tokens = ReportDecoder.visualTokens(encoder.encode(x()).featureMap);
      names.forEach((n, i) => cache?.put(n, tokens.select(0, i)));
      return tokens;
    }),
  );
}

function validate(o: ReportGenOptions): void {
  const bad: string[] = [];
  if (!Number.isInteger(o.epochs) || o.epochs < 0) bad.push(`epochs must be an integer ≥ 0 (got ${o.epochs})`);
  if (!Number.isInteger(o.batchSize) || o.batchSize < 1)
    bad.push(`batchSize must be a positive integer (got ${o.batchSize})`);
  if (!(o.lr > 0)) bad.push(`lr must be > 0 (got ${o.lr})`);
  if (!Number.isInteger(o.maxLength) || o.maxLength < 2)
    bad.push(`maxLength must be an integer ≥ 2 (got ${o.maxLength})`);
  if (!Number.isInteger(o.beams) || o.beams < 1) bad.push(`beams must be a positive integer (got ${o.beams})`);
  if (o.limitTest !== undefined && !(Number.isInteger(o.limitTest) && o.limitTest >= 1))
    bad.push(`limitTest must be a positive integer (got ${o.limitTest})`);
  if (bad.length) throw new Error(`report generation: ${bad.join('; ')}`);
}

/**
 * Trains a report decoder over `encoder` (the caller's; it is left in eval mode, fine-tuned when freezeEncoder is
 * false) on the cache's training reports, generates a report for each test volume and scores them.
 */
export async function runReportGeneration(
  encoder: VisionEncoder,
  tokenizer: WordPieceTokenizer,
  o: ReportGenOptions,
): Promise<ReportGenResult> {
  validate(o);
  const log = o.onProgress ?? (() => {});
  const device = o.device ?? 'cpu';
  const trainSplit = o.trainSplit ?? 'train',
    testSplit = o.testSplit ?? 'valid';
  const index = readCacheIndex(o.cacheDir);
  for (const split of [trainSplit, testSplit]) {
    if (!index.entries.some((e) => e.split === split))
      throw new Error(`${o.cacheDir}: no cached volumes in split '${split}'`);
  }
  if (o.outDir) mkdirSync(o.outDir, { recursive: true });
  const frozen = o.freezeEncoder;
  if (device !== 'cpu') encoder.to({ device });

  torch.manualSeed(o.seed);
  encoder.eval();
  const [C, N] = torch.noGrad(() =>
    torch.tidy(() => {
      const probe = ReportDecoder.visualTokens(
        encoder.encode(torch.zeros([1, 1, ...globalShapeOf(index.preset)], { device })).featureMap,
      );
      return [probe.size(2), probe.size(1)];
    }),
  );
  const decoder = new ReportDecoder({
    vocabSize: tokenizer.vocabSize,
    ...o.decoder,
    maxLength: o.maxLength,
    visualDim: C,
    numVisualTokens: N,
    bosId: tokenizer.clsId,
    eosId: tokenizer.sepId,
    padId: tokenizer.padId,
  });
  const cache = frozen ? new FeatureCache((o.featureCacheMb ?? 1024) * 2 ** 20) : undefined;
  let opt: optim.AdamW | undefined;
  try {
    if (device !== 'cpu') decoder.to({ device });
    const params = [...decoder.parameters(), ...(frozen ? [] : encoder.parameters())];
    const optimizer = (opt = new optim.AdamW(
      [
        { params: decoder.parameters(), lr: o.lr },
        ...(frozen ? [] : [{ params: encoder.parameters(), lr: o.lr / 10 }]),
      ],
      { weightDecay: WEIGHT_DECAY },
    ));

    const trainer = new EpochTrainer({
      task: 'report generation',
      outDir: o.outDir,
      settings: {
        trainSplit,
        batchSize: o.batchSize,
        lr: o.lr,
        freezeEncoder: frozen,
        decoder: o.decoder,
        maxLength: o.maxLength,
        seed: o.seed,
        vocabSize: tokenizer.vocabSize,
        encoder: encoder.constructor.name,
        visualTokens: [N, C],
      },
      save: (dir) => {
        torch.saveModule(decoder, join(dir, 'decoder.safetensors'), { config: JSON.stringify(decoder.config) });
        if (!frozen) torch.saveModule(encoder, join(dir, 'encoder.safetensors'));
        torch.saveOptimizer(optimizer, join(dir, 'optimizer.safetensors'));
      },
      load: (dir) => {
        torch.loadModule(decoder, join(dir, 'decoder.safetensors'));
        if (!frozen) torch.loadModule(encoder, join(dir, 'encoder.safetensors'));
        torch.loadOptimizer(optimizer, join(dir, 'optimizer.safetensors'));
      },
      log,
    });

    const shape = globalShapeOf(index.preset);
    const how = frozen ? 'frozen' : 'fine-tuned';
    const decoderParams = decoder.numParameters().toLocaleString();
    log(`report generation (${how} encoder): ${N} visual tokens × ${C}, ${decoderParams} decoder parameters`);
    if (trainer.startEpoch < o.epochs) {
      const loader = new Loader({
        cacheDir: o.cacheDir,
        split: trainSplit,
        batchSize: o.batchSize,
        seed: o.seed,
        shuffle: true,
        dropLast: false,
        workers: 1,
        views: EVAL_VIEWS,
      });
      try {
        await trainer.train({
          epochs: o.epochs,
          optimizer,
          clip: { params, maxNorm: CLIP_NORM },
          batches: (epoch) => {
            decoder.train();
            if (!frozen) encoder.train();
            return loader.epoch(epoch);
          },
          loss: (b) => {
            const x = () => torch.tensor(b.global, [b.indices.length, 1, ...shape], { device });
            const tokens = visualTokensOf(encoder, x, b.names, frozen, cache);
            const { input, target } = encodeTargets(tokenizer, b.reports, o.maxLength, device);
            return teacherForcingLoss(decoder, tokens, input, target);
          },
        });
      } finally {
        await loader.close();
      }
    }
    const { trainLoss } = trainer;
    cache?.dispose();

    decoder.eval();
    encoder.eval();
    const decoding =
      o.beams === 1
        ? 'greedy'
        : `beam search (${o.beams} beams, length penalty ${o.lengthPenalty ?? 1}, early stopping)`;
    const nTest = Math.min(index.entries.filter((e) => e.split === testSplit).length, o.limitTest ?? Infinity);
    const samples: ReportGenResult['samples'] = [];
    const cachedLabels: number[][] = [];
    const testLoader = new Loader({
      cacheDir: o.cacheDir,
      split: testSplit,
      batchSize: o.batchSize,
      seed: o.seed,
      shuffle: false,
      dropLast: false,
      workers: 1,
      views: EVAL_VIEWS,
    });
    const labelColumns = EXTRACTED_LABELS.map((l) => testLoader.labelNames.indexOf(l));
    try {
      for await (const b of testLoader.epoch(0)) {
        const take = Math.min(b.indices.length, nTest - samples.length);
        const ids = torch.noGrad(() =>
          torch.tidy(() => {
            const x = torch.tensor(b.global.subarray(0, take * shape[0] * shape[1] * shape[2]), [take, 1, ...shape], {
              device,
            });
            const tokens = ReportDecoder.visualTokens(encoder.encode(x).featureMap);
            return o.beams === 1
              ? decoder.greedy(tokens, o.maxLength - 1)
              : decoder.beamSearch(tokens, { beams: o.beams, maxLen: o.maxLength - 1, lengthPenalty: o.lengthPenalty });
          }),
        );
        const L = b.labels.length / b.indices.length;
        for (let i = 0; i < take; i++) {
          const generated = detokenize(tokenizer, ids[i]!);
          const reference = b.reports[i]!;
          samples.push({
            name: b.names[i]!,
            reference,
            generated,
            refLabels: extractLabels(reference),
            genLabels: extractLabels(generated),
          });
          cachedLabels.push(labelColumns.map((c) => (c >= 0 ? b.labels[i * L + c]! : NaN)));
        }
        log(`generated ${samples.length}/${nTest}`);
        if (samples.length >= nTest) break;
        await new Promise((r) => setImmediate(r));
      }
    } finally {
      await testLoader.close();
    }

    const refs = samples.map((s) => [tokenizeForNlg(s.reference)]);
    const hyps = samples.map((s) => tokenizeForNlg(s.generated));
    const bleu = corpusBleu(refs, hyps);
    const haveLabels = labelColumns.every((c) => c >= 0);
    const result: ReportGenResult = {
      ...bleu,
      rougeL: rougeL(refs, hyps),
      meteor: meteor(refs, hyps),
      meteorVariant: METEOR_VARIANT,
      clinical: clinicalEfficacy(
        samples.map((s) => s.refLabels),
        samples.map((s) => s.genLabels),
      ),
      extractorAgreementOnReferences: haveLabels
        ? extractorAgreement(
            samples.map((s) => s.reference),
            cachedLabels,
          ).overall
        : NaN,
      samples,
      trainLoss,
      epochs: o.epochs,
      decoding,
    };
    log(
      `BLEU-1 ${result.bleu1.toFixed(3)}, BLEU-4 ${result.bleu4.toFixed(3)}, ROUGE-L ${result.rougeL.toFixed(3)}, ` +
        `METEOR ${result.meteor.toFixed(3)}, CE micro-F1 ${result.clinical.microF1.toFixed(3)} ` +
        `(labels by extractor ${LABEL_EXTRACTOR_VERSION}, ` +
        `agreement with the cache's labels ${result.extractorAgreementOnReferences.toFixed(3)})`,
    );
    if (o.outDir) {
      writeFileSync(
        join(o.outDir, 'results.json'),
        JSON.stringify({ labelExtractor: LABEL_EXTRACTOR_VERSION, ...result }, null, 2) + '\n',
      );
    }
    return result;
  } finally {
    cache?.dispose();
    opt?.dispose();
    decoder.dispose();
  }
}
