// `t3d analyze <scan> --checkpoint <run>`: one CT scan (a NIfTI file or a DICOM series folder) → the checkpoint's
// own preprocessing → embedding → each finding's zero-shot probability, called at the operating threshold that the
// evaluation chose on validation volumes (Youden's J, from the zero-shot record of the same checkpoint; computed
// once on the checkpoint's cache when no such record exists yet).
import { existsSync, statSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import * as torch from '../torch/index.js';
import { F } from '../torch/index.js';
import { readDicomVolume } from '../io/dicom.js';
import { loadVolume, readCacheIndex } from '../data/cache.js';
import { preprocessImage } from '../data/preprocess-image.js';
import { globalShapeOf, loadPreset } from '../data/presets.js';
import { type Volume } from '../data/volume.js';
import { loadT3dCheckpoint } from '../train/factory.js';
import { checkpointFileSha256 } from '../train/checkpoint.js';
import { loadEvalConfig } from '../eval/config.js';
import { embedTexts, scoresFromPrompts, zeroShotPrompts, type Prompts } from '../eval/tasks/zeroshot.js';
import { type ClassificationReport } from '../eval/metrics/classification-report.js';
import { type EvalRecord } from '../eval/suite.js';
import { readJsonFile } from '../util/files.js';
import { reportGist } from '../text/report.js';
import { DEFAULT_DB, VectorIndex, type Hit } from '../search/vector-index.js';
import { UsageError, parseOptions } from './args.js';
import { evaluateCheckpoint } from './eval.js';

export const ANALYZE_USAGE = `t3d analyze <scan.nii[.gz] | dicom-series-folder> --checkpoint <run-or-checkpoint> [--json] [--out result.json] [--intercept HU] [--db runs/index] [--k 5] [--device cpu|cuda]

Preprocesses the scan with the checkpoint's preset, embeds it, and prints each finding's zero-shot probability with
the operating threshold chosen on validation volumes (the run's eval/zeroshot.json; computed once from the run's
cache when missing). --json prints the result as JSON (with the embedding) instead of the table; --out also writes
it to a file. Values must be HU (NIfTI scaling and DICOM rescale are applied); --intercept adds a constant first,
for raw CT-RATE volumes (--intercept -1024). When the embedding index (--db, default runs/index) has a table for the
checkpoint (\`t3d index\`), the k most similar indexed cases follow, with their reports.

Examples:
  t3d analyze scan.nii.gz --checkpoint runs/demo/t3d-s0
  t3d analyze dicom/series-1/ --checkpoint runs/demo/t3d-s0 --json > result.json`;

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
export type AnalysisWithSimilar = Analysis & { similar?: Hit[]; seconds: Analysis['seconds'] & { search?: number } };

async function readScan(
  scan: string,
  intercept: number | undefined,
  warn: (l: string) => void,
  rejectGaps = false,
): Promise<Volume> {
  if (!existsSync(scan)) throw new Error(`${scan}: no such file or folder`);
  let vol: Volume;
  if (statSync(scan).isDirectory()) {
    const d = await readDicomVolume(scan);
    if (rejectGaps && d.gaps.length > 0)
      throw new Error(`${scan}: partial series: ${d.gaps.length} irregular step(s) between slices (missing slices?)`);
    const [x, y, z] = d.shape;
    vol = { data: torch.tensor(d.data, [z, y, x]), spacing: d.spacing, affine: d.affine };
  } else vol = await loadVolume(scan, new Uint8Array(await readFile(scan)), 'image');
  if (intercept !== undefined) {
    const shifted = torch.tidy(() => vol.data.to('float32').add(intercept));
    vol.data.dispose();
    vol = { ...vol, data: shifted };
  }
  const min = vol.data.min().item();
  if (min > -200)
    warn(
      `${scan}: lowest value is ${min}, but air is ≈ −1000 HU; if these are stored values, pass --intercept (−1024 for raw CT-RATE volumes)`,
    );
  return vol;
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

/** The prompt embeddings, read from `file` when it holds them for this checkpoint, templates and labels; else computed and saved. */
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
  /** rejectGaps: a DICOM series with missing slices is an error (ingestion), not read as is */
  analyze(scan: string, o?: { intercept?: number; rejectGaps?: boolean }): Promise<Analysis>;
  dispose(): void;
}

export async function openAnalyzer(o: {
  checkpoint: string;
  device?: string;
  log: (line: string) => void;
}): Promise<Analyzer> {
  const t0 = performance.now();
  const { model, tokenizer, config, dir } = loadT3dCheckpoint(o.checkpoint, o.log);
  let prompts: Prompts | undefined;
  try {
    if (o.device && o.device !== 'cpu') model.to({ device: o.device });
    const checkpointId = checkpointFileSha256(dir, 'model.safetensors').slice(0, 16);
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
        `${dir}: no finding names: neither ${join(runDir, 'eval', 'zeroshot.json')} nor the training cache ${config.data.cache} exists; run \`t3d eval zeroshot --checkpoint ${runDir} --data <cache>\``,
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
    const preset = loadPreset(config.data.preset);
    const globalShape = globalShapeOf(preset);
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
        const raw = await readScan(scan, a.intercept, o.log, a.rejectGaps);
        const read = clock();
        const image = preprocessImage(raw, preset, scan);
        // the global view, as the loader makes it (trilinear, align_corners=False, when the preset downsamples)
        const x = torch.tidy(() => {
          const v = image.data
            .to('float32')
            .div(preset.scale)
            .reshape(1, 1, ...preset.shape);
          return (globalShape.join() === preset.shape.join() ? v : F.interpolate(v, globalShape, 'trilinear')).to({
            device: o.device ?? 'cpu',
          });
        });
        image.data.dispose();
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
  o: { checkpoint: string; intercept?: number; device?: string; log: (line: string) => void },
): Promise<Analysis> {
  const analyzer = await openAnalyzer(o);
  try {
    return await analyzer.analyze(scan, { intercept: o.intercept });
  } finally {
    analyzer.dispose();
  }
}

function table(a: AnalysisWithSimilar): string {
  const w = Math.max(...a.findings.map((f) => f.label.length));
  const rows = a.findings.map(
    (f) =>
      `  ${f.label.padEnd(w)}  ${f.probability.toFixed(3)}  ${f.threshold === null ? '   —' : Number.isFinite(f.threshold) ? f.threshold.toFixed(3) : ' never'}  ${f.positive === null ? '' : f.positive ? 'POSITIVE' : 'negative'}`,
  );
  const s = a.seconds;
  return [
    `${a.scan} — checkpoint ${a.checkpoint} (id ${a.checkpointId}, preset ${a.preset})`,
    `  ${'finding'.padEnd(w)}  prob.  thresh.  call`,
    ...rows,
    a.thresholds
      ? `  thresholds: Youden's J on validation volumes, from ${a.thresholds}`
      : '  no thresholds: probabilities only',
    ...(a.similar
      ? [
          '  most similar indexed cases:',
          ...a.similar.map(
            (h, i) =>
              `  ${String(i + 1).padStart(2)}. ${h.similarity.toFixed(3)} ${h.id} [${h.split}] ${h.labels.join(', ') || 'no findings'}\n      ${reportGist(h.report)}`,
          ),
        ]
      : []),
    `  time: read ${s.read.toFixed(2)} s, preprocess ${s.preprocess.toFixed(2)} s, encode ${s.encode.toFixed(2)} s, score ${s.score.toFixed(2)} s${s.search !== undefined ? `, search ${s.search.toFixed(3)} s` : ''} (checkpoint load ${s.load.toFixed(2)} s)`,
  ].join('\n');
}

export async function runAnalyze(args: string[]): Promise<void> {
  const [scan, ...rest] = args;
  if (!scan || scan.startsWith('--'))
    throw new UsageError('analyze: give a scan (NIfTI file or DICOM series folder) first, then --checkpoint <run>');
  const o = parseOptions(rest, {
    checkpoint: 'string',
    json: 'boolean',
    out: 'string',
    intercept: 'number',
    device: 'string',
    db: 'string',
    k: 'number',
  });
  if (!o.checkpoint) throw new UsageError('analyze: --checkpoint <run-or-checkpoint> is required');
  const k = (o.k as number | undefined) ?? 5;
  if (!(Number.isInteger(k) && k >= 1)) throw new UsageError(`analyze: --k must be a positive integer, got ${k}`);
  const db = (o.db as string | undefined) ?? DEFAULT_DB;
  if (o.db && !existsSync(db)) throw new Error(`analyze: --db ${db}: no such index`);
  const a: AnalysisWithSimilar = await analyzeScan(scan, {
    checkpoint: o.checkpoint as string,
    intercept: o.intercept as number | undefined,
    device: o.device as string | undefined,
    log: (l) => console.error(`t3d: ${l}`),
  });
  if (existsSync(db)) {
    const index = await VectorIndex.open(db, a.checkpointId);
    if ((await index.count()) > 0) {
      const t = performance.now();
      a.similar = await index.search(a.embedding, { k });
      a.seconds.search = (performance.now() - t) / 1000;
    } else if (o.db)
      console.error(
        `t3d: ${db} has no table for checkpoint ${a.checkpointId}; run \`t3d index --checkpoint ${o.checkpoint} --db ${db}\` for similar cases`,
      );
  }
  const json = JSON.stringify(a, (_, v: unknown) => (v === Infinity ? 'Infinity' : v));
  if (o.out) writeFileSync(o.out as string, json + '\n');
  console.log(o.json ? json : `${table(a)}${o.out ? `\n  written: ${o.out}` : ''}`);
  if (!o.json && !o.out)
    console.log(
      `  (--json or --out ${basename(scan).replace(/(\.nii)?(\.gz)?$/, '')}.json for the full result with the embedding)`,
    );
}
