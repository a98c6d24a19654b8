// The embedding index: an embedded LanceDB database (a folder, no server) with one table per checkpoint, so
// embeddings of different checkpoints never mix. A row per volume: id, source, split, report, positive labels, the
// zero-shot finding probabilities (JSON), the checkpoint id, and the unit-norm embedding. Search is by cosine.
import { resolve } from 'node:path';
import * as lancedb from '@lancedb/lancedb';
import { Field, FixedSizeList, Float32, List, Schema, Utf8 } from 'apache-arrow';

export interface IndexRow {
  id: string;
  source: string;
  split: string;
  report: string;
  labels: string[];
  /** finding name → zero-shot probability */
  findings: Record<string, number>;
  checkpointId: string;
  vector: number[];
}

export type Case = Omit<IndexRow, 'vector'>;
export interface Hit extends Case {
  similarity: number;
}

export interface SearchFilter {
  k?: number;
  label?: string;
  /** leave out rows with any of these labels (a query that denies a finding) */
  withoutLabels?: string[];
  split?: string;
  excludeId?: string;
  /**
   * with an IVF-PQ index: partitions probed (default 20) and how many × k candidates are re-ranked by exact distance
   * (default 10)
   */
  nprobes?: number;
  refineFactor?: number;
}

/** Where the CLI keeps the index unless told (--db). */
export const DEFAULT_DB = 'runs/index';

// an absolute path: LanceDB reads a relative one that starts with "db" (`--db db-2`) as a LanceDB Cloud URI
const connect = (dir: string) => lancedb.connect(resolve(dir));
const tableName = (checkpointId: string) => `t3d_${checkpointId}`;
/** ids compare with their numbers as numbers, so case lists read valid_2, valid_10, valid_100 */
const NATURAL = new Intl.Collator('en', { numeric: true });
const quote = (s: string) => `'${s.replaceAll("'", "''")}'`;
const whereOf = (f: Pick<SearchFilter, 'label' | 'withoutLabels' | 'split' | 'excludeId'>) =>
  [
    f.label && `array_has(labels, ${quote(f.label)})`,
    ...(f.withoutLabels ?? []).map((l) => `NOT array_has(labels, ${quote(l)})`),
    f.split && `split = ${quote(f.split)}`,
    f.excludeId && `id <> ${quote(f.excludeId)}`,
  ]
    .filter(Boolean)
    .join(' AND ');
const COLUMNS = ['id', 'source', 'split', 'report', 'labels', 'findings', 'checkpoint_id'];
interface StoredRow {
  id: string;
  source: string;
  split: string;
  report: string;
  labels: Iterable<string>;
  findings: string;
  checkpoint_id: string;
}
const caseOf = (r: StoredRow): Case => ({
  id: r.id,
  source: r.source,
  split: r.split,
  report: r.report,
  labels: [...r.labels],
  findings: JSON.parse(r.findings) as Record<string, number>,
  checkpointId: r.checkpoint_id,
});

function schema(dim: number): Schema {
  const text = (name: string) => new Field(name, new Utf8(), false);
  return new Schema([
    text('id'),
    text('source'),
    text('split'),
    text('report'),
    new Field('labels', new List(new Field('item', new Utf8(), true)), false),
    text('findings'),
    text('checkpoint_id'),
    new Field('vector', new FixedSizeList(dim, new Field('item', new Float32(), true)), false),
  ]);
}

export class VectorIndex {
  private constructor(
    readonly dir: string,
    readonly checkpointId: string,
    private readonly db: lancedb.Connection,
    private table: lancedb.Table | undefined,
  ) {}

  /** Opens (without creating) the table of `checkpointId` in the database folder `dir`. */
  static async open(dir: string, checkpointId: string): Promise<VectorIndex> {
    if (!/^[0-9a-f]{8,64}$/.test(checkpointId))
      throw new Error(`index: checkpoint id '${checkpointId}' is not a hex digest`);
    const db = await connect(dir);
    const names = await db.tableNames();
    const table = names.includes(tableName(checkpointId)) ? await db.openTable(tableName(checkpointId)) : undefined;
    return new VectorIndex(dir, checkpointId, db, table);
  }

  /** Checkpoint ids that have a table in this database. */
  static async checkpoints(dir: string): Promise<string[]> {
    const db = await connect(dir);
    return (await db.tableNames()).filter((n) => n.startsWith('t3d_')).map((n) => n.slice(4));
  }

  async count(): Promise<number> {
    return this.table ? this.table.countRows() : 0;
  }

  /** The finding names of this table (the keys of its rows' zero-shot probabilities). */
  async labelNames(): Promise<string[]> {
    if (!this.table) return [];
    const rows = (await this.table.query().select(['findings']).limit(1).toArray()) as { findings: string }[];
    return rows.length ? Object.keys(JSON.parse(rows[0]!.findings) as Record<string, number>) : [];
  }

  /** The ids already indexed (incremental indexing skips them). */
  async ids(): Promise<Set<string>> {
    if (!this.table) return new Set();
    const rows = await this.table.query().select(['id']).toArray();
    return new Set(rows.map((r: { id: string }) => r.id));
  }

  /** The stored embedding of `id`, or undefined when it is not indexed. */
  async vectorOf(id: string): Promise<number[] | undefined> {
    if (!this.table) return undefined;
    const rows = await this.table
      .query()
      .where(`id = ${quote(id)}`)
      .select(['vector'])
      .limit(1)
      .toArray();
    return rows.length ? [...(rows[0] as { vector: Iterable<number> }).vector] : undefined;
  }

  /** Appends rows (one atomic Lance commit: a killed process leaves the table as it was before the call). */
  async add(rows: IndexRow[]): Promise<void> {
    if (rows.length === 0) return;
    for (const r of rows)
      if (r.checkpointId !== this.checkpointId)
        throw new Error(`index: row ${r.id} is from checkpoint ${r.checkpointId}, this table is ${this.checkpointId}`);
    const data = rows.map((r) => ({
      id: r.id,
      source: r.source,
      split: r.split,
      report: r.report,
      labels: r.labels,
      findings: JSON.stringify(r.findings),
      checkpoint_id: r.checkpointId,
      vector: r.vector,
    }));
    if (this.table) await this.table.add(data);
    else
      this.table = await this.db.createTable(tableName(this.checkpointId), data, {
        schema: schema(rows[0]!.vector.length),
      });
  }

  /** Builds an approximate (IVF-PQ) vector index; searches use it from then on. */
  async createAnnIndex(o: { partitions?: number; subVectors?: number } = {}): Promise<void> {
    if (!this.table) throw new Error('index: nothing indexed yet');
    await this.table.createIndex('vector', {
      config: lancedb.Index.ivfPq({ distanceType: 'cosine', numPartitions: o.partitions, numSubVectors: o.subVectors }),
      replace: true,
    });
  }

  /**
   * Rows (without embeddings) in natural order of their ids (valid_2 before valid_10), optionally filtered by label
   * and split: a page of the index. The ids are sorted first, then only the page's rows are read.
   */
  async list(
    f: Omit<SearchFilter, 'k' | 'nprobes' | 'refineFactor'> & { limit?: number; offset?: number } = {},
  ): Promise<Case[]> {
    if (!this.table) return [];
    const where = whereOf(f);
    const n = await this.table.countRows(where || undefined);
    if (n === 0) return [];
    let all = this.table.query().select(['id']).limit(n);
    if (where) all = all.where(where);
    const offset = f.offset ?? 0;
    const ids = ((await all.toArray()) as { id: string }[])
      .map((r) => r.id)
      .sort(NATURAL.compare)
      .slice(offset, offset + (f.limit ?? 100));
    if (ids.length === 0) return [];
    const rows = (await this.table
      .query()
      .where(`id IN (${ids.map(quote).join(', ')})`)
      .select(COLUMNS)
      .limit(ids.length)
      .toArray()) as StoredRow[];
    const byId = new Map(rows.map((r) => [r.id, r]));
    return ids.map((id) => caseOf(byId.get(id)!));
  }

  /** One row (without its embedding), or undefined when `id` is not indexed. */
  async get(id: string): Promise<Case | undefined> {
    if (!this.table) return undefined;
    const rows = (await this.table
      .query()
      .where(`id = ${quote(id)}`)
      .select(COLUMNS)
      .limit(1)
      .toArray()) as StoredRow[];
    return rows.length ? caseOf(rows[0]!) : undefined;
  }

  /** The k nearest rows to `vector` by cosine similarity, optionally filtered by label and split. */
  async search(vector: number[], f: SearchFilter = {}): Promise<Hit[]> {
    if (!this.table)
      throw new Error(
        `index ${this.dir}: no table for checkpoint ${this.checkpointId}; run \`t3d index\` with that checkpoint first`,
      );
    let q = this.table
      .vectorSearch(vector)
      .distanceType('cosine')
      .limit(f.k ?? 10)
      .nprobes(f.nprobes ?? 20)
      .refineFactor(f.refineFactor ?? 10);
    const where = whereOf(f);
    if (where) q = q.where(where);
    return ((await q.toArray()) as (StoredRow & { _distance: number })[]).map((r) => ({
      ...caseOf(r),
      similarity: 1 - r._distance,
    }));
  }
}
