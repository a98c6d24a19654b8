// The TMA study's arm table (RESULTS.md, the plan's endpoints): per endpoint, each arm's mean ± sd over its seeds and
// its paired difference from each baseline with a 95 % CI (the same resampled test volumes for both arms, seeds
// resampled per arm: compare.ts's bootstrap), then the multi-view and negative-control differences and the steps the
// runs were evaluated at. Arms and seeds without records are shown as missing; nothing is dropped silently.
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { type EvalRecord } from '../task.js';
import { pairedBootstrapDiff } from '../metrics/bootstrap.js';
import { fmt, headlines, type Headline, type LabelSubset } from './headlines.js';
import { overRuns } from './compare.js';
import { BASELINES, ENDPOINT_SUBSETS } from './arms.js';
import { runSelection, type Selection } from './step-selection.js';
import { type GateResult } from './gate.js';
import { type CurveFile, curvesMarkdown } from './arm-curves.js';

export interface Endpoint {
  key: string;
  title: string;
  /** the record file in <run>/eval */
  file: string;
  /** the headline of that record (headlines.ts) */
  headline: string;
  subset?: LabelSubset;
}

const { ctRate, clipFailures, localFindings } = ENDPOINT_SUBSETS;
export const ENDPOINTS: readonly Endpoint[] = [
  {
    key: 'primary',
    title: 'Primary: zero-shot macro-AUROC, the 18 CT-RATE labels, global view',
    file: 'zeroshot.json',
    headline: `zeroshot/auroc ${ctRate.name}`,
    subset: ctRate,
  },
  {
    key: 'probe',
    title: '10 %-label linear probe, macro-AUROC over the 18 CT-RATE labels',
    file: 'probe-10pct.json',
    headline: `probe-10pct/auroc ${ctRate.name}`,
    subset: ctRate,
  },
  {
    key: 'clip-failures',
    title: `Zero-shot AUROC over the five CLIP failures (${clipFailures.labels.join(', ')})`,
    file: 'zeroshot.json',
    headline: `zeroshot/auroc ${clipFailures.name}`,
    subset: clipFailures,
  },
  {
    key: 'local',
    title: `Crop-scale zero-shot AUROC over the version-2 local findings (${localFindings.labels.join(', ')})`,
    file: 'zeroshot-crop.json',
    headline: `zeroshot-crop/auroc ${localFindings.name}`,
    subset: localFindings,
  },
  { key: 'r50', title: 'Report→volume R@50, global view', file: 'retrieval.json', headline: 'retrieval/r2v R@50' },
];

export interface ArmRun {
  seed: number;
  /** endpoint key → headline, for the endpoints whose record exists */
  values: Map<string, Headline>;
  /** the step the records were computed at (from their checkpoint), and the step selection says to use */
  evaluatedStep?: number;
  selection?: Selection;
}
export interface ArmRuns {
  arm: string;
  title: string;
  /** every requested seed, with or without records */
  runs: ArmRun[];
}

const stepOf = (checkpoint: string) => {
  const m = /^step-(\d+)$/.exec(basename(checkpoint));
  return m ? Number(m[1]) : undefined;
};

/** Reads <root>/<arm>-s<seed>/eval/* for the requested arms and seeds. */
export function collectArms(root: string, arms: { name: string; title: string }[], seeds: number[]): ArmRuns[] {
  return arms.map(({ name, title }) => ({
    arm: name,
    title,
    runs: seeds.map((seed): ArmRun => {
      const dir = join(root, `${name}-s${seed}`);
      const values = new Map<string, Headline>();
      let evaluatedStep: number | undefined;
      for (const e of ENDPOINTS) {
        const path = join(dir, 'eval', e.file);
        if (!existsSync(path)) continue;
        let rec: EvalRecord;
        try {
          rec = JSON.parse(readFileSync(path, 'utf8')) as EvalRecord;
        } catch (err) {
          throw new Error(`${path}: unreadable evaluation record (${(err as Error).message})`);
        }
        const h = headlines(rec, e.subset).find((x) => x.key === e.headline);
        if (h && Number.isFinite(h.value)) values.set(e.key, h);
        evaluatedStep ??= stepOf(rec.meta?.checkpoint ?? '');
      }
      return { seed, values, evaluatedStep, selection: existsSync(dir) ? runSelection(dir) : undefined };
    }),
  }));
}

export interface Cell {
  seeds: number[];
  missing: number[];
  mean: number;
  sd: number;
}
export interface Difference {
  treatment: string;
  baseline: string;
  diff: number;
  lo: number;
  hi: number;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const sd = (xs: number[]) =>
  xs.length < 2 ? NaN : Math.sqrt(xs.reduce((a, b) => a + (b - mean(xs)) ** 2, 0) / (xs.length - 1));

/** An arm's value of an endpoint over its seeds; undefined when no seed has it. */
export function armCell(a: ArmRuns, endpoint: string): Cell | undefined {
  const have = a.runs.filter((r) => r.values.has(endpoint));
  if (!have.length) return undefined;
  const v = have.map((r) => r.values.get(endpoint)!.value);
  return {
    seeds: have.map((r) => r.seed),
    missing: a.runs.filter((r) => !have.includes(r)).map((r) => r.seed),
    mean: mean(v),
    sd: sd(v),
  };
}

/** The per-seed headlines of an endpoint when every one can be resampled on the same test volumes. */
function resamplable(a: ArmRuns, endpoint: string): Headline[] | undefined {
  const hs = a.runs.flatMap((r) => (r.values.has(endpoint) ? [r.values.get(endpoint)!] : []));
  if (!hs.length || hs.some((h) => !h.resample || !h.names)) return undefined;
  const names = hs[0]!.names!.join('\n');
  return hs.every((h) => h.names!.join('\n') === names) ? hs : undefined;
}

/** treatment − baseline on an endpoint, paired over the resampled test volumes with each arm's seeds resampled;
 * undefined when either arm has no resamplable records or their test volumes differ. */
export function pairedDifference(
  t: ArmRuns,
  b: ArmRuns,
  endpoint: string,
  o: { resamples?: number; seed?: number } = {},
): Difference | undefined {
  const ht = resamplable(t, endpoint),
    hb = resamplable(b, endpoint);
  if (!ht || !hb || ht[0]!.names!.join('\n') !== hb[0]!.names!.join('\n')) return undefined;
  const d = pairedBootstrapDiff(ht[0]!.names!.length, overRuns(ht), overRuns(hb), {
    resamples: o.resamples ?? 1000,
    seed: o.seed ?? 0,
    runs: { a: ht.length, b: hb.length },
  });
  return { treatment: t.arm, baseline: b.arm, diff: d.diff, lo: d.lo, hi: d.hi };
}

/** Whether an arm wins by the plan's rule: its primary endpoint's CI above 0 against every baseline. */
export function wins(diffs: (Difference | undefined)[]): boolean {
  return diffs.length > 0 && diffs.every((d) => d !== undefined && d.lo > 0);
}

const signed = (v: number) => (v > 0 ? '+' : '') + fmt(v);
/** "+0.012 [+0.004, +0.020] > 0" (the CI excludes 0: which side), or "—". */
export function formatDifference(d: Difference | undefined): string {
  if (!d) return '—';
  const side = d.lo > 0 ? ' > 0' : d.hi < 0 ? ' < 0' : '';
  return `${signed(d.diff)} [${signed(d.lo)}, ${signed(d.hi)}]${side}`;
}
export function formatCell(c: Cell | undefined, of: number): string {
  if (!c) return `missing (0/${of})`;
  const spread = c.seeds.length > 1 ? ` ± ${fmt(c.sd)}` : '';
  const missing = c.missing.length ? `; missing ${c.missing.map((s) => `s${s}`).join(', ')}` : '';
  return `${fmt(c.mean)}${spread} (${c.seeds.length}/${of}${missing})`;
}

/** The differences beside the baselines: the multi-view credit (pooled − global-only) and P1 against its control. */
export const EXTRA_COMPARISONS: readonly [string, string][] = [
  ['p1-pooled', 'p1-global'],
  ['p1-pooled', 'p1-shuffled'],
  ['p1-global', 'p1-shuffled'],
];

/** The arm table as Markdown: one table per endpoint, the extra comparisons, the verdict, the evaluated steps and
 * links to the curves. */
export function armTableMarkdown(
  arms: ArmRuns[],
  o: {
    resamples?: number;
    seed?: number;
    baselines?: readonly string[];
    extra?: readonly [string, string][];
    /** the gate of P1 pooled's seed 0 (gate.ts), when its run has started */
    gate?: GateResult | 'pending';
    /** the diagnostics' curves written beside the table (arm-curves.ts), linked at its end */
    curves?: CurveFile[];
  } = {},
): string {
  const byName = new Map(arms.map((a) => [a.arm, a]));
  const baselines = (o.baselines ?? BASELINES).map((n) => byName.get(n));
  const nameOf = (n: string) => byName.get(n)?.title ?? n;
  const lines = [
    '# The TMA study: the arm table',
    '',
    'Each run is evaluated at the step with the best validation zero-shot macro-AUROC (data.valCache; ties within ' +
      '0.002 go to the earlier step). Cells: mean ± sd over pre-training seeds (seeds with records / seeds planned). ' +
      'Differences: arm − baseline, paired over the same resampled test volumes with seeds resampled per arm, ' +
      '[95 % percentile CI]; "> 0" or "< 0" when the CI excludes 0.',
  ];
  const primaryWins: string[] = [];
  for (const e of ENDPOINTS) {
    const heads = (o.baselines ?? BASELINES).map((b) => `− ${nameOf(b)}`);
    lines.push(
      '',
      `## ${e.title}`,
      '',
      `| arm | mean ± sd | ${heads.join(' | ')} |`,
      `|---|---|${heads.map(() => '---|').join('')}`,
    );
    for (const a of arms) {
      const diffs = baselines.map((b) => (b && b.arm !== a.arm ? pairedDifference(a, b, e.key, o) : undefined));
      const cells = diffs.map((d, i) => (baselines[i]?.arm === a.arm ? '(itself)' : formatDifference(d)));
      lines.push(`| ${a.title} (${a.arm}) | ${formatCell(armCell(a, e.key), a.runs.length)} | ${cells.join(' | ')} |`);
      if (e.key === 'primary' && !(o.baselines ?? BASELINES).includes(a.arm) && wins(diffs)) primaryWins.push(a.title);
    }
  }
  const extra = (o.extra ?? EXTRA_COMPARISONS).filter(([t, b]) => byName.has(t) && byName.has(b));
  if (extra.length) {
    lines.push('', '## Multi-view credit and the negative control', '');
    lines.push(
      `| difference | ${ENDPOINTS.map((e) => e.key).join(' | ')} |`,
      `|---|${ENDPOINTS.map(() => '---|').join('')}`,
    );
    for (const [t, b] of extra) {
      const cells = ENDPOINTS.map((e) => formatDifference(pairedDifference(byName.get(t)!, byName.get(b)!, e.key, o)));
      lines.push(`| ${t} − ${b} | ${cells.join(' | ')} |`);
    }
  }
  if (o.gate) lines.push('', gateLine(o.gate));
  lines.push(
    '',
    '**Decision rule** (primary endpoint, CI above 0 against all three baselines): ' +
      (primaryWins.length ? `wins: ${primaryWins.join(', ')}.` : 'no arm wins (so far).'),
    '',
    '## Evaluated steps',
    '',
    '| arm | ' + (arms[0]?.runs.map((r) => `s${r.seed}`).join(' | ') ?? '') + ' |',
    '|---|' + (arms[0]?.runs.map(() => '---|').join('') ?? ''),
  );
  for (const a of arms) lines.push(`| ${a.arm} | ${a.runs.map(stepCell).join(' | ')} |`);
  lines.push(
    '',
    'Step cells: the step evaluated (validation AUROC there; the best), "→ N" when the selection has moved to step N ' +
      'since (re-evaluate), "training" while a run has validations but no records, "—" before its first validation.',
    ...curvesMarkdown(o.curves ?? []),
  );
  return lines.join('\n') + '\n';
}

function stepCell(r: ArmRun): string {
  const s = r.selection;
  if (r.evaluatedStep === undefined) return s ? `training (best so far: step ${s.step})` : '—';
  if (!s) return `step ${r.evaluatedStep} (no validation log)`;
  const moved = s.step !== r.evaluatedStep ? ` → ${s.step}` : '';
  return `step ${r.evaluatedStep}${moved} (${fmt(s.auroc)}; best ${fmt(s.best)})`;
}

function gateLine(g: GateResult | 'pending'): string {
  const head =
    '**Gate** (P1 pooled, seed 0: `tmaLeakGap`, rolled chance bound − cross-entropy, over the steps logged ' +
    'from 200 to 300)';
  if (g === 'pending') return `${head}: not yet (fewer than two steps logged in the window).`;
  const verdict = g.pass ? 'passed' : 'not passed: P1 stops at seed 0';
  const ci = `[95 % ${signed(g.lo)}, ${signed(g.hi)}]`;
  return `${head}: mean ${signed(g.mean)} ${ci} over ${g.steps.length} steps: ${verdict}.`;
}
