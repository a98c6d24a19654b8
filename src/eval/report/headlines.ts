// The headline numbers of each evaluation record (what a paper table shows), and, where the record keeps
// per-volume data, the statistic recomputed on resampled test volumes (for pooled and paired bootstraps).
import { type EvalRecord } from '../task.js';
import { type ClassificationReport, type Ci } from '../metrics/classification-report.js';
import { auroc, binaryStats } from '../metrics/classification.js';
import { rankSummary } from '../metrics/retrieval.js';
import { type RetrievalReport } from '../tasks/retrieval.js';

export interface Headline {
  /** stable key across runs, e.g. 'zeroshot/auroc', 'probe-10pct/auroc', 'retrieval/r2v R@5' */
  key: string;
  value: number;
  ci?: Ci;
  /** the metric on resampled test volumes (indices into the record's test volumes) */
  resample?: (idx: Int32Array) => number;
  /** test volume names, in the order `resample` indexes them */
  names?: string[];
}

type Cls = ClassificationReport & {
  test?: { names: string[]; scores: number[][]; labels: number[][] };
  transfer?: { testNames: string[]; testScores: number[][]; testLabels: number[][] };
};

/** A named subset of the labels (e.g. the fine-grained findings) whose macro AUROC gets its own headline. */
export interface LabelSubset {
  name: string;
  labels: string[];
}

function classification(prefix: string, r: Cls, subset?: LabelSubset): Headline[] {
  const t =
    r.test ??
    (r.transfer
      ? { names: r.transfer.testNames, scores: r.transfer.testScores, labels: r.transfer.testLabels }
      : undefined);
  // JSON has no Infinity: a Youden threshold of +Infinity (no cut beats "all negative") is read back as null
  const thresholds = r.perLabel.map((p) => p.threshold ?? Infinity);
  const macro = (idx: Int32Array, f: (s: number[], y: number[], thr: number) => number, only?: Set<number>): number => {
    let sum = 0,
      n = 0;
    thresholds.forEach((thr, l) => {
      if (only && !only.has(l)) return;
      const y = Array.from(idx, (i) => t!.labels[i]![l]!);
      const pos = y.filter(Boolean).length;
      if (pos === 0 || pos === y.length) return;
      sum += f(
        Array.from(idx, (i) => t!.scores[i]![l]!),
        y,
        thr,
      );
      n++;
    });
    return n ? sum / n : NaN;
  };
  const h = (m: 'auroc' | 'f1' | 'accuracy', f: (s: number[], y: number[], thr: number) => number): Headline => ({
    key: `${prefix}/${m}`,
    value: r.macro[m],
    ci: r.macroCi[m],
    names: t?.names,
    resample: t ? (idx) => macro(idx, f) : undefined,
  });
  const out = [
    h('auroc', (s, y) => auroc(s, y)),
    h('f1', (s, y, thr) => binaryStats(s, y, thr).f1),
    h('accuracy', (s, y, thr) => binaryStats(s, y, thr).accuracy),
    { key: `${prefix}/ap`, value: r.macro.ap, ci: r.macroCi.ap },
  ];
  if (subset) {
    const only = new Set(r.labelNames.flatMap((n, l) => (subset.labels.includes(n) ? [l] : [])));
    const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
    // from the per-volume scores when the record keeps them, else the mean of the recorded per-label AUROCs
    const value = t
      ? macro(
          Int32Array.from(t.names, (_, i) => i),
          (sc, y) => auroc(sc, y),
          only,
        )
      : mean(
          r.perLabel
            .filter((_, l) => only.has(l))
            .map((p) => p.auroc)
            .filter(Number.isFinite),
        );
    if (only.size)
      out.push({
        key: `${prefix}/auroc ${subset.name}`,
        value,
        names: t?.names,
        resample: t ? (idx) => macro(idx, (sc, y) => auroc(sc, y), only) : undefined,
      });
  }
  return out;
}

function retrieval(prefix: string, r: RetrievalReport & { names: string[] }): Headline[] {
  const out: Headline[] = [];
  for (const [dir, d] of [
    ['r2v', r.reportToVolume],
    ['v2r', r.volumeToReport],
  ] as const) {
    for (const [k, v] of Object.entries(d.recall)) {
      out.push({
        key: `${prefix}/${dir} ${k}`,
        value: v,
        ci: d.recallCi[k],
        names: r.names,
        resample: (idx) =>
          rankSummary(
            Array.from(idx, (i) => d.ranks[i]!),
            [Number(k.slice(2))],
          ).recall[k]!,
      });
    }
    out.push({ key: `${prefix}/${dir} median rank`, value: d.medianRank });
  }
  for (const [k, v] of Object.entries(r.volumeToVolumeMap)) out.push({ key: `${prefix}/v2v ${k}`, value: v });
  return out;
}

interface SegResult {
  dice: { mean: number; perClass: Record<string, number> };
  hd95: { mean: number };
  perCase: { name: string; dice: number[] }[];
}
function segmentation(prefix: string, r: SegResult): Headline[] {
  const caseMean = r.perCase.map((c) => {
    const d = c.dice.filter(Number.isFinite);
    return d.length ? d.reduce((a, b) => a + b, 0) / d.length : NaN;
  });
  return [
    {
      key: `${prefix}/dice`,
      value: r.dice.mean,
      names: r.perCase.map((c) => c.name),
      resample: (idx) => {
        const v = Array.from(idx, (i) => caseMean[i]!).filter(Number.isFinite);
        return v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN;
      },
    },
    { key: `${prefix}/hd95 mm`, value: r.hd95.mean },
  ];
}

interface GenResult {
  bleu1: number;
  bleu4: number;
  rougeL: number;
  meteor: number;
  clinical: { microF1: number; macroF1: number };
}
function reportgen(r: GenResult): Headline[] {
  return [
    { key: 'reportgen/BLEU-1', value: r.bleu1 },
    { key: 'reportgen/BLEU-4', value: r.bleu4 },
    { key: 'reportgen/ROUGE-L', value: r.rougeL },
    { key: 'reportgen/METEOR', value: r.meteor },
    { key: 'reportgen/CE micro-F1', value: r.clinical.microF1 },
    { key: 'reportgen/CE macro-F1', value: r.clinical.macroF1 },
  ];
}

export function headlines(rec: EvalRecord, subset?: LabelSubset): Headline[] {
  const { task, variant } = rec.meta;
  const prefix = variant ? `${task}-${variant}` : task;
  switch (task) {
    case 'zeroshot':
    case 'probe':
    case 'finetune':
      return classification(prefix, rec.result as Cls, subset);
    case 'retrieval':
      return retrieval(prefix, rec.result as RetrievalReport & { names: string[] });
    case 'segmentation':
      return segmentation(prefix, rec.result as SegResult);
    case 'reportgen':
      return reportgen(rec.result as GenResult);
    // a task without headline numbers still has its record
    default:
      return [];
  }
}

export const fmt = (v: number, digits = 3): string => (Number.isFinite(v) ? v.toFixed(digits) : String(v));
const fmtCi = (ci?: Ci): string => (ci ? ` [${fmt(ci[0])}, ${fmt(ci[1])}]` : '');

/** One target's results as a Markdown table (metric, value, 95 % CI). */
export function markdownSummary(records: EvalRecord[], title: string): string {
  const lines = [`# ${title}`, '', '| metric | value [95 % CI] |', '|---|---|'];
  for (const rec of records) for (const h of headlines(rec)) lines.push(`| ${h.key} | ${fmt(h.value)}${fmtCi(h.ci)} |`);
  const m = records[0]?.meta;
  if (m)
    lines.push(
      '',
      `Checkpoint ${m.checkpoint} (id ${m.checkpointId}, ${m.init}, pre-training seed ${m.pretrainSeed}, ` +
        `config ${m.configHash}); evaluation '${m.evalConfig}' (${m.evalConfigHash}), seed ${m.evalSeed}; ` +
        `data ${m.data}.`,
    );
  const z = records.find((r) => r.meta.task === 'zeroshot' || r.meta.task === 'probe');
  if (z)
    lines.push(
      `Thresholds: ${(z.result as ClassificationReport).thresholdRule}. ` +
        'CIs: percentile bootstrap over test volumes ' +
        `(${(z.result as ClassificationReport).bootstrap.resamples} resamples).`,
    );
  return lines.join('\n') + '\n';
}
