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

/**
 * A ready cache feeds its volumes as its own preset made them: refuse one made with other preprocessing than the
 * model's (`model` names the checkpoint). A dataset folder passes: it is preprocessed with the model's preset.
 */
export function assertCachePreset(data: string, preset: string | Preset, model: string): void {
  if (!existsSync(join(data, 'cache.json'))) return;
  const want = resolvePreset(preset);
  const have = readCacheIndex(data).preset;
  const steps = (p: Preset) => {
    const { name: _n, description: _d, ...rest } = p;
    return JSON.stringify(Object.entries(rest).sort(([a], [b]) => a.localeCompare(b)));
  };
  if (steps(want) !== steps(have))
    throw new Error(
      `${data}: a cache preprocessed with preset '${have.name}', but ${model} takes '${want.name}'; give the ` +
        `dataset folder (it is then preprocessed with '${want.name}') or a cache made with that preset`,
    );
}

/** The reports of a cache, dataset folder or manifest (`data`), of one split when given. */
export function reportsOf(data: string, split?: string): string[] {
  const rows = existsSync(join(data, 'cache.json')) ? readCacheIndex(data).entries : readSource(data).records;
  return rows.filter((r) => !split || r.split === split).map((r) => r.report);
}
