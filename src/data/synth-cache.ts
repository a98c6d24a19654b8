// The preprocessed cache a run trains on: built from the configured synthetic set when it does not exist yet.
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Progress } from '../util/progress.js';
import { buildCache } from './cache.js';
import { resolvePreset, type Preset } from './presets.js';
import { readSource } from './sources.js';
import { writeSynthDataset } from './synth/dataset.js';
import { type ReportStyle } from './synth/reports-realistic.js';
import { type SynthVersion } from './synth/local-findings.js';
import { readJsonFile } from '../util/files.js';

/** A run config's data section, as far as the cache goes. */
export interface CacheSpec {
  cache: string;
  preset: string | Preset;
  /**
   * generate a synthetic dataset into `<cache>-source` and preprocess it when the cache does not exist;
   * keepSource false deletes the source volumes once the cache is built (half the disk of a large study); version 2
   * adds the findings only local views can see (synth/local-findings.ts; default 1, the existing results' data)
   */
  synth?: {
    count: number;
    seed: number;
    validFraction?: number;
    keepSource?: boolean;
    reportStyle?: ReportStyle;
    version?: SynthVersion;
  };
}

/** The synthetic spec a cache was built from, beside its index: a cache of other reports or images is never reused. */
const SPEC_FILE = 'synth.json';
const kindOf = (s: CacheSpec['synth'] | undefined) =>
  `report style '${s?.reportStyle ?? 'templated'}', generator version ${s?.version ?? 1}`;

function checkSynthKind(c: { data: CacheSpec }): void {
  const wanted = kindOf(c.data.synth);
  const specPath = join(c.data.cache, SPEC_FILE);
  const built = existsSync(specPath) ? kindOf(readJsonFile<CacheSpec['synth']>(specPath)) : undefined;
  if (built === undefined ? wanted === kindOf(undefined) : built === wanted) return;
  throw new Error(
    `${c.data.cache}: the cache was built with ${built ?? 'an unrecorded synthetic spec'}, but data.synth asks ` +
      `for ${wanted}; point data.cache at another folder to build one`,
  );
}

/** Makes sure the preprocessed cache exists: generates and preprocesses the synthetic set when configured. */
export async function ensureCache(c: { data: CacheSpec }): Promise<void> {
  if (existsSync(join(c.data.cache, 'cache.json'))) {
    if (c.data.synth) checkSynthKind(c);
    return;
  }
  if (!c.data.synth)
    throw new Error(`${c.data.cache}: no preprocessed cache; build one with \`t3d preprocess\` or set data.synth`);
  const preset = resolvePreset(c.data.preset);
  const source = `${c.data.cache}-source`;
  const p1 = new Progress('synth', c.data.synth.count);
  const synth = await writeSynthDataset({
    out: source,
    count: c.data.synth.count,
    seed: c.data.synth.seed,
    validFraction: c.data.synth.validFraction,
    reportStyle: c.data.synth.reportStyle,
    version: c.data.synth.version,
    preset,
    onProgress: (d) => p1.update(d),
  });
  if (synth.failed.length)
    throw new Error(
      `${source}: generating ${synth.failed.length} of ${c.data.synth.count} synthetic cases failed ` +
        `(first: ${synth.failed[0]}); rerun to retry them`,
    );
  const src = readSource(source);
  const p2 = new Progress('preprocess', src.records.length);
  const r = await buildCache(src, preset, c.data.cache, { onProgress: (d) => p2.update(d) });
  if (r.quarantined.length)
    throw new Error(`preprocessing quarantined ${r.quarantined.length} synthetic volumes: ${r.quarantined[0]!.reason}`);
  writeFileSync(join(c.data.cache, SPEC_FILE), JSON.stringify(c.data.synth, null, 2) + '\n');
  // the cache holds everything training and evaluation read (volumes, masks, reports, labels)
  if (c.data.synth.keepSource === false) rmSync(source, { recursive: true, force: true });
}
