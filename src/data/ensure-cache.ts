// A preprocessed cache to work on: the folder itself when it already is one, else a dataset folder or
// manifest preprocessed into a cache of its own.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { buildCache, readCacheIndex } from './cache.js';
import { resolvePreset, type Preset } from './presets.js';
import { readSource } from './sources.js';

/** `data` when it holds a cache.json; else `data` preprocessed with `preset` (name or file) into `dir`, returned. */
export async function ensureCacheFrom(
  data: string,
  preset: string | Preset,
  dir: string,
  o: {
    onProgress?: (done: number, total: number) => void;
    log?: (msg: string) => void;
  } = {},
): Promise<string> {
  if (existsSync(join(data, 'cache.json'))) return data;
  if (!existsSync(data)) throw new Error(`--data ${data}: no such cache, dataset folder or manifest`);
  const src = readSource(data);
  const r = await buildCache(src, resolvePreset(preset), dir, { onProgress: o.onProgress });
  const n = r.quarantined.length;
  if (n) o.log?.(`${n} volumes quarantined (see ${join(dir, 'quarantine.jsonl')})`);
  return dir;
}

/** The reports of a cache, dataset folder or manifest (`data`), of one split when given. */
export function reportsOf(data: string, split?: string): string[] {
  const rows = existsSync(join(data, 'cache.json')) ? readCacheIndex(data).entries : readSource(data).records;
  return rows.filter((r) => !split || r.split === split).map((r) => r.report);
}
