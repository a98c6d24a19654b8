// The demo pipeline on the built-in synthetic set: synthetic CT-RATE-like volumes → preprocessing → T3D and
// CLIP-only pre-training side by side (same data, steps and seed: CLIP-only is the baseline T3D must beat) →
// zero-shot classification and retrieval on the held-out volumes → one self-contained HTML report. Every stage
// resumes, so rerunning after an interruption continues.
import { writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { readCacheIndex } from '../data/cache.js';
import { ensureCache } from '../data/synth-cache.js';
import { applyOverrides, loadConfig } from '../train/config.js';
import { loadEvalConfig } from '../eval/config.js';
import { evaluateCheckpoint } from '../eval/evaluate-checkpoint.js';
import { collectStudy, studyTable } from '../eval/report/compare.js';
import { fmt } from '../eval/report/headlines.js';
import { type ClassificationReport } from '../eval/metrics/classification-report.js';
import { type RetrievalReport } from '../eval/tasks/retrieval.js';
import { targetReportHtml } from '../eval/report/html.js';

export const DEMO_RUNS = [
  { name: 't3d', sets: [] as string[] },
  { name: 'clip-only', sets: ['objective.tma.weight=0', 'data.views.numLocal=0'] },
];

export interface DemoOptions {
  out: string;
  configName: string;
  sets: string[];
  steps?: number;
  baseline: boolean;
  /**
   * runs `t3d <args>` (a pre-training run, in its own process) and resolves to its exit code; the runs go side by
   * side with one libtorch thread each (`T3D_NUM_THREADS=1` in `env`) when there are cores for it
   */
  run(name: string, args: string[], env: Record<string, string>): Promise<number | null>;
  print(line: string): void;
}

export interface DemoResult {
  lines: string[];
  meaning: string[];
  report: string;
}

export async function runDemoPipeline(o: DemoOptions): Promise<DemoResult> {
  const runs = o.baseline ? DEMO_RUNS : DEMO_RUNS.slice(0, 1);
  const t0 = performance.now();
  const stamp = () => `${((performance.now() - t0) / 60000).toFixed(1)} min`;
  // the data first, once, so that the runs do not both build it
  await ensureCache(applyOverrides(loadConfig(o.configName), o.sets));
  const parallel = Math.max(1, Math.min(runs.length, availableParallelism()));
  const side = parallel > 1 ? ' side by side, one core each' : '';
  o.print(`\ndemo: [1/2] pre-training ${runs.map((r) => r.name).join(' and ')}${side} (${stamp()} so far)`);
  const pretrainArgs = (r: (typeof DEMO_RUNS)[number]) => [
    'pretrain',
    '--config',
    o.configName,
    '--out',
    join(o.out, `${r.name}-s0`),
    '--resume',
    ...(o.steps !== undefined ? ['--steps', String(o.steps)] : []),
    ...[...o.sets, ...r.sets].flatMap((x) => ['--set', x]),
  ];
  const queue = [...runs];
  const failed: string[] = [];
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      for (let r = queue.shift(); r; r = queue.shift()) {
        const code = await o.run(r.name, pretrainArgs(r), parallel > 1 ? { T3D_NUM_THREADS: '1' } : {});
        if (code !== 0) failed.push(`${r.name} (exit ${code})`);
      }
    }),
  );
  if (failed.length)
    throw new Error(
      `demo: pre-training failed: ${failed.join(', ')}; the lines prefixed with its name say why. Rerunning resumes.`,
    );
  o.print(`\ndemo: [2/2] zero-shot classification and retrieval on the held-out volumes (${stamp()} so far)`);
  const config = loadEvalConfig('quick');
  const evaluated = [];
  for (const r of runs)
    evaluated.push({
      name: r.name,
      ...(await evaluateCheckpoint({
        checkpoint: join(o.out, `${r.name}-s0`),
        tasks: ['zeroshot', 'retrieval'],
        config,
      })),
    });

  const first = evaluated[0]!.records;
  const n = (first.find((x) => x.meta.task === 'retrieval')!.result as RetrievalReport).candidates;
  const labelsCounted = (first.find((x) => x.meta.task === 'zeroshot')!.result as ClassificationReport).labelsCounted;
  const ks = ['R@1', 'R@5', 'R@10'].filter((k) => Number(k.slice(2)) <= n);
  const lines = evaluated.map((e) => {
    const z = e.records.find((x) => x.meta.task === 'zeroshot')!.result as ClassificationReport;
    const r2v = (e.records.find((x) => x.meta.task === 'retrieval')!.result as RetrievalReport).reportToVolume;
    return (
      `${e.name.padEnd(9)} zero-shot macro-AUROC ${fmt(z.macro.auroc)} [95 % CI ${fmt(z.macroCi.auroc[0])}, ` +
      `${fmt(z.macroCi.auroc[1])}]` +
      ` · report→volume ${ks.map((k) => `${k} ${fmt(r2v.recall[k]!)}`).join(' ')}`
    );
  });
  const meaning = [
    `Zero-shot: each of the ${n} held-out volumes is scored for ${labelsCounted} findings by comparing its ` +
      `embedding with "finding present / absent" prompt embeddings; no labels are used. Chance is a macro-AUROC of ` +
      `0.5; a CI that excludes 0.5 means the encoder learned the findings from the reports alone.`,
    `Retrieval: each held-out report ranks all ${n} held-out volumes; R@K is the share whose own volume is in the ` +
      `top K. Chance is K/${n} (${ks.map((k) => `${k} ${fmt(Number(k.slice(2)) / n)}`).join(', ')}).`,
  ];
  const main = evaluated[0]!;
  const methods = collectStudy(o.out).filter((m) => runs.some((r) => r.name === m.name));
  const report = join(o.out, 'report.html');
  writeFileSync(
    report,
    await targetReportHtml(main.records, {
      title: 'T3D demo — synthetic chest CT',
      labelNames: readCacheIndex(main.cacheDir).labelNames,
      metricsPath: main.target.metricsPath,
      intro: meaning,
      comparison:
        methods.length > 1
          ? { methods, table: studyTable(methods, { treatment: 't3d', baseline: 'clip-only' }) }
          : undefined,
    }),
  );
  o.print(`\ndemo: done in ${stamp()} (this session)`);
  return { lines, meaning, report };
}
