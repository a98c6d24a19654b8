// <db>/quarantine.jsonl: the volumes an indexer could not read, one line each ({ id, checkpointId, error, at }). A
// volume has at most one entry per checkpoint (its latest failure), and loses it once it is indexed, so the file
// lists exactly what is still missing. Rewritten whole through a temporary file, so a killed run leaves it intact.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface QuarantineEntry {
  id: string;
  checkpointId: string;
  error: string;
  at: string;
}

export class Quarantine {
  readonly path: string;
  constructor(
    db: string,
    readonly checkpointId: string,
  ) {
    this.path = join(db, 'quarantine.jsonl');
  }

  entries(): QuarantineEntry[] {
    if (!existsSync(this.path)) return [];
    return readFileSync(this.path, 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as QuarantineEntry);
  }

  /** Lists `id` with its failure, replacing an earlier entry of it for this checkpoint. */
  add(id: string, err: unknown): void {
    const entry = { id, checkpointId: this.checkpointId, error: (err as Error).message, at: new Date().toISOString() };
    this.write([...this.without(new Set([id])), entry]);
  }

  /** Drops the entries of `ids` (indexed now) for this checkpoint; the number dropped. */
  clear(ids: Iterable<string>): number {
    const all = this.entries();
    const kept = this.without(new Set(ids), all);
    if (kept.length !== all.length) this.write(kept);
    return all.length - kept.length;
  }

  private without(ids: Set<string>, all = this.entries()): QuarantineEntry[] {
    return all.filter((e) => !(e.checkpointId === this.checkpointId && ids.has(e.id)));
  }

  private write(entries: QuarantineEntry[]): void {
    const tmp = `${this.path}.tmp`;
    writeFileSync(tmp, entries.map((e) => JSON.stringify(e) + '\n').join(''));
    renameSync(tmp, this.path);
  }
}
