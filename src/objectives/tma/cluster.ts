// TMA formulation 'cluster' — dataset-level report clustering (DeepCluster-v2). At the start of every epoch the
// trainer embeds ALL training reports with the current text encoder and runs a spherical k-means per head (K 8/16/32
// by default; kmeans.ts); the centroids stay frozen for the epoch and are each head's prototypes. Every view, global
// and local, predicts its report's cluster: −log softmax(z · C_hᵀ / τ)[a_h], averaged over heads and views. The targets
// come from the whole training set, not the batch (rule 2), and from the report only, never seen by a predictor
// (rule 1). Unlike DeepCluster-v2, whose prototype layers are initialised from the centroids and then trained (after
// freeze_prototypes_niters), the centroids here are fixed within the epoch, and the clustered embeddings are the
// reports', not the images' of the previous epoch.
import * as torch from '../../torch/index.js';
import { F, type Tensor } from '../../torch/index.js';
import { crossEntropy, roll } from './diagnostics.js';
import { type TmaBaseConfig, type TmaFormulationSpec, type TmaOption } from './shared.js';

/** objective.tma with formulation 'cluster'. τ is the base `temperature`; `queue`, `epsilon` and
 * `sinkhornIterations` are not read. */
export interface ClusterTmaConfig extends TmaBaseConfig {
  formulation: 'cluster';
  /** K of each head; default [8, 16, 32] */
  clusterHeads?: number[];
  /** Lloyd iterations per k-means restart; default 10 (DeepCluster-v2's) */
  kmeansIterations?: number;
  /** k-means++ restarts per head, the tightest kept; default 3 */
  kmeansRestarts?: number;
}

export const DEFAULT_CLUSTER_HEADS = [8, 16, 32];

/** How the trainer clusters the training reports each epoch: one spherical k-means per head, K = heads[h]. */
export interface ClusterNeeds {
  heads: number[];
  iterations: number;
  restarts: number;
}

/** The epoch's report clusters as a batch sees them: per head the frozen centroids (K_h, D), and the batch's
 * assignments (B, H) int64. */
export interface ClusterTargets {
  centroids: Tensor[];
  assignments: Tensor;
}

const positiveInteger = (v: unknown) => Number.isInteger(v) && (v as number) >= 1;
const integerOption = (key: string): TmaOption => ({
  key,
  inUse: (v) => v !== undefined,
  check: (v) => (positiveInteger(v) ? [] : [`objective.tma.${key} must be an integer ≥ 1 (got ${JSON.stringify(v)})`]),
});
const headsOption: TmaOption = {
  key: 'clusterHeads',
  inUse: (v) => v !== undefined,
  check: (v) =>
    Array.isArray(v) && v.length > 0 && v.every((k) => positiveInteger(k) && k >= 2)
      ? []
      : [`objective.tma.clusterHeads must be a non-empty list of integers ≥ 2 (got ${JSON.stringify(v)})`],
};

const group = (view: string) => view.replace(/^local\d+$/, 'local');

export const cluster: TmaFormulationSpec<ClusterTmaConfig> = {
  options: [headsOption, integerOption('kmeansIterations'), integerOption('kmeansRestarts')],
  needs: (cfg) => ({
    report: false,
    sentenceIndex: false,
    localViews: true,
    teacherMomentum: 0,
    clusters: {
      heads: cfg.clusterHeads ?? DEFAULT_CLUSTER_HEADS,
      iterations: cfg.kmeansIterations ?? 10,
      restarts: cfg.kmeansRestarts ?? 3,
    },
  }),
  validate: (tma) =>
    tma.useText === false
      ? [
          "objective.tma.formulation 'cluster' clusters the training reports: it needs objective.tma.useText true " +
            "(without text there is nothing to cluster; use 'swapped' with useText false)",
        ]
      : [],
  term(_model, x, cfg) {
    if (!x.clusters) {
      throw new Error(
        "objective.tma.formulation 'cluster' needs the epoch's report clusters (made by the pre-training trainer)",
      );
    }
    const tau = cfg.temperature;
    const world = torch.distributed.worldSize;
    const views: [string, Tensor][] = [['global', x.global.emb]];
    x.locals?.emb.chunk(x.numLocal, 0).forEach((z, v) => views.push([`local${v}`, z]));
    let assignments = x.clusters.assignments;
    let report = x.report?.emb;
    if (world > 1) {
      // data-parallel: the loss and its diagnostics over the global batch, this rank's rows keeping their gradient
      for (const v of views) v[1] = torch.distributed.gatherWithLocalGrad(v[1]);
      assignments = torch.cat(torch.distributed.allGather(assignments.contiguous()), 0);
      report = report && torch.cat(torch.distributed.allGather(report.detach().contiguous()), 0);
    }
    const B = assignments.size(0);
    const heads = x.clusters.centroids;
    if (assignments.size(1) !== heads.length) {
      throw new Error(`objective.tma 'cluster': ${assignments.size(1)} assignment columns for ${heads.length} heads`);
    }
    const terms: Tensor[] = [];
    const sums = new Map<string, { ce: number; chance: number; oracle: number; n: number }>();
    heads.forEach((C, h) => {
      const target = assignments.select(1, h).contiguous();
      const oneHot = torch.noGrad(() => torch.oneHot(target, C.size(0)).to(C.dtype));
      // the bounds depend on the head only: the report's own scores (oracle), another patient's cluster (chance)
      const oracle = report ? crossEntropy(oneHot, report.matmul(C.T), tau) : NaN;
      const rolled = B > 1 ? torch.noGrad(() => roll(oneHot)) : undefined;
      for (const [name, z] of views) {
        const logits = z.matmul(C.T).div(tau);
        const term = F.crossEntropy(logits, target);
        terms.push(term);
        const chance = rolled ? crossEntropy(rolled, logits.detach(), 1) : NaN;
        const key = `ce.${group(name)}>cluster`;
        const s = sums.get(key) ?? { ce: 0, chance: 0, oracle: 0, n: 0 };
        s.ce += torch.noGrad(() => term.detach().item());
        s.chance += chance;
        s.oracle += oracle;
        s.n += 1;
        sums.set(key, s);
      }
    });
    const loss = torch.stack(terms).mean();
    const stats: Record<string, number> = {};
    for (const [key, s] of sums) {
      stats[key] = s.ce / s.n;
      if (B > 1) stats[`${key}.chance`] = s.chance / s.n;
      if (report) stats[`${key}.oracle`] = s.oracle / s.n;
    }
    // the leak check as the other formulations report it: another patient's cluster minus the volume's own
    if (B > 1) stats.tmaLeakGap = stats['ce.global>cluster.chance']! - stats['ce.global>cluster']!;
    return { loss, stats };
  },
};
