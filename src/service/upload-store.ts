// The uploads `t3d serve` keeps for the page to view and to find similar cases for: the most recent, bounded in
// number and in bytes on disk (a zipped series can unpack to GiBs). Past either bound the oldest go first, and
// their folders with them; the newest is kept even when it alone passes the byte bound, as the page opens it next.
import { rmSync } from 'node:fs';

export interface KeptUpload {
  /** the upload's own folder, removed when it is evicted */
  dir: string;
  /** what the folder holds on disk */
  bytes: number;
}

export class UploadStore<U extends KeptUpload> {
  private readonly kept = new Map<string, U>();
  private total = 0;

  constructor(
    readonly maxCount: number,
    readonly maxBytes: number,
  ) {}

  get(id: string): U | undefined {
    return this.kept.get(id);
  }

  has(id: string): boolean {
    return this.kept.has(id);
  }

  /** bytes on disk of all kept uploads */
  get bytes(): number {
    return this.total;
  }

  /** Keeps `u` as the newest upload, evicting the oldest (folders removed) while over either bound. */
  add(id: string, u: U): void {
    this.kept.set(id, u);
    this.total += u.bytes;
    for (const [old, o] of this.kept) {
      if (old === id || (this.kept.size <= this.maxCount && this.total <= this.maxBytes)) break;
      this.kept.delete(old);
      this.total -= o.bytes;
      rmSync(o.dir, { recursive: true, force: true });
    }
  }
}
