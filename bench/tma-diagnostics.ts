// `node dist/bench/tma-diagnostics.js <run-folder> [--every N]`: does a swapped-prediction TMA formulation learn? A
// cross-entropy near log K says nothing by itself (Sinkhorn codes over concentrated embeddings hold even a perfect
// predictor near log K); what counts is where it lies between the bounds each logged step of metrics.jsonl carries
// (docs/ARCHITECTURE.md §4): the oracle (a predictor equal to the code view) and chance (that predictor on another
// patient's volume, the batch rolled by one). Per logged step and pair: CE, oracle, chance and the separation
// (chance − CE) / (chance − oracle): 0 = no better than another patient's volume, 1 = as good as the code view's own
// scores (above 1 is possible: the oracle is a reference, the floor of CE is the codes' row entropy).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const args = process.argv.slice(2);
const at = args.indexOf('--every');
const every = at >= 0 ? Number(args[at + 1]) : 1;
const dir = args.find((a, i) => !a.startsWith('--') && (at < 0 || i !== at + 1));
if (!dir || !(every >= 1)) throw new Error('usage: node dist/bench/tma-diagnostics.js <run-folder> [--every N]');
const path = join(dir, 'metrics.jsonl');
if (!existsSync(path)) throw new Error(`${path}: no such file (give a pretraining run's folder)`);

type Entry = Record<string, number>;
const entries = readFileSync(path, 'utf8')
  .split('\n')
  .filter((l) => l.trim())
  .map((l) => JSON.parse(l) as Entry)
  .filter((e) => typeof e.step === 'number' && Object.keys(e).some((k) => k.startsWith('ce.')));
if (!entries.length) {
  console.log(`${path}: no per-pair TMA stats (a swapped-prediction formulation, with the TMA term switched on)`);
  process.exit(0);
}
const pairs = [
  ...new Set(
    entries.flatMap((e) =>
      Object.keys(e)
        .filter((k) => /^ce\.[^.]+$/.test(k))
        .map((k) => k.slice(3)),
    ),
  ),
];
const rowKeys = [...new Set(entries.flatMap((e) => Object.keys(e).filter((k) => k.startsWith('codeRowEntropy'))))];
const num = (v: number | undefined, digits = 3) => (v === undefined || !Number.isFinite(v) ? '—' : v.toFixed(digits));
const separation = (ce: number, oracle: number, chance: number | undefined) =>
  chance === undefined || Math.abs(chance - oracle) < 1e-9 ? undefined : (chance - ce) / (chance - oracle);

const head = ['step', ...pairs.flatMap((p) => [`${p} ce`, 'oracle', 'chance', 'sep']), 'tma', ...rowKeys];
const rows = entries
  .filter((e, i) => e.step! % every === 0 || i === entries.length - 1)
  .map((e) => [
    String(e.step),
    ...pairs.flatMap((p) => {
      const [ce, oracle, chance] = [e[`ce.${p}`], e[`ce.${p}.oracle`], e[`ce.${p}.chance`]];
      const sep = ce === undefined || oracle === undefined ? undefined : separation(ce, oracle, chance);
      return [num(ce), num(oracle), num(chance), num(sep, 2)];
    }),
    num(e.tma),
    ...rowKeys.map((k) => num(e[k])),
  ]);
const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (r: string[]) => r.map((c, i) => c.padStart(widths[i]!)).join('  ');
console.log(
  `${dir}: TMA cross-entropy per pair against its oracle and chance bounds (nats). sep = (chance − CE) / ` +
    "(chance − oracle): 0 = another patient's volume does as well, 1 = as well as the code view's own scores " +
    '(not a ceiling: the floor of CE is codeRowEntropy)',
);
console.log(line(head));
for (const r of rows) console.log(line(r));
