// The study table: several methods (baselines and T3D), each pre-trained with several seeds and evaluated
// by the same harness. Per metric: mean ± sd over seeds, a 95 % CI from a bootstrap over test volumes and
// seeds jointly, and the paired difference treatment − baseline with its CI (the same resampled volumes for
// both methods, seeds resampled per method) and whether it exceeds that noise.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { type EvalRecord } from '../task.js';
import { fmt, headlines, type Headline, type LabelSubset } from './headlines.js';
import { type Ci } from '../metrics/classification-report.js';
import { pairedBootstrapDiff } from '../metrics/bootstrap.js';

export interface SeedRun {
  seed: number;
  dir: string;
  headlines: Map<string, Headline>;
}
export interface Method {
  name: string;
  runs: SeedRun[];
}

/** `<root>/<method>-s<seed>/eval/*.json` (the layout `npm run experiment:learning` + `t3d eval` write); with a label
 * subset, classification tasks also report its macro AUROC. */
export function collectStudy(root: string, evalDirName = 'eval', subset?: LabelSubset): Method[] {
  if (!existsSync(root)) throw new Error(`${root}: no such study folder`);
  const methods = new Map<string, SeedRun[]>();
  for (const run of readdirSync(root).sort()) {
    const m = /^(.*)-s(\d+)$/.exec(run);
    const evalDir = join(root, run, evalDirName);
    if (!m || !existsSync(evalDir)) continue;
    const hs = new Map<string, Headline>();
    for (const f of readdirSync(evalDir)
      .filter((n) => n.endsWith('.json'))
      .sort()) {
      let rec: EvalRecord;
      try {
        rec = JSON.parse(readFileSync(join(evalDir, f), 'utf8')) as EvalRecord;
      } catch (e) {
        throw new Error(`${join(evalDir, f)}: unreadable evaluation record (${(e as Error).message})`);
      }
      for (const h of headlines(rec, subset)) hs.set(h.key, h);
    }
    if (hs.size)
      methods.set(m[1]!, [...(methods.get(m[1]!) ?? []), { seed: Number(m[2]), dir: join(root, run), headlines: hs }]);
  }
  return [...methods].map(([name, runs]) => ({ name, runs }));
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const sd = (xs: number[]) =>
  xs.length < 2 ? NaN : Math.sqrt(xs.reduce((a, b) => a + (b - mean(xs)) ** 2, 0) / (xs.length - 1));
/** Per-seed headlines of one metric that can be resampled on a shared set of test volumes. */
function resamplable(m: Method, key: string): Headline[] | undefined {
  const hs = m.runs.map((r) => r.headlines.get(key));
  if (hs.some((h) => !h?.resample || !h.names)) return undefined;
  const names = hs[0]!.names!.join('\n');
  return hs.every((h) => h!.names!.join('\n') === names) ? (hs as Headline[]) : undefined;
}

/** Mean over the given seeds (run indices) of the metric on the resampled volumes. */
export const overRuns =
  (hs: Headline[]) =>
  (idx: Int32Array, runs: Int32Array): number => {
    let sum = 0;
    for (const r of runs) sum += hs[r]!.resample!(idx);
    return sum / runs.length;
  };

export interface StudyRow {
  key: string;
  method: string;
  seeds: number[];
  perSeed: number[];
  mean: number;
  sd: number;
  ci?: Ci;
}
export interface PairedDiff {
  key: string;
  treatment: string;
  baseline: string;
  diff: number;
  ci: Ci;
  exceedsNoise: boolean;
}

/** 'no', or which method the difference favours (ranks and distances are better when lower). */
export function noiseVerdict(d: PairedDiff): 'no' | 'better' | 'worse' {
  if (!d.exceedsNoise) return 'no';
  const lowerIsBetter = /rank|hd95/.test(d.key);
  return d.diff > 0 !== lowerIsBetter ? 'better' : 'worse';
}

export function studyTable(
  methods: Method[],
  o: { resamples?: number; seed?: number; treatment?: string; baseline?: string } = {},
): { rows: StudyRow[]; diffs: PairedDiff[]; keys: string[] } {
  const resamples = o.resamples ?? 1000,
    seed = o.seed ?? 0;
  const keys = [...new Set(methods.flatMap((m) => m.runs.flatMap((r) => [...r.headlines.keys()])))];
  const rows: StudyRow[] = [];
  for (const key of keys) {
    for (const m of methods) {
      const have = m.runs.filter((r) => r.headlines.has(key));
      if (!have.length) continue;
      const perSeed = have.map((r) => r.headlines.get(key)!.value);
      const hs = have.length === m.runs.length ? resamplable(m, key) : undefined;
      // a method's own CI: the paired bootstrap against a constant 0 resamples its volumes and seeds jointly
      const b = hs
        ? pairedBootstrapDiff(hs[0]!.names!.length, overRuns(hs), () => 0, {
            resamples,
            seed,
            runs: { a: hs.length, b: 1 },
          })
        : undefined;
      const ci: Ci | undefined = b ? [b.lo, b.hi] : undefined;
      rows.push({
        key,
        method: m.name,
        seeds: have.map((r) => r.seed),
        perSeed,
        mean: mean(perSeed),
        sd: sd(perSeed),
        ci,
      });
    }
  }
  const diffs: PairedDiff[] = [];
  const t = methods.find((m) => m.name === (o.treatment ?? 't3d')),
    b = methods.find((m) => m.name === (o.baseline ?? 'clip-only'));
  if (t && b) {
    for (const key of keys) {
      const ht = resamplable(t, key),
        hb = resamplable(b, key);
      if (!ht || !hb || ht[0]!.names!.join('\n') !== hb[0]!.names!.join('\n')) continue;
      const d = pairedBootstrapDiff(ht[0]!.names!.length, overRuns(ht), overRuns(hb), {
        resamples,
        seed,
        runs: { a: ht.length, b: hb.length },
      });
      diffs.push({
        key,
        treatment: t.name,
        baseline: b.name,
        diff: d.diff,
        ci: [d.lo, d.hi],
        exceedsNoise: d.exceedsNoise,
      });
    }
  }
  return { rows, diffs, keys };
}

/** Paper-style Markdown: one row per metric, one column per method ("mean ± sd [CI]"), then the paired differences. */
export function studyMarkdown(methods: Method[], t: ReturnType<typeof studyTable>, title: string): string {
  const names = methods.map((m) => m.name);
  const lines = [`# ${title}`, '', `| metric | ${names.join(' | ')} |`, `|---|${names.map(() => '---').join('|')}|`];
  for (const key of t.keys) {
    const cells = names.map((n) => {
      const r = t.rows.find((x) => x.key === key && x.method === n);
      if (!r) return '—';
      return (
        `${fmt(r.mean)}${r.perSeed.length > 1 ? ` ± ${fmt(r.sd)}` : ''}` +
        `${r.ci ? ` [${fmt(r.ci[0])}, ${fmt(r.ci[1])}]` : ''} (n=${r.perSeed.length})`
      );
    });
    lines.push(`| ${key} | ${cells.join(' | ')} |`);
  }
  if (t.diffs.length) {
    const d0 = t.diffs[0]!;
    lines.push(
      '',
      `## ${d0.treatment} − ${d0.baseline} (paired: same resampled test volumes, seeds resampled per method)`,
      '',
      '| metric | difference | 95 % CI | exceeds noise |',
      '|---|---|---|---|',
    );
    for (const d of t.diffs)
      lines.push(
        `| ${d.key} | ${fmt(d.diff)} | [${fmt(d.ci[0])}, ${fmt(d.ci[1])}] | ` +
          `${noiseVerdict(d) === 'no' ? 'no' : `yes: ${d.treatment} ${noiseVerdict(d)}`} |`,
      );
  }
  const seeds = methods.map((m) => `${m.name} (${m.runs.map((r) => basename(r.dir)).join(', ')})`).join('; ');
  lines.push(
    '',
    `Methods and seeds: ${seeds}.`,
    'Cells: mean ± sd over pre-training seeds ' +
      '[95 % CI from a bootstrap over test volumes and seeds jointly] (n = seeds).',
  );
  return lines.join('\n') + '\n';
}
