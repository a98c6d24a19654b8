// `t3d analyze <scan>`: one scan through a checkpoint's analyzer (service/analyzer.ts), as a table or JSON, with the
// most similar indexed cases when there is an index table; `t3d inspect <scan>`: its checks (service/inspect.ts).
import { existsSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { reportGist } from '../text/report.js';
import { analyzeScan, type Analysis, type Finding } from '../service/analyzer.js';
import { inspectScanFile, inspectionLines, warningLines } from '../service/inspect.js';
import { DEFAULT_DB, VectorIndex, type Hit } from '../service/vector-index.js';
import { UsageError, parseOptions, specificityRule } from './args.js';

const log = (line: string) => console.error(`t3d: ${line}`);
type AnalysisWithSimilar = Analysis & { similar?: Hit[]; seconds: Analysis['seconds'] & { search?: number } };

function table(a: AnalysisWithSimilar): string {
  const w = Math.max(...a.findings.map((f) => f.label.length));
  const threshold = (t: number | null) => (t === null ? '   —' : Number.isFinite(t) ? t.toFixed(3) : ' never');
  const call = (p: boolean | null) => (p === null ? '' : p ? 'POSITIVE' : 'negative');
  const rate = (v: number | null) => (v === null ? '   — ' : v.toFixed(2).padStart(5));
  const rates = (f: Finding) =>
    a.operatingPoint ? `  ${rate(f.sensitivity)} ${rate(f.specificity)} ${rate(f.ppv)}` : '';
  const rows = a.findings.map(
    (f) =>
      `  ${f.label.padEnd(w)}  ${f.probability.toFixed(3)}  ${threshold(f.threshold)}${rates(f)}  ${call(f.positive)}`,
  );
  const op = a.operatingPoint;
  const s = a.seconds;
  return [
    `${a.scan} — checkpoint ${a.checkpoint} (id ${a.checkpointId}, preset ${a.preset})`,
    ...warningLines(a.warnings),
    ...(a.findings.length
      ? [`  ${'finding'.padEnd(w)}  prob.  thresh.${op ? '   sens.  spec.   PPV' : ''}  call`]
      : []),
    ...rows,
    a.thresholds && op
      ? `  thresholds: ${op.rule}, from ${a.thresholds}\n  on the evaluation's test volumes they call ` +
        `${op.callsPerVolume.toFixed(1)} findings per volume against ${op.labelsPerVolume.toFixed(1)} reference labels`
      : a.thresholds
        ? `  thresholds: Youden's J on validation volumes, from ${a.thresholds}`
        : `  ${a.findings.length ? 'no thresholds: probabilities only' : 'no findings scored'}`,
    `  ${a.note}`,
    ...(a.similar
      ? [
          '  most similar indexed cases:',
          ...a.similar.map(
            (h, i) =>
              `  ${String(i + 1).padStart(2)}. ${h.similarity.toFixed(3)} ${h.id} [${h.split}] ` +
              `${h.labels.join(', ') || 'no findings'}\n      ${reportGist(h.report)}`,
          ),
        ]
      : []),
    `  time: read ${s.read.toFixed(2)} s, check ${s.check.toFixed(2)} s, preprocess ${s.preprocess.toFixed(2)} s, ` +
      `encode ${s.encode.toFixed(2)} s, score ${s.score.toFixed(2)} s` +
      `${s.search !== undefined ? `, search ${s.search.toFixed(3)} s` : ''} (checkpoint load ${s.load.toFixed(2)} s)`,
  ].join('\n');
}

export async function runAnalyze(args: string[]): Promise<void> {
  const [scan, ...rest] = args;
  if (!scan || scan.startsWith('--'))
    throw new UsageError('analyze: give a scan (NIfTI file or DICOM series folder) first, then --checkpoint <run>');
  const o = parseOptions(rest, {
    string: ['checkpoint', 'out', 'device', 'db', 'series'],
    number: ['intercept', 'k', 'specificity'],
    boolean: ['json', 'force'],
  });
  if (!o.checkpoint) throw new UsageError('analyze: --checkpoint <run-or-checkpoint> is required');
  const k = o.k ?? 5;
  if (!(Number.isInteger(k) && k >= 1)) throw new UsageError(`analyze: --k must be a positive integer, got ${k}`);
  const operatingPoint = specificityRule('analyze', o.specificity);
  const db = o.db ?? DEFAULT_DB;
  if (o.db && !existsSync(db)) throw new Error(`analyze: --db ${db}: no such index`);
  const { checkpoint, intercept, force, series, device } = o;
  const a: AnalysisWithSimilar = await analyzeScan(scan, {
    checkpoint,
    intercept,
    force,
    series,
    operatingPoint,
    device,
    log,
  });
  if (existsSync(db)) {
    const index = await VectorIndex.open(db, a.checkpointId);
    if ((await index.count()) > 0) {
      const t = performance.now();
      a.similar = await index.search(a.embedding, { k });
      a.seconds.search = (performance.now() - t) / 1000;
    } else if (o.db)
      console.error(
        `t3d: ${db} has no table for checkpoint ${a.checkpointId}; ` +
          `run \`t3d index --checkpoint ${o.checkpoint} --db ${db}\` for similar cases`,
      );
  }
  const json = JSON.stringify(a, (_, v: unknown) => (v === Infinity ? 'Infinity' : v));
  if (o.out) writeFileSync(o.out, json + '\n');
  console.log(o.json ? json : `${table(a)}${o.out ? `\n  written: ${o.out}` : ''}`);
  if (!o.json && !o.out) {
    const stem = basename(scan).replace(/(\.nii)?(\.gz)?$/, '');
    console.log(`  (--json or --out ${stem}.json for the full result with the embedding)`);
  }
}

export async function runInspect(args: string[]): Promise<void> {
  const [scan, ...rest] = args;
  if (!scan || scan.startsWith('--')) throw new UsageError('inspect: give a scan (NIfTI file or DICOM folder) first');
  const o = parseOptions(rest, { string: ['checkpoint', 'preset'], number: ['intercept'], boolean: ['json'] });
  const i = await inspectScanFile(scan, { ...o, log });
  console.log(o.json ? JSON.stringify(i, null, 1) : inspectionLines(i).join('\n'));
  if (i.refused) throw new Error(i.refused);
}
