// A checkpoint opened for scans: one CT scan (a NIfTI file or a DICOM series folder) → the checkpoint's own
// preprocessing → embedding → each finding's zero-shot probability, called at an operating threshold chosen on the
// evaluation's validation volumes (Youden's J as the evaluation does, or a target specificity) and described by its
// sensitivity, specificity and PPV on the evaluation's test volumes (from the zero-shot record of the same
// checkpoint; computed once on the checkpoint's cache when no such record exists yet). `t3d analyze`, the indexers
// and the server use it.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as torch from '../torch/index.js';
import { readCacheIndex } from '../data/cache.js';
import { readScan } from '../data/scan.js';
import { assertAcceptable, inspectScan, type ScanWarning } from '../data/scan-checks.js';
import { loadT3dCheckpoint } from '../train/factory.js';
import { checkpointId as idOf } from '../train/checkpoint.js';
import { loadEvalConfig } from '../eval/config.js';
import { embedTexts } from '../inference/embed.js';
import { CT_RATE_LABELS } from '../domain/ct-rate.js';
import { scoresFromPrompts, zeroShotPrompts, type Prompts } from '../eval/tasks/zeroshot.js';
import { type ClassificationReport, type Scored } from '../eval/metrics/classification-report.js';
import {
  describeRule,
  describeThresholds,
  ruleThresholds,
  type OperatingPoints,
  type OperatingRule,
} from '../eval/metrics/operating-points.js';
import { type EvalRecord } from '../eval/task.js';
import { evaluateCheckpoint } from '../eval/evaluate-checkpoint.js';
import { readJsonFile } from '../util/files.js';

export interface Finding {
  label: string;
  probability: number;
  threshold: number | null;
  positive: boolean | null;
  /** the operating point's rates on the evaluation's test volumes; null without a zero-shot record */
  sensitivity: number | null;
  specificity: number | null;
  ppv: number | null;
}

const finiteOrNull = (v: number | undefined): number | null => (v !== undefined && Number.isFinite(v) ? v : null);

/** Said wherever calls are shown: what a call is and is not. */
export const SCREENING_NOTE =
  'Calls are zero-shot screening signals from a research model, not diagnoses: read each with its sensitivity, ' +
  'specificity and PPV, measured on the evaluation’s test volumes.';
export const IMAGE_ONLY_NOTE =
  'No zero-shot findings: this model was imported image-only (its text tower is not loaded), so it gives the ' +
  'embedding and similar cases only.';
/** An imported model never evaluated: what its scores are, and how to get calls. */
export const uncalibratedNote = (runDir: string): string =>
  'No calls: this imported model has not been evaluated, so its zero-shot probabilities over CT-RATE’s findings ' +
  `have no thresholds; run \`t3d eval zeroshot --checkpoint ${runDir} --data <cache>\` to choose them on your data.`;
export interface Analysis {
  scan: string;
  checkpoint: string;
  checkpointId: string;
  preset: string;
  /** where the thresholds come from (a zero-shot evaluation record), or null when there are none */
  thresholds: string | null;
  /** the rule, and what it did on the evaluation's test volumes: calls and reference labels per volume */
  operatingPoint: { rule: string; callsPerVolume: number; labelsPerVolume: number } | null;
  note: string;
  findings: Finding[];
  /** what the scan checks found (data/scan-checks.ts), judged against this checkpoint's preset */
  warnings: ScanWarning[];
  embedding: number[];
  seconds: { load: number; read: number; check: number; preprocess: number; encode: number; score: number };
}

type ZeroShotResult = ClassificationReport & { templates: number; test?: Scored; validation?: Scored };

/** The zero-shot record of this checkpoint, if the run has one. */
function zeroshotRecord(runDir: string, checkpointId: string): EvalRecord<ZeroShotResult> | undefined {
  const path = join(runDir, 'eval', 'zeroshot.json');
  if (!existsSync(path)) return undefined;
  const r = readJsonFile<EvalRecord<ZeroShotResult>>(path);
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
  /** how to read the results: screening signals, or (image-only model) why there are no findings */
  note: string;
  /** the checkpoint's training cache (relative index sources live there); none for an imported model */
  cacheDir?: string;
  /** per finding, the operating threshold (Infinity: never called), or null without a zero-shot record */
  thresholds: (number | null)[];
  /** the thresholds' rates on the evaluation's test volumes, or null without a zero-shot record */
  operating: OperatingPoints | null;
  /** report-encoder embeddings of free texts (text search), one batch */
  embedTexts(texts: string[]): number[][];
  /**
   * rejectGaps: a DICOM series with missing slices is an error (ingestion), not read as is. A scan its checks refuse
   * is a ScanRefusedError unless `force`. series: the SeriesInstanceUID to read from a folder of several.
   */
  analyze(scan: string, o?: AnalyzeOptions): Promise<Analysis>;
  dispose(): void;
}

export interface AnalyzeOptions {
  intercept?: number;
  rejectGaps?: boolean;
  force?: boolean;
  series?: string;
}

export async function openAnalyzer(o: {
  checkpoint: string;
  /** how findings are called; Youden's J (the evaluation's rule) by default */
  operatingPoint?: OperatingRule;
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
    // an image-only model (no text tower) has no findings to call: embedding and similar cases only
    const imageOnly = !model.text;

    let record = imageOnly ? undefined : zeroshotRecord(runDir, checkpointId);
    // an imported model has no training cache: its thresholds come from `t3d eval zeroshot --data`
    const trainingCache = config.data.cache;
    const hasCache = trainingCache !== undefined && existsSync(join(trainingCache, 'cache.json'));
    if (!record && hasCache && !imageOnly) {
      o.log(
        `no zero-shot evaluation of ${dir} yet: choosing the operating thresholds on its validation volumes (once)`,
      );
      await evaluateCheckpoint({
        checkpoint: dir,
        tasks: ['zeroshot'],
        config: loadEvalConfig('quick'),
        device: o.device,
        log: (line) => o.log(`eval: ${line}`), // not stdout, where --json output goes
      });
      record = zeroshotRecord(runDir, checkpointId);
    }
    // an imported model that was never evaluated scores CT-RATE's findings, with no thresholds to call them by
    const uncalibrated = !imageOnly && !record && !hasCache;
    const labelNames = imageOnly
      ? []
      : (record?.result.labelNames ?? (hasCache ? readCacheIndex(trainingCache).labelNames : [...CT_RATE_LABELS]));
    const note = imageOnly ? IMAGE_ONLY_NOTE : uncalibrated ? uncalibratedNote(runDir) : SCREENING_NOTE;
    model.eval();
    const templates = record?.result.templates ?? 1;
    const scoreStart = performance.now();
    prompts = imageOnly
      ? undefined
      : cachedPrompts(
          join(runDir, 'eval', 'zeroshot-prompts.safetensors'),
          { checkpointId, templates, labelNames },
          () => zeroShotPrompts(model, tokenizer, labelNames, { templates, device: o.device }),
          o,
        );
    const promptSeconds = (performance.now() - scoreStart) / 1000;
    const loadSeconds = (scoreStart - t0) / 1000;
    const p = prompts;
    let first = true;
    const { thresholds, operating } = operatingPointOf(
      record,
      labelNames,
      o.operatingPoint ?? { kind: 'youden' },
      runDir,
    );
    return {
      checkpoint: dir,
      checkpointId,
      labelNames,
      note,
      thresholds,
      operating,
      cacheDir: trainingCache,
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
        const raw = await readScan(scan, { intercept: a.intercept, rejectGaps: a.rejectGaps, series: a.series });
        const read = clock();
        let x: torch.Tensor, warnings: ScanWarning[], check: number;
        try {
          const inspection = inspectScan(raw, preset);
          assertAcceptable(scan, inspection, a.force);
          warnings = inspection.warnings;
          check = clock();
          x = transform.fromScan(raw, scan, o.device);
        } finally {
          raw.data.dispose();
        }
        const preprocess = clock();
        const emb = torch.noGrad(() => torch.tidy(() => model.encodeVolume(x).emb));
        x.dispose();
        const encode = clock();
        const probs = p ? scoresFromPrompts(model, emb, p)[0]! : [];
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
          operatingPoint: operating && {
            rule: operating.rule,
            callsPerVolume: operating.callsPerVolume,
            labelsPerVolume: operating.labelsPerVolume,
          },
          note,
          findings: labelNames.map((label, l) => {
            const threshold = thresholds[l]!;
            const rates = operating?.perLabel[l];
            return {
              label,
              probability: probs[l]!,
              threshold,
              positive: threshold === null ? null : probs[l]! >= threshold,
              sensitivity: finiteOrNull(rates?.sensitivity),
              specificity: finiteOrNull(rates?.specificity),
              ppv: finiteOrNull(rates?.ppv),
            };
          }),
          warnings,
          embedding,
          seconds: { load, read, check, preprocess, encode, score },
        };
      },
      dispose() {
        if (p) torch.dispose([p.pos, p.neg]);
        model.dispose();
      },
    };
  } catch (err) {
    if (prompts) torch.dispose([prompts.pos, prompts.neg]);
    model.dispose();
    throw err;
  }
}

/**
 * The thresholds for a rule and their rates on the record's test volumes. Youden's J reads the record's own
 * thresholds (so calls agree with the evaluation's F1 and accuracy); another rule needs the record's validation
 * scores, which records written before operating points existed lack.
 */
function operatingPointOf(
  record: EvalRecord<ZeroShotResult> | undefined,
  labelNames: string[],
  rule: OperatingRule,
  runDir: string,
): { thresholds: (number | null)[]; operating: OperatingPoints | null } {
  if (!record) {
    if (rule.kind !== 'youden')
      throw new Error(`${runDir}: no zero-shot record to choose a ${describeRule(rule)} operating point from`);
    return { thresholds: labelNames.map(() => null), operating: null };
  }
  const r = record.result;
  let thresholds: (number | null)[];
  if (rule.kind === 'youden')
    thresholds = labelNames.map((_, l) => {
      const t = r.perLabel[l]?.threshold;
      return t === undefined ? null : t === null ? Infinity : t; // JSON keeps +Infinity as null
    });
  else if (r.validation) thresholds = ruleThresholds(r.validation, rule);
  else
    throw new Error(
      `${join(runDir, 'eval', 'zeroshot.json')} predates operating points (no validation scores): move it away and ` +
        `run \`t3d eval zeroshot --checkpoint ${runDir}\` again, or use Youden's J (the default)`,
    );
  return { thresholds, operating: r.test ? describeThresholds(r.test, thresholds, describeRule(rule)) : null };
}

/** One scan with a checkpoint loaded for it (see openAnalyzer for many). */
export async function analyzeScan(
  scan: string,
  o: AnalyzeOptions & {
    checkpoint: string;
    operatingPoint?: OperatingRule;
    device?: string;
    log: (line: string) => void;
  },
): Promise<Analysis> {
  const analyzer = await openAnalyzer(o);
  try {
    return await analyzer.analyze(scan, { intercept: o.intercept, force: o.force, series: o.series });
  } finally {
    analyzer.dispose();
  }
}
