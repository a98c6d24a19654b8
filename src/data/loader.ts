// Batches of views for training: a seeded per-epoch order sharded by rank, built on worker threads
// ahead of the trainer (bounded prefetch), deterministic in (seed, epoch, index) so that a resumed run
// sees exactly the batches an uninterrupted one would.
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import * as torch from '../torch/index.js';
import { Rng } from '../util/rng.js';
import { WorkerPool } from '../util/pool.js';
import { readCacheIndex, type CacheEntry } from './cache.js';
import { DEFAULT_VIEWS, type Intensity, intensityOf, type Shape3, type ViewConfig } from './views.js';
import { globalShapeOf, type Preset } from './presets.js';
import { reportRegions, type Region } from '../text/regions.js';

export interface LoaderOptions {
  cacheDir: string;
  split?: string;
  /** only these volumes (by name), in cache order; every name must be in the cache */
  names?: string[];
  batchSize: number;
  seed: number;
  shuffle?: boolean;
  dropLast?: boolean;
  rank?: number;
  worldSize?: number;
  workers?: number;
  /** batches built ahead of the consumer */
  prefetch?: number;
  views?: Partial<ViewConfig>;
  /** also load organ masks (segmentation) */
  withMask?: boolean;
  /** global view at the cache's full resolution, not the preset's global shape (evaluation at both scales) */
  fullResolution?: boolean;
}

/** One batch, as typed arrays (what crosses the worker boundary). */
export interface RawBatch {
  indices: number[];
  names: string[];
  reports: string[];
  /** B × L, 0/1 */
  labels: Float32Array;
  /** B × D × H × W (the loader's globalShape) */
  global: Float32Array;
  /** V × (B × d × h × w) */
  locals: Float32Array[];
  /** B × D × H × W class indices at the cache's shape, when withMask */
  mask?: Uint8Array;
}

export interface BatchTask {
  files: string[];
  /** expected sha256 per file (undefined: an older cache without hashes) */ sha256: (string | undefined)[];
  indices: number[];
  epoch: number;
  seed: number;
  shape: Shape3;
  globalShape: Shape3;
  scale: number;
  pad: number;
  intensity: Intensity;
  views: ViewConfig;
  withMask: boolean;
  /** per volume, the lobes its report names (localAnchor 'report') */
  regions?: Region[][];
}

/** The indices this rank reads in an epoch: a seeded shuffle, then every worldSize-th item. */
export function epochOrder(
  n: number,
  epoch: number,
  o: { seed: number; shuffle?: boolean; rank?: number; worldSize?: number },
): number[] {
  const all = Array.from({ length: n }, (_, i) => i);
  if (o.shuffle ?? true) new Rng(o.seed, 0x5eed, epoch).shuffle(all);
  const world = o.worldSize ?? 1,
    rank = o.rank ?? 0;
  if (rank < 0 || rank >= world) throw new Error(`rank ${rank} is outside world size ${world}`);
  // Equal shard sizes on every rank (as DistributedSampler does, by dropping the remainder).
  const per = Math.floor(n / world);
  return all.slice(0, per * world).filter((_, i) => i % world === rank);
}

export class Loader {
  readonly entries: CacheEntry[];
  readonly preset: Preset;
  readonly views: ViewConfig;
  readonly labelNames: string[];
  /** shapes (D, H, W) of the global view and of the local views this loader yields */
  readonly globalShape: Shape3;
  readonly localShape: Shape3;
  private pool?: WorkerPool<BatchTask, RawBatch>;

  constructor(readonly o: LoaderOptions) {
    const index = readCacheIndex(o.cacheDir);
    const inSplit = index.entries.filter((e) => (o.split ? e.split === o.split : true));
    const wanted = o.names ? new Set(o.names) : undefined;
    this.entries = wanted ? inSplit.filter((e) => wanted.has(e.name)) : inSplit;
    if (o.names && this.entries.length !== wanted!.size) {
      const have = new Set(this.entries.map((e) => e.name));
      const missing = o.names.filter((n) => !have.has(n));
      throw new Error(
        `${o.cacheDir}: ${missing.length} requested volumes are not in the cache` +
          `${o.split ? ` split '${o.split}'` : ''} (first: ${missing[0]})`,
      );
    }
    if (this.entries.length === 0)
      throw new Error(`${o.cacheDir}: no cached volumes${o.split ? ` in split '${o.split}'` : ''}`);
    if (!Number.isInteger(o.batchSize) || o.batchSize < 1)
      throw new Error(`batch size must be a positive integer, got ${o.batchSize}`);
    this.preset = index.preset; // the cache's own copy: custom preset files need not be findable later
    this.labelNames = index.labelNames;
    this.views = { ...DEFAULT_VIEWS, ...o.views };
    this.globalShape = o.fullResolution ? this.preset.shape : globalShapeOf(this.preset);
    this.localShape = this.views.localShape ?? (this.globalShape.map((n) => Math.max(1, Math.round(n / 2))) as Shape3);
    // with dropLast a split smaller than one batch yields no batch at all: a trainer would wait for one forever
    if ((o.dropLast ?? true) && this.length === 0)
      throw new Error(
        `${o.cacheDir}: ${this.entries.length} volume(s)${o.split ? ` in split '${o.split}'` : ''} for this rank, ` +
          `fewer than one batch of ${o.batchSize}; lower the batch size or add volumes`,
      );
    if (o.withMask && this.globalShape.join() !== this.preset.shape.join()) {
      throw new Error(
        `${o.cacheDir}: masks are at the cache's shape [${this.preset.shape.join(', ')}]; ` +
          `load them with fullResolution (global view [${this.globalShape.join(', ')}])`,
      );
    }
  }

  /** Batches per epoch for this rank. */
  get length(): number {
    const n = epochOrder(this.entries.length, 0, { ...this.o, shuffle: false }).length;
    return (this.o.dropLast ?? true) ? Math.floor(n / this.o.batchSize) : Math.ceil(n / this.o.batchSize);
  }

  private task(indices: number[], epoch: number): BatchTask {
    return {
      files: indices.map((i) => join(this.o.cacheDir, this.entries[i]!.file)),
      sha256: indices.map((i) => this.entries[i]!.sha256),
      indices,
      epoch,
      seed: this.o.seed,
      shape: this.preset.shape,
      globalShape: this.globalShape,
      scale: this.preset.scale,
      pad: this.preset.padValue,
      intensity: intensityOf(this.preset),
      views: this.views,
      withMask: this.o.withMask ?? false,
      regions:
        this.views.localAnchor === 'report' ? indices.map((i) => reportRegions(this.entries[i]!.report)) : undefined,
    };
  }

  /** Yields the epoch's batches from `startBatch` on, keeping `prefetch` batches in flight. */
  async *epoch(epoch: number, startBatch = 0): AsyncGenerator<RawBatch> {
    this.pool ??= new WorkerPool<BatchTask, RawBatch>(
      new URL('./loader-worker.js', import.meta.url),
      this.o.workers ?? Math.max(1, availableParallelism() - 1),
    );
    const order = epochOrder(this.entries.length, epoch, this.o);
    const bs = this.o.batchSize;
    const batches: number[][] = [];
    for (let b = 0; b < this.length; b++) batches.push(order.slice(b * bs, (b + 1) * bs));
    const prefetch = Math.max(1, this.o.prefetch ?? 2);
    const inflight: Promise<RawBatch>[] = [];
    let next = startBatch;
    while (next < batches.length && inflight.length < prefetch)
      inflight.push(this.pool.submit(this.task(batches[next++]!, epoch)));
    while (inflight.length) {
      const raw = await inflight.shift()!;
      if (next < batches.length) inflight.push(this.pool.submit(this.task(batches[next++]!, epoch)));
      yield {
        ...raw,
        names: raw.indices.map((i) => this.entries[i]!.name),
        reports: raw.indices.map((i) => this.entries[i]!.report),
        labels: Float32Array.from(raw.indices.flatMap((i) => this.entries[i]!.labels)),
      };
    }
  }

  async close(): Promise<void> {
    await this.pool?.close();
    this.pool = undefined;
  }
}

export interface TensorBatch {
  global: torch.Tensor;
  locals: torch.Tensor[];
  labels: torch.Tensor;
  mask?: torch.Tensor;
}

/** Wraps a raw batch of `loader` as NCDHW tensors (one copy into native memory). */
export function batchToTensors(
  b: RawBatch,
  loader: Pick<Loader, 'globalShape' | 'localShape'>,
  device = 'cpu',
): TensorBatch {
  const B = b.indices.length;
  const [D, H, W] = loader.globalShape;
  const [d, h, w] = loader.localShape;
  const on = (t: torch.Tensor) => {
    if (device === 'cpu') return t;
    const moved = t.to({ device });
    t.dispose();
    return moved;
  };
  return {
    global: on(torch.tensor(b.global, [B, 1, D, H, W])),
    locals: b.locals.map((l) => on(torch.tensor(l, [B, 1, d, h, w]))),
    labels: on(torch.tensor(b.labels, [B, b.labels.length / B])),
    mask: b.mask ? on(torch.tensor(b.mask, [B, D, H, W]).to('int64')) : undefined,
  };
}
