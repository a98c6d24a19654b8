// One self-contained HTML page (inline SVG plots, PNG overlays as data URLs, no scripts, no external
// files) for a target's evaluation records, and one for a study table.
import { existsSync, readFileSync } from 'node:fs';
import { type EvalRecord } from '../task.js';
import { type ClassificationReport } from '../metrics/classification-report.js';
import { type RetrievalReport } from '../tasks/retrieval.js';
import { fmt, headlines } from './headlines.js';
import { barWithCi, linePlot, type Row } from './plots.js';
import { noiseVerdict, type Method, type PairedDiff, type studyTable } from './compare.js';

const esc = (s: string): string =>
  s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
const CSS =
  'body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#222}h1{font-size:22px}' +
  'h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}\n' +
  'table{border-collapse:collapse;margin:8px 0}' +
  'td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f4f4f4}\n' +
  '.plots{display:flex;flex-wrap:wrap;gap:16px}.ok{background:#e3f4e1}.bad{background:#fbe3e1}' +
  '.small{color:#666;font-size:12px}img{image-rendering:pixelated;max-width:100%}';

function page(title: string, body: string[]): string {
  return (
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>` +
    `<style>${CSS}</style></head><body><h1>${esc(title)}</h1>${body.join('\n')}</body></html>\n`
  );
}
const table = (head: string[], rows: string[][]): string =>
  `<table><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr>` +
  `${rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('')}</table>`;

/** Pre-training loss curves from a run's metrics.jsonl (training lines only). */
async function lossCurves(metricsPath: string): Promise<string> {
  const rows: Row[] = [];
  for (const line of readFileSync(metricsPath, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const m = JSON.parse(line) as Record<string, unknown>;
    if (m.validation || typeof m.loss !== 'number') continue;
    for (const k of ['loss', 'clip', 'tma', 'ssl', 'restoration'])
      if (typeof m[k] === 'number') rows.push({ step: m.step as number, value: m[k] as number, part: k });
  }
  return rows.length
    ? linePlot(rows, { x: 'step', y: 'value', series: 'part', title: 'Pre-training losses', yTitle: 'loss' })
    : '';
}

async function classificationSection(rec: EvalRecord): Promise<string> {
  const r = rec.result as ClassificationReport & {
    fraction?: number;
    transfer?: {
      valAuroc: number[];
      trainLoss: number[];
      bestEpoch: number;
      secondsPerEpoch: number;
      trainCount: number;
    };
  };
  const roc: Row[] = r.roc.flatMap((c) => c.fpr.map((f, i) => ({ fpr: f, tpr: c.tpr[i]!, label: c.label })));
  const plots = [
    await linePlot(roc, {
      x: 'fpr',
      y: 'tpr',
      series: 'label',
      title: 'ROC curves (test)',
      xTitle: 'false positive rate',
      yTitle: 'true positive rate',
      diagonal: true,
      width: 300,
      height: 300,
    }),
  ];
  if (r.transfer) {
    const curves: Row[] = [
      ...r.transfer.valAuroc.map((v, e) => ({ epoch: e + 1, value: v, curve: 'validation macro-AUROC' })),
      ...r.transfer.trainLoss.map((v, e) => ({ epoch: e + 1, value: v, curve: 'training BCE' })),
    ];
    plots.push(
      await linePlot(curves, {
        x: 'epoch',
        y: 'value',
        series: 'curve',
        title: `Training (best epoch ${r.transfer.bestEpoch + 1}, ${r.transfer.trainCount} labelled volumes)`,
      }),
    );
  }
  const rows = r.perLabel.map((p, l) => [
    esc(p.label),
    String(p.positives),
    `${fmt(p.auroc)} [${fmt(r.aurocCi[l]![0])}, ${fmt(r.aurocCi[l]![1])}]`,
    fmt(p.ap),
    fmt(p.f1),
    fmt(p.precision),
    fmt(p.recall),
    fmt(p.accuracy),
    fmt(p.threshold),
  ]);
  rows.push([
    '<b>macro</b>',
    `${r.labelsCounted} labels`,
    ...(['auroc', 'ap', 'f1', 'precision', 'recall', 'accuracy'] as const).map(
      (m) => `<b>${fmt(r.macro[m])}</b> [${fmt(r.macroCi[m][0])}, ${fmt(r.macroCi[m][1])}]`,
    ),
    '',
  ]);
  const head = [
    'label',
    'test positives',
    'AUROC [95 % CI]',
    'AP',
    'F1',
    'precision',
    'recall',
    'accuracy',
    'threshold',
  ];
  return (
    `<div class="plots">${plots.join('')}</div>${table(head, rows)}` +
    `<p class="small">Thresholds: ${esc(r.thresholdRule)}. CIs: percentile bootstrap over test volumes, ` +
    `${r.bootstrap.resamples} resamples, seed ${r.bootstrap.seed}.</p>`
  );
}

async function retrievalSection(rec: EvalRecord): Promise<string> {
  const r = rec.result as RetrievalReport;
  const curve: Row[] = r.curve.k.flatMap((k, i) => [
    { K: k, recall: r.curve.reportToVolume[i]!, direction: 'report → volume' },
    { K: k, recall: r.curve.volumeToReport[i]!, direction: 'volume → report' },
  ]);
  const plot = await linePlot(curve, {
    x: 'K',
    y: 'recall',
    series: 'direction',
    title: `Recall@K (${r.candidates} candidates)`,
    logX: true,
    yDomain: [0, 1],
  });
  const dirRows = (
    [
      ['report → volume', r.reportToVolume],
      ['volume → report', r.volumeToReport],
    ] as const
  ).map(([name, d]) => [
    name,
    Object.entries(d.recall)
      .map(([k, v]) => `${k} ${fmt(v)} [${fmt(d.recallCi[k]![0])}, ${fmt(d.recallCi[k]![1])}]`)
      .join('<br>'),
    fmt(d.medianRank, 1),
    fmt(d.meanRank, 1),
  ]);
  const map = Object.entries(r.volumeToVolumeMap)
    .map(([k, v]) => `${k} ${fmt(v)}`)
    .join(', ');
  return (
    `<div class="plots">${plot}</div>` +
    `${table(['direction', 'recall@K [95 % CI]', 'median rank', 'mean rank'], dirRows)}` +
    `<p>Volume → volume ${esc(map)} (relevance: label overlap, as CT-CLIP).</p>`
  );
}

interface SegRecord {
  mode: string;
  fraction: number;
  classes: string[];
  dice: { mean: number; perClass: Record<string, number> };
  hd95: { mean: number; perClass: Record<string, number> };
  overlays: string[];
  trainLoss: number[];
  volumesPerSecond: number;
}
function segmentationSection(rec: EvalRecord): string {
  const r = rec.result as SegRecord;
  const cls = Object.keys(r.dice.perClass);
  const imgs = r.overlays
    .filter((p) => existsSync(p))
    .map((p) => `<img alt="overlay" src="data:image/png;base64,${readFileSync(p).toString('base64')}">`)
    .join('');
  const scores = table(
    ['', ...cls, 'mean'],
    [
      ['Dice', ...cls.map((c) => fmt(r.dice.perClass[c]!)), `<b>${fmt(r.dice.mean)}</b>`],
      ['HD95 (mm)', ...cls.map((c) => fmt(r.hd95.perClass[c] ?? NaN, 1)), `<b>${fmt(r.hd95.mean, 1)}</b>`],
    ],
  );
  return (
    `${scores}\n<p class="small">Sliding-window inference: ${fmt(r.volumesPerSecond, 2)} volumes/s. ` +
    'Overlays (prediction colours over the test image; axial, coronal, sagittal):</p>' +
    `<div class="plots">${imgs}</div>`
  );
}

interface GenRecord {
  bleu1: number;
  bleu2: number;
  bleu3: number;
  bleu4: number;
  rougeL: number;
  meteor: number;
  meteorVariant: string;
  decoding: string;
  extractorAgreementOnReferences: number;
  clinical: {
    microPrecision: number;
    microRecall: number;
    microF1: number;
    macroPrecision: number;
    macroRecall: number;
    macroF1: number;
  };
  samples: { name: string; reference: string; generated: string; refLabels: number[]; genLabels: number[] }[];
}
function reportgenSection(rec: EvalRecord, labelNames: string[]): string {
  const r = rec.result as GenRecord;
  const c = r.clinical;
  const metrics = table(
    ['BLEU-1', 'BLEU-2', 'BLEU-3', 'BLEU-4', 'ROUGE-L', 'METEOR', 'CE micro P / R / F1', 'CE macro P / R / F1'],
    [
      [
        fmt(r.bleu1),
        fmt(r.bleu2),
        fmt(r.bleu3),
        fmt(r.bleu4),
        fmt(r.rougeL),
        fmt(r.meteor),
        `${fmt(c.microPrecision)} / ${fmt(c.microRecall)} / ${fmt(c.microF1)}`,
        `${fmt(c.macroPrecision)} / ${fmt(c.macroRecall)} / ${fmt(c.macroF1)}`,
      ],
    ],
  );
  const marks = (s: { refLabels: number[]; genLabels: number[] }) =>
    s.refLabels
      .map((y, l) =>
        y || s.genLabels[l]
          ? `<span class="${y === s.genLabels[l] ? 'ok' : 'bad'}">${esc(labelNames[l] ?? String(l))}` +
            `${y ? '' : ' (not in reference)'}${s.genLabels[l] ? '' : ' (missed)'}</span>`
          : '',
      )
      .filter(Boolean)
      .join(', ');
  const samples = table(
    ['volume', 'reference', 'generated', 'labels (green: agree, red: disagree)'],
    r.samples.slice(0, 6).map((s) => [esc(s.name), esc(s.reference), esc(s.generated), marks(s) || 'none']),
  );
  return (
    `${metrics}<p class="small">Decoding: ${esc(r.decoding)}. METEOR: ${esc(r.meteorVariant)}. ` +
    'Clinical efficacy: the 18 labels extracted by the rule-based extractor from generated and reference reports ' +
    '(its agreement with the ground-truth labels on the reference reports: ' +
    `${fmt(r.extractorAgreementOnReferences)}).</p>${samples}`
  );
}

const TITLES: Record<string, string> = {
  zeroshot: 'Zero-shot classification',
  retrieval: 'Cross-modal retrieval',
  probe: 'Linear probe (frozen encoder)',
  finetune: 'Fine-tuning',
  segmentation: 'Segmentation',
  reportgen: 'Report generation',
};

/**
 * A target's report; `intro` paragraphs (plain text) go first, and `comparison` adds the side-by-side table of
 * several methods (the demo's T3D vs CLIP-only).
 */
export async function targetReportHtml(
  records: EvalRecord[],
  o: {
    title: string;
    metricsPath?: string;
    labelNames: string[];
    intro?: string[];
    comparison?: { methods: Method[]; table: ReturnType<typeof studyTable> };
  },
): Promise<string> {
  const body: string[] = (o.intro ?? []).map((p) => `<p>${esc(p)}</p>`);
  const m = records[0]?.meta;
  if (m)
    body.push(
      `<p class="small">Checkpoint ${esc(m.checkpoint)} (id ${m.checkpointId}, ${m.init}, ` +
        `pre-training seed ${m.pretrainSeed}, config ${m.configHash}); ` +
        `evaluation '${esc(m.evalConfig)}' (${m.evalConfigHash}), seed ${m.evalSeed}; data ${esc(m.data)}.</p>`,
    );
  body.push(
    '<h2>Summary</h2>',
    table(
      ['metric', 'value [95 % CI]'],
      records
        .flatMap((r) => headlines(r))
        .map((h) => [esc(h.key), `${fmt(h.value)}${h.ci ? ` [${fmt(h.ci[0])}, ${fmt(h.ci[1])}]` : ''}`]),
    ),
  );
  if (o.comparison)
    body.push(
      `<h2>Side by side: ${esc(o.comparison.methods.map((x) => x.name).join(', '))}</h2>`,
      ...(await studySection(o.comparison.methods, o.comparison.table)),
    );
  if (o.metricsPath && existsSync(o.metricsPath))
    body.push('<h2>Pre-training</h2>', `<div class="plots">${await lossCurves(o.metricsPath)}</div>`);
  for (const rec of records) {
    const t = rec.meta.task;
    const variant = rec.meta.variant ? ` — ${esc(rec.meta.variant.replace('pct', ' % of labels'))}` : '';
    body.push(`<h2>${TITLES[t] ?? esc(t)}${variant}</h2><p class="small">${fmt(rec.meta.seconds, 0)} s</p>`);
    if (t === 'zeroshot' || t === 'probe' || t === 'finetune') body.push(await classificationSection(rec));
    else if (t === 'retrieval') body.push(await retrievalSection(rec));
    else if (t === 'segmentation') body.push(segmentationSection(rec));
    else if (t === 'reportgen') body.push(reportgenSection(rec, o.labelNames));
  }
  return page(o.title, body);
}

export async function studyReportHtml(
  methods: Method[],
  t: ReturnType<typeof studyTable>,
  o: { title: string },
): Promise<string> {
  return page(o.title, await studySection(methods, t));
}

function verdictCell(d: PairedDiff): string {
  const v = noiseVerdict(d);
  return v === 'no' ? 'no' : `<span class="${v === 'better' ? 'ok' : 'bad'}">yes: ${esc(d.treatment)} ${v}</span>`;
}

async function studySection(methods: Method[], t: ReturnType<typeof studyTable>): Promise<string[]> {
  const body: string[] = [];
  const names = methods.map((m) => m.name);
  const plotKeys = ['zeroshot/auroc', 'probe-100pct/auroc', 'finetune-100pct/auroc', 'retrieval/r2v R@5'].filter((k) =>
    t.keys.includes(k),
  );
  const plots = await Promise.all(
    plotKeys.map((key) =>
      barWithCi(
        t.rows
          .filter((r) => r.key === key)
          .map((r) => ({ name: r.method, value: r.mean, lo: r.ci?.[0], hi: r.ci?.[1] })),
        { title: key, xTitle: 'mean over seeds (95 % CI)' },
      ),
    ),
  );
  body.push(`<div class="plots">${plots.join('')}</div>`);
  body.push(
    table(
      ['metric', ...names],
      t.keys.map((key) => [
        esc(key),
        ...names.map((n) => {
          const r = t.rows.find((x) => x.key === key && x.method === n);
          return r
            ? `${fmt(r.mean)}${r.perSeed.length > 1 ? ` ± ${fmt(r.sd)}` : ''}` +
                `${r.ci ? `<br><span class="small">[${fmt(r.ci[0])}, ${fmt(r.ci[1])}]</span>` : ''}` +
                `<span class="small"> n=${r.perSeed.length}</span>`
            : '—';
        }),
      ]),
    ),
  );
  if (t.diffs.length) {
    body.push(
      `<h2>${esc(t.diffs[0]!.treatment)} − ${esc(t.diffs[0]!.baseline)}, paired</h2>`,
      table(
        ['metric', 'difference', '95 % CI', 'exceeds noise'],
        t.diffs.map((d) => [esc(d.key), fmt(d.diff), `[${fmt(d.ci[0])}, ${fmt(d.ci[1])}]`, verdictCell(d)]),
      ),
    );
  }
  body.push(
    '<p class="small">Cells: mean ± sd over pre-training seeds, 95 % CI from a bootstrap over test volumes and seeds ' +
      'jointly. Differences: the same resampled test volumes for both methods, seeds resampled per method; ' +
      '"exceeds noise" when the CI excludes 0.</p>',
  );
  return body;
}
