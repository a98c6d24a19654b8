// `t3d demo`: the whole pipeline on the built-in synthetic set, sized for about 15 minutes on 2 CPU cores:
// synthetic CT-RATE-like volumes → preprocessing → T3D and CLIP-only pre-training side by side (same data, steps
// and seed: CLIP-only is the baseline T3D must beat) → zero-shot classification and retrieval on the held-out volumes → one
// self-contained HTML report. Every stage resumes, so rerunning after an interruption continues.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { readCacheIndex } from '../data/cache.js';
import { loadEvalConfig } from '../eval/config.js';
import { collectStudy, studyTable } from '../eval/report/compare.js';
import { fmt } from '../eval/report/headlines.js';
import { type ClassificationReport } from '../eval/metrics/classification-report.js';
import { type RetrievalReport } from '../eval/tasks/retrieval.js';
import { targetReportHtml } from '../eval/report/html.js';
import { parseOptions } from './args.js';
import { evaluateCheckpoint } from './eval.js';
import { ensureCache } from './pretrain.js';
import { applyOverrides, loadConfig } from '../train/config.js';

/**
 * Runs `t3d <args>` as a child process, each output line prefixed with `name`; resolves to its exit code.
 * The two pre-training runs go side by side with one libtorch thread each: at the demo's model size a second
 * intra-op thread gains nothing (7.0 vs 7.2 volumes/s for T3D alone), so two runs at once take the time of one.
 */
function runPrefixed(name: string, args: string[], env: Record<string, string>): Promise<number | null> {
  const child = spawn(process.execPath, [fileURLToPath(new URL('./cli.js', import.meta.url)), ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  for (const [stream, sink] of [
    [child.stdout, process.stdout],
    [child.stderr, process.stderr],
  ] as const) {
    createInterface({ input: stream }).on('line', (line) => sink.write(`[${name}] ${line}\n`));
  }
  return new Promise((resolve) => child.on('close', (code) => resolve(code)));
}

export const DEMO_USAGE = `t3d demo [--out runs/demo] [--steps N] [--no-baseline] [--config demo|file.json] [--set key.path=value ...]

Pre-trains T3D and, unless --no-baseline, CLIP-only on the built-in synthetic set (config 'demo'), evaluates both
zero-shot and by retrieval on the held-out volumes, and writes <out>/report.html. About 15 minutes on 2 CPU cores;
rerunning resumes (finished stages are skipped). --config and --set change the pre-training config of both runs.

Examples:
  t3d demo
  t3d demo --no-baseline --out runs/demo-t3d`;

const RUNS = [
  { name: 't3d', sets: [] as string[] },
  { name: 'clip-only', sets: ['objective.tma.weight=0', 'data.views.numLocal=0'] },
];

export async function runDemo(args: string[]): Promise<void> {
  const o = parseOptions(args, {
    out: 'string',
    steps: 'number',
    'no-baseline': 'boolean',
    config: 'string',
    set: 'list',
  });
  const sets = (o.set as string[] | undefined) ?? [];
  const out = (o.out as string | undefined) ?? join('runs', 'demo');
  const runs = o['no-baseline'] ? RUNS.slice(0, 1) : RUNS;
  const t0 = performance.now();
  const stamp = () => `${((performance.now() - t0) / 60000).toFixed(1)} min`;
  const configName = (o.config as string | undefined) ?? 'demo';
  // the data first, once, so that the runs do not both build it
  await ensureCache(applyOverrides(loadConfig(configName), sets));
  const parallel = Math.max(1, Math.min(runs.length, availableParallelism()));
  console.log(
    `\ndemo: [1/2] pre-training ${runs.map((r) => r.name).join(' and ')}${parallel > 1 ? ' side by side, one core each' : ''} (${stamp()} so far)`,
  );
  const pretrainArgs = (r: (typeof RUNS)[number]) => [
    'pretrain',
    '--config',
    configName,
    '--out',
    join(out, `${r.name}-s0`),
    '--resume',
    ...(o.steps !== undefined ? ['--steps', String(o.steps)] : []),
    ...[...sets, ...r.sets].flatMap((x) => ['--set', x]),
  ];
  const queue = [...runs];
  const failed: string[] = [];
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      for (let r = queue.shift(); r; r = queue.shift()) {
        const code = await runPrefixed(r.name, pretrainArgs(r), parallel > 1 ? { T3D_NUM_THREADS: '1' } : {});
        if (code !== 0) failed.push(`${r.name} (exit ${code})`);
      }
    }),
  );
  if (failed.length)
    throw new Error(
      `demo: pre-training failed: ${failed.join(', ')}; the lines prefixed with its name say why. Rerunning resumes.`,
    );
  console.log(`\ndemo: [2/2] zero-shot classification and retrieval on the held-out volumes (${stamp()} so far)`);
  const config = loadEvalConfig('quick');
  const evaluated = [];
  for (const r of runs)
    evaluated.push({
      name: r.name,
      ...(await evaluateCheckpoint({
        checkpoint: join(out, `${r.name}-s0`),
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
      `${e.name.padEnd(9)} zero-shot macro-AUROC ${fmt(z.macro.auroc)} [95 % CI ${fmt(z.macroCi.auroc[0])}, ${fmt(z.macroCi.auroc[1])}]` +
      ` · report→volume ${ks.map((k) => `${k} ${fmt(r2v.recall[k]!)}`).join(' ')}`
    );
  });
  const meaning = [
    `Zero-shot: each of the ${n} held-out volumes is scored for ${labelsCounted} findings by comparing its embedding with "finding present / absent" prompt embeddings; no labels are used. Chance is a macro-AUROC of 0.5; a CI that excludes 0.5 means the encoder learned the findings from the reports alone.`,
    `Retrieval: each held-out report ranks all ${n} held-out volumes; R@K is the share whose own volume is in the top K. Chance is K/${n} (${ks.map((k) => `${k} ${fmt(Number(k.slice(2)) / n)}`).join(', ')}).`,
  ];
  const main = evaluated[0]!;
  const methods = collectStudy(out).filter((m) => runs.some((r) => r.name === m.name));
  const report = join(out, 'report.html');
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
  console.log(
    `\ndemo: done in ${stamp()} (this session)\n${lines.map((l) => `  ${l}`).join('\n')}\n\n${meaning.map((m) => `  ${m}`).join('\n')}\n\n  report: ${report}`,
  );
}
