// A checkpoint opened for scans: one CT scan (a NIfTI file or a DICOM series folder) → the checkpoint's own
// preprocessing → embedding → each finding's zero-shot probability, called at the operating threshold that the
// evaluation chose on validation volumes (Youden's J, from the zero-shot record of the same checkpoint; computed
// once on the checkpoint's cache when no such record exists yet). `t3d analyze`, the indexers and the server use it.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as torch from '../torch/index.js';
import { readCacheIndex } from '../data/cache.js';
import { readScan } from '../data/scan.js';
import { loadT3dCheckpoint } from '../train/factory.js';
import { checkpointId as idOf } from '../train/checkpoint.js';
import { loadEvalConfig } from '../eval/config.js';
import { embedTexts } from '../inference/embed.js';
import { scoresFromPrompts, zeroShotPrompts, type Prompts } from '../eval/tasks/zeroshot.js';
import { type ClassificationReport } from '../eval/metrics/classification-report.js';
import { type EvalRecord } from '../eval/task.js';
import { evaluateCheckpoint } from '../eval/evaluate-checkpoint.js';
import { readJsonFile } from '../util/files.js';

export interface Finding {
  label: string;
  probability: number;
  threshold: number | null;
  positive: boolean | null;
}
export interface Analysis {
  scan: string;
  checkpoint: string;
  checkpointId: string;
  preset: string;
  /** where the thresholds come from (a zero-shot evaluation record), or null when there are none */
  thresholds: string | null;
  findings: Finding[];
  embedding: number[];
  seconds: { load: number; read: number; preprocess: number; encode: number; score: number };
}

/** The zero-shot record of this checkpoint, if the run has one. */
function zeroshotRecord(
  runDir: string,
  checkpointId: string,
): EvalRecord<ClassificationReport & { templates: number }> | undefined {
  const path = join(runDir, 'eval', 'zeroshot.json');
  if (!existsSync(path)) return undefined;
  const r = readJsonFile<EvalRecord<ClassificationReport & { templates: number }>>(path);
  return r.meta?.checkpointId === checkpointId ? r : undefined;
}

/**
 * The prompt embeddings, read from `file` when it holds them for this checkpoint, templates and labels; else computed
 * and saved.
 */
function cachedPrompts(
  file: string,
  key: object,
  compute: () => Prompts,
  o: { device?: string; log: (line: string) => void },
): Prompts {
  const k = JSON.stringify(key);
  if (existsSync(file)) {
    const { tensors, metadata } = torch.loadSafetensors(file, { device: o.device });
    if (metadata.key === k) return { pos: tensors.get('pos')!, neg: tensors.get('neg')! };
    torch.dispose([...tensors.values()]);
  }
  const p = compute();
  try {
    torch.saveSafetensors(file, { pos: p.pos, neg: p.neg }, { key: k });
  } catch (e) {
    o.log(`prompt embeddings not cached (${(e as Error).message})`);
  }
  return p;
}

/** A checkpoint loaded once for many scans: its preset, prompts and thresholds; `analyze` runs one scan. */
export interface Analyzer {
  checkpoint: string;
  checkpointId: string;
  labelNames: string[];
  /** the checkpoint's training cache (relative index sources live there) */
  cacheDir: string;
  /** per finding, the operating threshold (Infinity: never called), or null without a zero-shot record */
  thresholds: (number | null)[];
  /** report-encoder embeddings of free texts (text search), one batch */
  embedTexts(texts: string[]): number[][];
  /** rejectGaps: a DICOM series with missing slices is an error (ingestion), not read as is; series: the
   * SeriesInstanceUID to read from a folder of several */
  analyze(scan: string, o?: { intercept?: number; rejectGaps?: boolean; series?: string }): Promise<Analysis>;
  dispose(): void;
}

export async function openAnalyzer(o: {
  checkpoint: string;
  device?: string;
  log: (line: string) => void;
}): Promise<Analyzer> {
  const t0 = performance.now();
  const { model, tokenizer, config, dir, preset, transform } = loadT3dCheckpoint(o.checkpoint, o.log);
  let prompts: Prompts | undefined;
  try {
    if (o.device && o.device !== 'cpu') model.to({ device: o.device });
    const checkpointId = idOf(dir);
    const runDir = dirname(dirname(dir));
    let record = zeroshotRecord(runDir, checkpointId);
    if (!record && existsSync(join(config.data.cache, 'cache.json'))) {
      o.log(
        `no zero-shot evaluation of ${dir} yet: choosing the operating thresholds on its validation volumes (once)`,
      );
      await evaluateCheckpoint({
        checkpoint: dir,
        tasks: ['zeroshot'],
        config: loadEvalConfig('quick'),
        device: o.device,
      });
      record = zeroshotRecord(runDir, checkpointId);
    }
    const labelNames =
      record?.result.labelNames ??
      (existsSync(join(config.data.cache, 'cache.json')) ? readCacheIndex(config.data.cache).labelNames : undefined);
    if (!labelNames)
      throw new Error(
        `${dir}: no finding names: neither ${join(runDir, 'eval', 'zeroshot.json')} nor the training cache ` +
          `${config.data.cache} exists; run \`t3d eval zeroshot --checkpoint ${runDir} --data <cache>\``,
      );
    model.eval();
    const templates = record?.result.templates ?? 1;
    const scoreStart = performance.now();
    prompts = cachedPrompts(
      join(runDir, 'eval', 'zeroshot-prompts.safetensors'),
      { checkpointId, templates, labelNames },
      () => zeroShotPrompts(model, tokenizer, labelNames, { templates, device: o.device }),
      o,
    );
    const promptSeconds = (performance.now() - scoreStart) / 1000;
    const loadSeconds = (scoreStart - t0) / 1000;
    const p = prompts;
    let first = true;
    const thresholds = labelNames.map((_, l) => {
      const t = record?.result.perLabel[l]?.threshold;
      return t === undefined ? null : t === null ? Infinity : t; // JSON keeps +Infinity as null
    });
    return {
      checkpoint: dir,
      checkpointId,
      labelNames,
      thresholds,
      cacheDir: config.data.cache,
      embedTexts: (texts) => {
        const flat = torch.tidy(() =>
          embedTexts(model, tokenizer, texts, config.data.maxTokens, o.device).to('cpu').to('float32').toArray(),
        );
        const D = flat.length / texts.length;
        return texts.map((_, i) => flat.slice(i * D, (i + 1) * D));
      },
      async analyze(scan, a = {}) {
        const clock = (() => {
          let t = performance.now();
          return () => {
            const now = performance.now();
            const s = (now - t) / 1000;
            t = now;
            return s;
          };
        })();
        const raw = await readScan(scan, { ...a, warn: o.log });
        const read = clock();
        let x: torch.Tensor;
        try {
          x = transform.fromScan(raw, scan, o.device);
        } finally {
          raw.data.dispose();
        }
        const preprocess = clock();
        const emb = torch.noGrad(() => torch.tidy(() => model.encodeVolume(x).emb));
        x.dispose();
        const encode = clock();
        const probs = scoresFromPrompts(model, emb, p)[0]!;
        const embedding = emb.to('cpu').toArray();
        emb.dispose();
        // the first scan carries the one-off costs: loading the checkpoint and embedding the prompts
        const score = clock() + (first ? promptSeconds : 0);
        const load = first ? loadSeconds : 0;
        first = false;
        return {
          scan,
          checkpoint: dir,
          checkpointId,
          preset: preset.name,
          thresholds: record ? join(runDir, 'eval', 'zeroshot.json') : null,
          findings: labelNames.map((label, l) => {
            const threshold = thresholds[l]!;
            return {
              label,
              probability: probs[l]!,
              threshold,
              positive: threshold === null ? null : probs[l]! >= threshold,
            };
          }),
          embedding,
          seconds: { load, read, preprocess, encode, score },
        };
      },
      dispose() {
        torch.dispose([p.pos, p.neg]);
        model.dispose();
      },
    };
  } catch (err) {
    if (prompts) torch.dispose([prompts.pos, prompts.neg]);
    model.dispose();
    throw err;
  }
}

/** One scan with a checkpoint loaded for it (see openAnalyzer for many). */
export async function analyzeScan(
  scan: string,
  o: { checkpoint: string; intercept?: number; series?: string; device?: string; log: (line: string) => void },
): Promise<Analysis> {
  const analyzer = await openAnalyzer(o);
  try {
    return await analyzer.analyze(scan, { intercept: o.intercept, series: o.series });
  } finally {
    analyzer.dispose();
  }
}
