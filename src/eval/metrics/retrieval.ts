// Retrieval metrics: ranks of the correct candidate (report↔volume) and CT-CLIP's volume→volume MAP@K.

/**
 * 1-based rank of the correct candidate for each query of a similarity matrix sim[q][c] (higher = more similar),
 * where the correct candidate of query q is c = q (so every row needs more than q entries).
 *
 * Ties are counted pessimistically: rank = 1 + number of other candidates scoring ≥ the correct one. Sorting
 * (CLIP-benchmark, CT-CLIP) leaves tie order to the sort; counting ties against the query keeps a collapsed
 * encoder, whose similarities are all equal, at the worst rank instead of the best.
 */
export function retrievalRanks(sim: ReadonlyArray<ArrayLike<number>>): number[] {
  return sim.map((row, q) => {
    if (row.length <= q)
      throw new Error(`retrievalRanks: row ${q} has ${row.length} candidates; the correct one is candidate ${q}`);
    const own = row[q]!;
    let rank = 1;
    for (let c = 0; c < row.length; c++) {
      if (Number.isNaN(row[c])) throw new Error(`retrievalRanks: sim[${q}][${c}] is NaN`);
      if (c !== q && row[c]! >= own) rank++;
    }
    return rank;
  });
}

/**
 * Recall@K (fraction of queries whose rank ≤ K), median and mean rank. Recall is reported as 'R@K' only for the
 * K that do not exceed the number of candidates (default: as many as there are queries, i.e. a square matrix).
 */
export function rankSummary(
  ranks: number[],
  ks: number[] = [1, 5, 10, 50, 100],
  candidates = ranks.length,
): { recall: Record<string, number>; medianRank: number; meanRank: number } {
  if (ranks.length === 0) throw new Error('rankSummary: no ranks');
  const bad = ranks.findIndex((r) => !Number.isInteger(r) || r < 1 || r > candidates);
  if (bad >= 0) throw new Error(`rankSummary: ranks[${bad}] = ${ranks[bad]} is not a rank in 1..${candidates}`);
  const recall: Record<string, number> = {};
  for (const k of ks) if (k <= candidates) recall[`R@${k}`] = ranks.filter((r) => r <= k).length / ranks.length;
  const sorted = [...ranks].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const medianRank = sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { recall, medianRank, meanRank: ranks.reduce((a, b) => a + b, 0) / ranks.length };
}

/**
 * Volume→volume retrieval "MAP@K" as CT-CLIP evaluates it (its volume_to_volume script): similarity is the cosine
 * of the embeddings; the candidates are the volumes with at least one positive label; a retrieved volume scores
 * the Jaccard overlap of the two positive-label sets (|A∩B| / |A∪B|); a query scores the mean over its top K
 * (all candidates when fewer than K), and MAP@K is the mean over queries, including queries without a positive
 * label (they score 0). Similarity ties keep index order, as Python's stable sort does.
 * Two differences from CT-CLIP's script: the query is not its own candidate (the script lets it retrieve
 * itself), and each K is averaged on its own (the script accumulates queries across K). Queries left without any
 * candidate are skipped; NaN if none remains. Returns { 'MAP@K': value } for each K.
 */
export function mapAtK(embeddings: number[][], labels: number[][], ks: number[]): Record<string, number> {
  const n = embeddings.length;
  if (labels.length !== n) throw new Error(`mapAtK: ${n} embeddings but ${labels.length} label rows`);
  for (const k of ks)
    if (!Number.isInteger(k) || k < 1) throw new Error(`mapAtK: K must be a positive integer, got ${k}`);
  const norms = embeddings.map((e, i) => {
    if (e.length !== embeddings[0]!.length)
      throw new Error(`mapAtK: embedding ${i} has ${e.length} dimensions, embedding 0 has ${embeddings[0]!.length}`);
    let s = 0;
    for (const x of e) s += x * x;
    if (!(s > 0)) throw new Error(`mapAtK: embedding ${i} has zero or NaN norm`);
    return Math.sqrt(s);
  });
  const positives = labels.map((l, i) => {
    if (l.length !== labels[0]!.length)
      throw new Error(`mapAtK: label row ${i} has ${l.length} labels, row 0 has ${labels[0]!.length}`);
    return l.map((v, j) => (v ? j : -1)).filter((j) => j >= 0);
  });
  const pool = positives.map((p, i) => (p.length ? i : -1)).filter((i) => i >= 0);
  const jaccard = (a: number[], b: number[]) => {
    const inB = new Set(b);
    const both = a.filter((j) => inB.has(j)).length;
    return both / (a.length + b.length - both);
  };
  // per query: candidates by decreasing cosine (stable), with their relevance
  const ranked: number[][] = [];
  for (let q = 0; q < n; q++) {
    const cands = pool.filter((c) => c !== q);
    if (cands.length === 0) continue;
    const cos = cands.map((c) => {
      let dot = 0;
      for (let d = 0; d < embeddings[q]!.length; d++) dot += embeddings[q]![d]! * embeddings[c]![d]!;
      return dot / (norms[q]! * norms[c]!);
    });
    const order = cands.map((_, i) => i).sort((a, b) => cos[b]! - cos[a]! || a - b);
    ranked.push(order.map((i) => jaccard(positives[q]!, positives[cands[i]!]!)));
  }
  const out: Record<string, number> = {};
  for (const k of ks) {
    const perQuery = ranked.map((rel) => {
      const top = rel.slice(0, k);
      return top.reduce((a, b) => a + b, 0) / top.length;
    });
    out[`MAP@${k}`] = perQuery.length ? perQuery.reduce((a, b) => a + b, 0) / perQuery.length : NaN;
  }
  return out;
}
