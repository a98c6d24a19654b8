// Spherical k-means (docs/ARCHITECTURE.md §4, formulation 'cluster'): the dataset-level clustering of DeepCluster-v2
// over L2-normalised embeddings — assignment by the largest cosine, centroids the normalised means. Seeded k-means++
// initialisation and several restarts (the best mean cosine wins) instead of DeepCluster-v2's single random init.
// An empty cluster is re-seeded with the point worst served by its centroid (as DeepCluster v1 and scikit-learn do;
// DeepCluster-v2 keeps the empty cluster's old centroid, which can stay empty for the whole epoch). Deterministic in
// (points, K, seed): the random draws come from the project's seeded RNG, never from the global generator.
import * as torch from '../../torch/index.js';
import { F, type Tensor } from '../../torch/index.js';
import { Rng } from '../../util/rng.js';

export interface KMeansOptions {
  /** Lloyd iterations per restart (stops early when no assignment changes); DeepCluster-v2 uses 10 */
  iterations?: number;
  /** k-means++ initialisations tried; the one with the highest mean cosine is kept */
  restarts?: number;
  seed?: number;
  /** a line per restart (progress of a long clustering) */
  log?: (line: string) => void;
}

export interface KMeansResult {
  /** (K, D), unit rows; a kept tensor: the caller disposes it */
  centroids: Tensor;
  /** (N) int64; kept */
  assignments: Tensor;
  /** mean cosine between each point and its centroid (higher is tighter) */
  objective: number;
  /** empty clusters re-seeded over the restart that was kept */
  reseeded: number;
}

/** k-means++ on the sphere: the first centre uniform, each next one drawn ∝ the squared distance to the nearest. */
function kMeansPlusPlus(x: Tensor, K: number, rng: Rng): Tensor {
  return torch.tidy(() => {
    const N = x.size(0);
    const chosen = [rng.int(0, N - 1)];
    let nearest = x.matmul(x.select(0, chosen[0]!).unsqueeze(1)).squeeze(1); // largest cosine to a chosen centre
    while (chosen.length < K) {
      const d2 = nearest.neg().add(1).mul(2).clampMin(0).toArray(); // ‖x − c‖² = 2 − 2 cos on the sphere
      const total = d2.reduce((a, b) => a + b, 0);
      let pick = -1;
      if (total > 0) {
        let r = rng.next() * total;
        for (let i = 0; i < N && pick < 0; i++) if ((r -= d2[i]!) < 0 && d2[i]! > 0) pick = i;
      }
      // every point coincides with a centre (or rounding ran past the end): the first point not yet chosen
      if (pick < 0) pick = d2.findIndex((_, i) => !chosen.includes(i));
      chosen.push(pick);
      nearest = nearest.maximum(x.matmul(x.select(0, pick).unsqueeze(1)).squeeze(1));
    }
    const index = torch.tensor(BigInt64Array.from(chosen.map(BigInt)), [K], { device: x.device });
    return x.indexSelect(0, index);
  });
}

/** One restart: Lloyd iterations from the given centres (K, D), re-seeding empty clusters. */
export function kMeansFrom(x: Tensor, init: Tensor, iterations: number): KMeansResult {
  return torch.noGrad(() =>
    torch.tidy(() => {
      const K = init.size(0);
      let centroids = init.clone();
      let assign = x.matmul(centroids.T).argmax(1);
      let reseeded = 0;
      for (let it = 0; it < iterations; it++) {
        const member = torch.oneHot(assign, K).to(x.dtype); // (N, K)
        const counts = member.sum(0).toArray();
        let sums = member.T.matmul(x); // (K, D)
        const empty = counts.flatMap((n, k) => (n === 0 ? [k] : []));
        if (empty.length) {
          // the points farthest from their own centroid become the empty clusters' centres
          const own = x.mul(centroids.indexSelect(0, assign)).sum(1);
          const [, worst] = own.topk(empty.length, 0, false);
          const rows = worst.toArray();
          const replace = torch.zeros([K, 1], { dtype: x.dtype, device: x.device });
          const seeds = torch.zeros([K, x.size(1)], { dtype: x.dtype, device: x.device });
          empty.forEach((k, i) => {
            replace.select(0, k).fill_(1);
            seeds.select(0, k).copy_(x.select(0, rows[i]!));
          });
          sums = sums.mul(replace.neg().add(1)).add(seeds);
          reseeded += empty.length;
        }
        centroids = F.normalize(sums, 1);
        const next = x.matmul(centroids.T).argmax(1);
        const changed = next.ne(assign).sum().item();
        assign = next;
        if (changed === 0 && !empty.length) break;
      }
      const objective = x.mul(centroids.indexSelect(0, assign)).sum(1).mean().item();
      return { centroids: centroids.keep(), assignments: assign.keep(), objective, reseeded };
    }),
  );
}

/** Spherical k-means of the rows of x (N, D), which should be L2-normalised. K must not exceed N. */
export function sphericalKMeans(x: Tensor, K: number, o: KMeansOptions = {}): KMeansResult {
  const N = x.size(0);
  if (!(Number.isInteger(K) && K >= 1 && K <= N))
    throw new Error(`k-means: K must be an integer in [1, ${N}] (the number of points), got ${K}`);
  const restarts = Math.max(1, o.restarts ?? 3);
  return torch.noGrad(() => {
    const points = x.detach();
    let best: KMeansResult | undefined;
    for (let r = 0; r < restarts; r++) {
      const init = kMeansPlusPlus(points, K, new Rng(o.seed ?? 0, K, r));
      const run = kMeansFrom(points, init, o.iterations ?? 10);
      init.dispose();
      o.log?.(
        `k-means K=${K} restart ${r + 1}/${restarts}: mean cosine ${run.objective.toFixed(4)}` +
          (run.reseeded ? `, ${run.reseeded} empty cluster(s) re-seeded` : ''),
      );
      if (!best || run.objective > best.objective) {
        if (best) torch.dispose([best.centroids, best.assignments]);
        best = run;
      } else torch.dispose([run.centroids, run.assignments]);
    }
    return best!;
  });
}
