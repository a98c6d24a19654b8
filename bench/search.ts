// `npm run bench:search`: the embedding index at 1,000, 10,000 and 100,000 rows (unit vectors of the model's size,
// 128, see VECTORS; the metadata of a real row): append throughput, search latency p50/p99 over QUERIES queries,
// exact (flat) and with an IVF-PQ index, the IVF-PQ recall@10 against the exact answer, and a filtered search.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VectorIndex, type IndexRow } from '../src/search/vector-index.js';
import { Rng } from '../src/util/rng.js';

const D = 128;
const queries = Number(process.env.QUERIES ?? 200);
const sizes = (process.env.SIZES ?? '1000,10000,100000').split(',').map(Number);
const rng = new Rng(0);
const normalised = (v: number[]) => {
  const n = Math.hypot(...v);
  return v.map((x) => x / n);
};
// VECTORS=uniform: directions uniform on the sphere, no structure (the hardest case for IVF-PQ); clustered: around 64
// centres with noise of the centres' scale, closer to a trained encoder's embeddings, which group by findings
const clustered = process.env.VECTORS === 'clustered';
const centres = Array.from({ length: 64 }, () => Array.from({ length: D }, () => rng.normal(0, 1)));
const unit = () =>
  normalised(
    clustered
      ? rng.pick(centres).map((c) => c + rng.normal(0, 0.7))
      : Array.from({ length: D }, () => rng.normal(0, 1)),
  );
const labels = ['Cardiomegaly', 'Lung nodule', 'Pleural effusion', 'Emphysema'];
const row = (i: number): IndexRow => ({
  id: `case_${i}`,
  source: `volumes/case_${i}.safetensors`,
  split: i % 5 === 0 ? 'valid' : 'train',
  report:
    'Findings: Trachea and both main bronchi are in normal position and width. No pleural effusion. Heart size is normal.',
  labels: labels.filter((_, l) => (i >> l) % 3 === 0),
  findings: Object.fromEntries(labels.map((l) => [l, 0.5])),
  checkpointId: '00000000cafef00d',
  vector: unit(),
});
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
};
async function latency(
  index: VectorIndex,
  qs: number[][],
  o: { label?: string; nprobes?: number } = {},
): Promise<{ p50: number; p99: number; ids: string[][] }> {
  const ts: number[] = [],
    ids: string[][] = [];
  for (const q of qs) {
    const t0 = performance.now();
    ids.push((await index.search(q, { k: 10, ...o })).map((h) => h.id));
    ts.push(performance.now() - t0);
  }
  return { p50: pct(ts, 0.5), p99: pct(ts, 0.99), ids };
}

const dir = mkdtempSync(join(tmpdir(), 't3d-bench-search-'));
try {
  const qs = Array.from({ length: queries }, unit);
  for (const n of sizes) {
    const index = await VectorIndex.open(join(dir, String(n)), '00000000cafef00d');
    let t0 = performance.now();
    for (let at = 0; at < n; at += 5000)
      await index.add(Array.from({ length: Math.min(5000, n - at) }, (_, i) => row(at + i)));
    const appendS = (performance.now() - t0) / 1000;
    const flat = await latency(index, qs);
    const filtered = await latency(index, qs.slice(0, 50), { label: 'Lung nodule' });
    t0 = performance.now();
    await index.createAnnIndex({ partitions: Math.max(1, Math.round(Math.sqrt(n))), subVectors: 16 });
    const buildS = (performance.now() - t0) / 1000;
    const recall = (r: { ids: string[][] }) =>
      r.ids.reduce((s, got, i) => s + got.filter((id) => flat.ids[i]!.includes(id)).length / 10, 0) / qs.length;
    const ann = await latency(index, qs);
    const wide = await latency(index, qs, { nprobes: 80 });
    console.log(
      `${n} rows: append ${(n / appendS).toFixed(0)} rows/s; search top-10 exact p50 ${flat.p50.toFixed(1)} ms p99 ${flat.p99.toFixed(1)} ms; ` +
        `filtered (label) p50 ${filtered.p50.toFixed(1)} ms; IVF-PQ (${Math.round(Math.sqrt(n))} partitions, built in ${buildS.toFixed(1)} s) ` +
        `20 probes p50 ${ann.p50.toFixed(1)} ms p99 ${ann.p99.toFixed(1)} ms recall@10 ${recall(ann).toFixed(3)}; 80 probes p50 ${wide.p50.toFixed(1)} ms p99 ${wide.p99.toFixed(1)} ms recall@10 ${recall(wide).toFixed(3)}`,
    );
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
