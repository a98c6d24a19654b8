// `t3d index`, `t3d search`, `t3d similar`: an embedding index of preprocessed volumes (LanceDB, one table per
// checkpoint; written by service/indexer.ts) and the two questions people ask it — which cases match this text,
// which cases look like this scan.
import { indexCache, indexDicomWeb, indexScans } from '../service/indexer.js';
import { searchSimilar, searchText } from '../service/search.js';
import { DEFAULT_DB, type Hit, type SearchFilter } from '../service/vector-index.js';
import { reportGist } from '../text/report.js';
import { UsageError, parseOptions } from './args.js';

const log = (line: string) => console.error(`t3d: ${line}`);

export async function runIndex(args: string[]): Promise<void> {
  const o = parseOptions(args, {
    string: ['checkpoint', 'cache', 'scans', 'dicomweb', 'db', 'split', 'device'],
    number: ['timeout', 'batch', 'intercept', 'retries', 'retry-wait'],
    boolean: ['ann', 'force'],
  });
  if (!o.checkpoint) throw new UsageError('index: --checkpoint <run-or-checkpoint> is required');
  const batch = o.batch ?? 32;
  if (!(Number.isInteger(batch) && batch >= 1))
    throw new UsageError(`index: --batch must be a positive integer, got ${batch}`);
  if ([o.cache, o.scans, o.dicomweb].filter(Boolean).length > 1) {
    throw new UsageError('index: give one source: --cache <cache-dir>, --scans <folder> or --dicomweb <url>');
  }
  if ((o.scans || o.dicomweb) && o.split) throw new UsageError('index: --split applies to a preprocessed cache');
  if (!o.dicomweb && (o.retries !== undefined || o['retry-wait'] !== undefined))
    throw new UsageError('index: --retries and --retry-wait apply to --dicomweb');
  const common = { checkpoint: o.checkpoint, db: o.db ?? DEFAULT_DB, batch, ann: !!o.ann, device: o.device, log };
  if (o.scans) return indexScans(o.scans, { ...common, intercept: o.intercept, force: o.force });
  if (o.dicomweb) {
    const timeout = o.timeout ?? 60;
    if (!(timeout > 0)) throw new UsageError(`index: --timeout must be > 0 seconds, got ${timeout}`);
    const retry = { retries: o.retries, waitS: o['retry-wait'] };
    const timeoutMs = timeout * 1000;
    return indexDicomWeb(o.dicomweb, { ...common, intercept: o.intercept, force: o.force, timeoutMs, retry });
  }
  return indexCache({ ...common, cache: o.cache, splits: o.split?.split(',') });
}

function printHits(hits: Hit[], json: boolean): void {
  if (json) {
    console.log(JSON.stringify(hits, null, 1));
    return;
  }
  if (hits.length === 0) {
    console.log('no matching volumes');
    return;
  }
  const w = Math.max(...hits.map((h) => h.id.length));
  hits.forEach((h, i) => {
    const report = reportGist(h.report);
    console.log(
      `${String(i + 1).padStart(3)}. ${h.similarity.toFixed(3)}  ${h.id.padEnd(w)}  [${h.split}] ` +
        `${h.labels.length ? h.labels.join(', ') : 'no findings'}\n       ${report}`,
    );
  });
}

function filters(o: { k?: number; label?: string; split?: string }): SearchFilter {
  const k = o.k ?? 10;
  if (!(Number.isInteger(k) && k >= 1)) throw new UsageError(`--k must be a positive integer, got ${k}`);
  return { k, label: o.label, split: o.split };
}

export async function runSearch(args: string[]): Promise<void> {
  const [text, ...rest] = args;
  if (!text || text.startsWith('--'))
    throw new UsageError('search: give the query text first, e.g. t3d search "pleural effusion" --checkpoint <run>');
  const o = parseOptions(rest, { string: ['checkpoint', 'db', 'label', 'split'], number: ['k'], boolean: ['json'] });
  if (!o.checkpoint) {
    throw new UsageError(
      'search: --checkpoint <run-or-checkpoint> is required (the index holds one table per checkpoint)',
    );
  }
  const filter = filters(o);
  printHits(await searchText(text, { checkpoint: o.checkpoint, db: o.db ?? DEFAULT_DB, filter, log }), !!o.json);
}

export async function runSimilar(args: string[]): Promise<void> {
  const [query, ...rest] = args;
  if (!query || query.startsWith('--'))
    throw new UsageError('similar: give a scan (NIfTI file or DICOM series folder) or an indexed id first');
  const o = parseOptions(rest, {
    string: ['checkpoint', 'db', 'label', 'split', 'series'],
    number: ['k', 'intercept'],
    boolean: ['json'],
  });
  if (!o.checkpoint) throw new UsageError('similar: --checkpoint <run-or-checkpoint> is required');
  const q = { ...o, checkpoint: o.checkpoint, db: o.db ?? DEFAULT_DB, filter: filters(o), log };
  printHits(await searchSimilar(query, q), !!o.json);
}
