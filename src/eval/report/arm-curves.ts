// The TMA study's diagnostics' curves (RESULTS.md, the plan): from each run's metrics.jsonl, the mean over an arm's
// seeds at every logged step of each TMA pair's cross-entropy with its rolled chance bound (an arm learns when the
// cross-entropy separates from chance, not when it drops below log K), of tmaLeakGap, and of the validation zero-shot
// macro-AUROC; drawn as SVG line plots beside arms.md and linked from it. A metric an arm or seed never logged is
// left out of its plot; a plot with nothing to draw is not written.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { metricsLines } from './step-selection.js';
import { linePlot, type Row } from './plots.js';

export interface CurvePoint {
  step: number;
  /** the mean over the seeds that logged the metric at this step */
  mean: number;
  seeds: number;
}
export interface ArmCurves {
  arm: string;
  title: string;
  /** the seeds whose metrics.jsonl exists */
  seeds: number[];
  /** metric → its mean curve, by step */
  curves: Map<string, CurvePoint[]>;
}

/** The validation metric's name in the curves (metrics.jsonl nests it: validation.zeroShotAuroc). */
export const VALIDATION_AUROC = 'validation.zeroShotAuroc';
const PAIR = /^ce\.[^.]+$/;
const wanted = (key: string) => key === 'tmaLeakGap' || key.startsWith('ce.');

/** A run's metrics of interest by step (a step logged twice, as after a resume, keeps its last value). */
function runMetrics(metricsJsonl: string, source: string): Map<string, Map<number, number>> {
  const out = new Map<string, Map<number, number>>();
  const put = (key: string, step: number, v: unknown) => {
    if (typeof v !== 'number' || !Number.isFinite(v)) return;
    out.set(key, (out.get(key) ?? new Map<number, number>()).set(step, v));
  };
  for (const line of metricsLines(metricsJsonl, source)) {
    if (typeof line.step !== 'number') continue;
    for (const [key, v] of Object.entries(line)) if (wanted(key)) put(key, line.step, v);
    put(VALIDATION_AUROC, line.step, (line.validation as { zeroShotAuroc?: unknown } | undefined)?.zeroShotAuroc);
  }
  return out;
}

/** Mean curves over runs' metrics.jsonl texts: per metric and step, the mean over the runs that logged it there. */
export function meanCurves(runs: { text: string; source: string }[]): Map<string, CurvePoint[]> {
  const sums = new Map<string, Map<number, { sum: number; n: number }>>();
  for (const { text, source } of runs) {
    for (const [key, bySteps] of runMetrics(text, source)) {
      const s = sums.get(key) ?? new Map<number, { sum: number; n: number }>();
      for (const [step, v] of bySteps) {
        const acc = s.get(step) ?? { sum: 0, n: 0 };
        s.set(step, { sum: acc.sum + v, n: acc.n + 1 });
      }
      sums.set(key, s);
    }
  }
  const curves = new Map<string, CurvePoint[]>();
  for (const [key, s] of sums)
    curves.set(
      key,
      [...s].map(([step, { sum, n }]) => ({ step, mean: sum / n, seeds: n })).sort((a, b) => a.step - b.step),
    );
  return curves;
}

/** Reads <root>/<arm>-s<seed>/metrics.jsonl for the requested arms and seeds (missing files are skipped). */
export function collectCurves(root: string, arms: { name: string; title: string }[], seeds: number[]): ArmCurves[] {
  return arms.map(({ name, title }) => {
    const have = seeds.filter((seed) => existsSync(join(root, `${name}-s${seed}`, 'metrics.jsonl')));
    const runs = have.map((seed) => {
      const source = join(root, `${name}-s${seed}`, 'metrics.jsonl');
      return { text: readFileSync(source, 'utf8'), source };
    });
    return { arm: name, title, seeds: have, curves: meanCurves(runs) };
  });
}

/** One arm's pair rows: each pair's cross-entropy (line 'cross-entropy') and chance bound (line 'chance bound'). */
export function pairRows(a: ArmCurves): Row[] {
  const rows: Row[] = [];
  for (const [key, points] of a.curves) {
    if (!PAIR.test(key)) continue;
    const pair = key.slice(3);
    for (const p of points) rows.push({ step: p.step, value: p.mean, pair, line: 'cross-entropy' });
    for (const p of a.curves.get(`${key}.chance`) ?? [])
      rows.push({ step: p.step, value: p.mean, pair, line: 'chance bound' });
  }
  return rows;
}

/** One metric's rows over the arms that logged it, series 'arm'. */
export function metricRows(arms: ArmCurves[], key: string): Row[] {
  return arms.flatMap((a) => (a.curves.get(key) ?? []).map((p) => ({ step: p.step, value: p.mean, arm: a.arm })));
}

export interface CurveFile {
  file: string;
  title: string;
}

/** Writes the curves' SVGs into `dir` and returns the files written, in the order to show them. */
export async function writeArmCurves(dir: string, arms: ArmCurves[]): Promise<CurveFile[]> {
  const written: CurveFile[] = [];
  const write = async (file: string, title: string, svg: Promise<string>) => {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, file), await svg);
    written.push({ file, title });
  };
  const seeds = (a: ArmCurves) => `${a.seeds.length} seed${a.seeds.length === 1 ? '' : 's'}`;
  for (const a of arms) {
    const rows = pairRows(a);
    if (!rows.length) continue;
    const title = `${a.title}: TMA cross-entropies (solid) and chance bounds (dashed), mean over ${seeds(a)}`;
    await write(
      `curves-ce-${a.arm}.svg`,
      title,
      linePlot(rows, {
        x: 'step',
        y: 'value',
        series: 'pair',
        dash: { field: 'line', values: ['cross-entropy', 'chance bound'] },
        title: `${a.arm}: TMA cross-entropy by pair`,
        yTitle: 'cross-entropy (nats)',
        yZero: false,
      }),
    );
  }
  const perArm: [string, string, string, string][] = [
    ['tmaLeakGap', 'curves-leak-gap.svg', 'tmaLeakGap (rolled chance bound − cross-entropy)', 'leak gap (nats)'],
    [VALIDATION_AUROC, 'curves-validation-auroc.svg', 'Validation zero-shot macro-AUROC', 'AUROC'],
  ];
  for (const [key, file, title, yTitle] of perArm) {
    const rows = metricRows(arms, key);
    if (!rows.length) continue;
    await write(
      file,
      `${title}, mean over each arm's seeds`,
      linePlot(rows, { x: 'step', y: 'value', series: 'arm', title, yTitle, yZero: false }),
    );
  }
  return written;
}

/** The arm table's section linking the curves (nothing when none was written). */
export function curvesMarkdown(files: CurveFile[]): string[] {
  if (!files.length) return [];
  return [
    '',
    "## The diagnostics' curves",
    '',
    "Means over each arm's seeds at every logged step (metrics.jsonl). A TMA term learns when its cross-entropy " +
      'separates from its chance bound (the code view rolled by one in the batch), not when it drops below log K.',
    ...files.flatMap((f) => ['', `${f.title}:`, '', `![${f.title}](${f.file})`]),
  ];
}
