// Cross-modal retrieval on the test volumes: report→volume and volume→report recall@K, median and mean rank
// (with bootstrap CIs over queries), and volume→volume MAP@K with CT-CLIP's label-overlap relevance.
import { retrievalRanks, rankSummary, mapAtK } from '../metrics/retrieval.js';
import { bootstrapCis } from '../metrics/bootstrap.js';
import { type Ci } from '../metrics/classification-report.js';

export const RECALL_KS = [1, 5, 10, 50, 100];
export const MAP_KS = [1, 5, 10, 50];

export interface DirectionReport {
  recall: Record<string, number>;
  recallCi: Record<string, Ci>;
  medianRank: number;
  meanRank: number;
  ranks: number[];
}
export interface RetrievalReport {
  candidates: number;
  reportToVolume: DirectionReport;
  volumeToReport: DirectionReport;
  volumeToVolumeMap: Record<string, number>;
  /** recall at every K from 1 to the number of candidates (for curves) */
  curve: { k: number[]; reportToVolume: number[]; volumeToReport: number[] };
}

const dot = (a: number[], b: number[]): number => a.reduce((s, v, i) => s + v * b[i]!, 0);

function direction(sim: number[][], ks: number[], o: { resamples: number; seed: number }): DirectionReport {
  const ranks = retrievalRanks(sim);
  const s = rankSummary(ranks, ks);
  const keys = Object.keys(s.recall);
  const ci = bootstrapCis(
    ranks.length,
    (idx) => {
      const r = rankSummary(
        Array.from(idx, (i) => ranks[i]!),
        ks,
      ).recall;
      return keys.map((k) => r[k]!);
    },
    o,
  );
  return {
    recall: s.recall,
    recallCi: Object.fromEntries(keys.map((k, i) => [k, [ci.lo[i]!, ci.hi[i]!] as Ci])),
    medianRank: s.medianRank,
    meanRank: s.meanRank,
    ranks,
  };
}

/** Embeddings are L2-normalised rows; report i belongs to volume i. */
export function retrievalReport(
  volumes: number[][],
  reports: number[][],
  labels: number[][],
  o: { resamples?: number; seed?: number } = {},
): RetrievalReport {
  const n = volumes.length;
  if (reports.length !== n || labels.length !== n)
    throw new Error(`retrieval: ${n} volumes, ${reports.length} reports and ${labels.length} label rows must match`);
  if (n < 2) throw new Error(`retrieval: need ≥ 2 test volumes, got ${n}`);
  const r2v = reports.map((r) => volumes.map((v) => dot(r, v)));
  const v2r = volumes.map((v) => reports.map((r) => dot(v, r)));
  const ks = RECALL_KS.filter((k) => k <= n);
  const bo = { resamples: o.resamples ?? 1000, seed: o.seed ?? 0 };
  const reportToVolume = direction(r2v, ks, bo);
  const volumeToReport = direction(v2r, ks, bo);
  const curveAt = (ranks: number[]) => {
    const hits = new Array<number>(n).fill(0);
    for (const r of ranks) hits[r - 1]!++;
    let cum = 0;
    return hits.map((h) => (cum += h) / n);
  };
  return {
    candidates: n,
    reportToVolume,
    volumeToReport,
    volumeToVolumeMap: mapAtK(
      volumes,
      labels,
      MAP_KS.filter((k) => k < n),
    ),
    curve: {
      k: Array.from({ length: n }, (_, i) => i + 1),
      reportToVolume: curveAt(reportToVolume.ranks),
      volumeToReport: curveAt(volumeToReport.ranks),
    },
  };
}
