// The dataset-level report clusters of the TMA formulation 'cluster' (docs/ARCHITECTURE.md §4): at the start of every
// epoch, every training report (as written, no augmentation) is embedded by the current text encoder (dropout off)
// and clustered by a spherical k-means per head, seeded by (run seed, epoch, head). The centroids and every report's
// assignments are frozen for the epoch and saved in step checkpoints, so a run resumed mid-epoch continues with the
// clusters it had; a run resumed at an epoch boundary recomputes them from the same weights, as an uninterrupted run
// does.
import * as torch from '../torch/index.js';
import { type Tensor } from '../torch/index.js';
import { type T3dModel } from '../models/t3d.js';
import { type WordPieceTokenizer } from '../text/wordpiece.js';
import { embedTexts } from '../inference/embed.js';
import { sphericalKMeans } from '../objectives/tma/kmeans.js';
import { type ClusterNeeds, type ClusterTargets } from '../objectives/tma/index.js';

export interface ReportClusterOptions {
  needs: ClusterNeeds;
  /** the training reports, in the loader's order (a batch's indices point into it) */
  reports: string[];
  tokenizer: WordPieceTokenizer;
  maxTokens: number;
  seed: number;
  device?: string;
  /** reports embedded per forward pass */
  batchSize?: number;
  log?: (line: string) => void;
}

const EPOCH = 'clusters.epoch';
const ASSIGNMENTS = 'clusters.assignments';
const centroidName = (h: number) => `clusters.centroids.${h}`;

/** Mean over heads of the entropy (nats) of the cluster sizes: log K when the clusters are equal. */
function sizeEntropy(assignments: Tensor, K: number): number {
  return torch.tidy(() => {
    const p = torch.oneHot(assignments, K).to('float64').mean(0).clampMin(1e-12);
    return p.mul(p.log()).sum().neg().item();
  });
}

export class ReportClusters {
  /** the epoch the clusters belong to (-1: none yet) */
  epoch = -1;
  private centroids: Tensor[] = [];
  /** (N, H) int64, every training report's cluster per head */
  private assignments?: Tensor;

  constructor(private readonly o: ReportClusterOptions) {
    const N = o.reports.length;
    const tooMany = o.needs.heads.filter((K) => K > N);
    if (tooMany.length) {
      throw new Error(
        `objective.tma.clusterHeads: K ${tooMany.join(', ')} exceeds the ${N} training reports (a cluster needs one)`,
      );
    }
  }

  /** Makes the clusters of `epoch` unless they are already there (a resumed run's). */
  ensure(epoch: number, model: T3dModel): void {
    if (epoch === this.epoch) return;
    const { o } = this;
    const log = o.log ?? (() => {});
    const t0 = performance.now();
    const emb = this.embed(model);
    const secs = ((performance.now() - t0) / 1000).toFixed(1);
    log(`report clusters for epoch ${epoch}: ${o.reports.length} reports embedded in ${secs} s`);
    const results = o.needs.heads.map((K, h) => {
      const r = sphericalKMeans(emb, K, {
        iterations: o.needs.iterations,
        restarts: o.needs.restarts,
        seed: o.seed * 1_000_003 + epoch * 101 + h,
        log: (line) => log(`  head ${h + 1}/${o.needs.heads.length}: ${line}`),
      });
      const entropy = sizeEntropy(r.assignments, K).toFixed(3);
      log(`  K=${K}: mean cosine ${r.objective.toFixed(4)}, size entropy ${entropy} (log K ${Math.log(K).toFixed(3)})`);
      return r;
    });
    emb.dispose();
    this.replace(
      epoch,
      results.map((r) => r.centroids),
      torch.tidy(() =>
        torch
          .stack(
            results.map((r) => r.assignments),
            1,
          )
          .keep(),
      ),
    );
    torch.dispose(results.map((r) => r.assignments));
    if (torch.distributed.worldSize > 1) this.broadcast();
  }

  /** The targets of a batch: the centroids and the assignments of the reports at `indices` (inside a tidy scope). */
  targets(indices: number[]): ClusterTargets {
    if (!this.assignments) throw new Error('report clusters: none made yet (ensure runs at the start of an epoch)');
    const at = torch.tensor(BigInt64Array.from(indices.map(BigInt)), [indices.length], {
      device: this.assignments.device,
    });
    return { centroids: this.centroids, assignments: this.assignments.indexSelect(0, at) };
  }

  /** Named tensors for step checkpoints. */
  stateDict(): Map<string, Tensor> {
    if (!this.assignments) return new Map();
    const epoch = torch.tensor(BigInt64Array.from([BigInt(this.epoch)]), [1]);
    return new Map<string, Tensor>([
      [EPOCH, epoch],
      [ASSIGNMENTS, this.assignments],
      ...this.centroids.map((c, h): [string, Tensor] => [centroidName(h), c]),
    ]);
  }

  /** Restores saved clusters (copies; the caller disposes `state`). A checkpoint without them leaves none. */
  loadStateDict(state: Map<string, Tensor>): void {
    const epoch = state.get(EPOCH);
    const assignments = state.get(ASSIGNMENTS);
    if (!epoch || !assignments) return;
    const H = this.o.needs.heads.length;
    const centroids = Array.from({ length: H }, (_, h) => state.get(centroidName(h)));
    const shapesFit =
      assignments.shape.join() === [this.o.reports.length, H].join() &&
      centroids.every((c, h) => c?.size(0) === this.o.needs.heads[h]);
    if (!shapesFit) throw new Error('report clusters: the checkpoint holds clusters of another dataset or heads');
    const device = { device: this.o.device ?? 'cpu' };
    this.replace(
      epoch.item(),
      centroids.map((c) => c!.to(device).clone().keep()),
      assignments.to(device).clone().keep(),
    );
  }

  dispose(): void {
    torch.dispose([...this.centroids, ...(this.assignments ? [this.assignments] : [])]);
    this.centroids = [];
    this.assignments = undefined;
    this.epoch = -1;
  }

  private replace(epoch: number, centroids: Tensor[], assignments: Tensor): void {
    this.dispose();
    this.epoch = epoch;
    this.centroids = centroids;
    this.assignments = assignments;
  }

  /** The report embeddings (N, D) of the current text encoder, normalised; kept (the caller disposes them). */
  private embed(model: T3dModel): Tensor {
    const { o } = this;
    const modes = [...model.namedModules()].map(([, m]) => [m, m.training] as const);
    model.eval();
    try {
      const size = o.batchSize ?? 64;
      const parts: Tensor[] = [];
      for (let i = 0; i < o.reports.length; i += size) {
        const texts = o.reports.slice(i, i + size);
        parts.push(embedTexts(model, o.tokenizer, texts, o.maxTokens, o.device).keep());
      }
      const all = torch.tidy(() => torch.cat(parts, 0).keep());
      torch.dispose(parts);
      return all;
    } finally {
      for (const [m, training] of modes) m.training = training;
    }
  }

  /** Data-parallel: every rank trains on rank 0's clusters (k-means on another device could round differently). */
  private broadcast(): void {
    const onCpu = (t: Tensor) => torch.tidy(() => t.to({ device: 'cpu' }).contiguous().keep());
    const device = { device: this.o.device ?? 'cpu' };
    const sync = (t: Tensor) => {
      const host = onCpu(t);
      torch.distributed.broadcast(host, 0);
      const back = torch.tidy(() => host.to(device).keep());
      host.dispose();
      t.dispose();
      return back;
    };
    this.centroids = this.centroids.map(sync);
    this.assignments = sync(this.assignments!);
  }
}
