// `t3d index`, `t3d search`, `t3d similar`: an embedding index of preprocessed volumes (LanceDB, one table per
// checkpoint) and the two questions people ask it — which cases match this text, which cases look like this scan.
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as torch from '../torch/index.js';
import { readCacheIndex } from '../data/cache.js';
import { loadT3dCheckpoint, type LoadedCheckpoint } from '../train/factory.js';
import { checkpointFileSha256 } from '../train/checkpoint.js';
import { embedSplit, embedTexts, scoresFromPrompts, zeroShotPrompts } from '../eval/tasks/zeroshot.js';
import { DEFAULT_DB, VectorIndex, type Hit, type IndexRow, type SearchFilter } from '../search/vector-index.js';
import { fetchSeries, findSeries } from '../io/dicomweb.js';
import { openAnalyzer } from './analyze.js';
import { reportGist } from '../text/report.js';
import { UsageError, parseOptions, type Options } from './args.js';

const log = (line: string) => console.error(`t3d: ${line}`);

export const INDEX_USAGE = `t3d index --checkpoint <run-or-checkpoint> [--cache <cache-dir> | --scans <folder> | --dicomweb <url>] [--db ${DEFAULT_DB}] [--split valid,train] [--batch 32] [--ann] [--intercept HU] [--timeout 60]

Embeds every volume of a preprocessed cache (default: the checkpoint's own) and stores it with its report, positive
labels and zero-shot finding probabilities in an embedded LanceDB database (--db, a folder). --scans takes a folder
of scans instead: every .nii/.nii.gz file and every DICOM series folder under it, preprocessed with the checkpoint's
preset as \`t3d analyze\` does; their id is the path inside the folder, their split 'scans', and their labels the
findings called positive at the validated thresholds (they have no labels CSV). --dicomweb takes a PACS's DICOMweb
root (e.g. http://host:8042/dicom-web): its CT series are found with QIDO-RS and fetched with WADO-RS, one at a time
(--timeout seconds per request), id = SeriesInstanceUID, split 'pacs'; a series with fewer instances than the server
lists, missing slices or a broken transfer is quarantined and tried again on the next run. Each checkpoint gets its own
table, so a new checkpoint never mixes with an old one. Incremental: volumes already in the table are skipped, so
rerunning resumes; each batch is one atomic append. A volume that cannot be read is skipped, reported and listed in
<db>/quarantine.jsonl. --ann builds an IVF-PQ approximate index at the end (worth it from ~10,000 rows).

Examples:
  t3d index --checkpoint runs/demo/t3d-s0
  t3d index --checkpoint runs/demo/t3d-s0 --split valid --db runs/index
  t3d index --checkpoint runs/demo/t3d-s0 --scans incoming/
  t3d index --checkpoint runs/demo/t3d-s0 --dicomweb http://pacs.local:8042/dicom-web`;

export const SEARCH_USAGE = `t3d search "<text>" --checkpoint <run-or-checkpoint> [--db ${DEFAULT_DB}] [--k 10] [--label <finding>] [--split <split>] [--json]

Embeds the text with the checkpoint's report encoder and lists the k indexed volumes nearest to it (cosine
similarity), optionally only those with a finding (--label, as in the labels CSV) or from one split.

Examples:
  t3d search "large right pleural effusion" --checkpoint runs/demo/t3d-s0
  t3d search "cardiomegaly" --checkpoint runs/demo/t3d-s0 --label Cardiomegaly --k 5 --json`;

export const SIMILAR_USAGE = `t3d similar <scan.nii[.gz] | dicom-series-folder | indexed-id> --checkpoint <run-or-checkpoint> [--db ${DEFAULT_DB}] [--k 10] [--label <finding>] [--split <split>] [--json] [--intercept HU]

The k indexed volumes nearest to a scan (preprocessed and embedded as \`t3d analyze\` does) or to an indexed volume
given by its id (the volume itself is left out).

Examples:
  t3d similar scan.nii.gz --checkpoint runs/demo/t3d-s0
  t3d similar valid_12_a_1 --checkpoint runs/demo/t3d-s0 --k 5`;

const checkpointIdOf = (c: LoadedCheckpoint) => checkpointFileSha256(c.dir, 'model.safetensors').slice(0, 16);

/** Scans under `folder`: .nii/.nii.gz files, and folders holding other files (DICOM series); paths relative to it. */
export function listScans(folder: string): string[] {
  if (!existsSync(folder) || !statSync(folder).isDirectory()) throw new Error(`--scans ${folder}: no such folder`);
  const out: string[] = [];
  const walk = (rel: string) => {
    const entries = readdirSync(join(folder, rel), { withFileTypes: true }).sort((a, b) =>
      a.name.localeCompare(b.name),
    );
    if (
      rel &&
      entries.some((e) => e.isFile() && !/\.(nii(\.gz)?|json|txt|csv|md)$/i.test(e.name) && !e.name.startsWith('.'))
    )
      out.push(rel);
    for (const e of entries) {
      const path = rel ? join(rel, e.name) : e.name;
      if (e.isDirectory()) walk(path);
      else if (/\.nii(\.gz)?$/i.test(e.name)) out.push(path);
    }
  };
  walk('');
  return out;
}

/** Reports a volume that could not be indexed and lists it in <db>/quarantine.jsonl. */
function quarantine(db: string, id: string, checkpointId: string, err: unknown): void {
  log(`index: ${id} skipped: ${(err as Error).message}`);
  appendFileSync(
    join(db, 'quarantine.jsonl'),
    JSON.stringify({ id, checkpointId, error: (err as Error).message, at: new Date().toISOString() }) + '\n',
  );
}

function progress(done: number, total: number, t0: number, processed: number): void {
  const rate = processed / ((performance.now() - t0) / 1000);
  console.log(
    `index: ${done}/${total} (${Math.round((100 * done) / total)} %) ${rate.toFixed(1)} volumes/s ETA ${Math.round((total - done) / Math.max(rate, 1e-9))} s`,
  );
}

interface ScanSource {
  /** what the items are, for the first progress line */
  what: string;
  ids: string[];
  split: string;
  /** the scan of an id on disk (a NIfTI file or a DICOM series folder), its source and a clean-up once analysed */
  open(id: string): Promise<{ path: string; source: string; close?: () => void }>;
}

interface ScanIndexOptions {
  checkpoint: string;
  db: string;
  batch: number;
  ann: boolean;
  device?: string;
  intercept?: number;
}

/** Scans → the checkpoint's analyzer → rows, appended batch by batch; failures quarantined, indexed ids skipped. */
async function indexScanSource(src: ScanSource, o: ScanIndexOptions): Promise<void> {
  const analyzer = await openAnalyzer({ checkpoint: o.checkpoint, device: o.device, log });
  try {
    mkdirSync(o.db, { recursive: true });
    const index = await VectorIndex.open(o.db, analyzer.checkpointId);
    const done = await index.ids();
    const todo = src.ids.filter((s) => !done.has(s));
    console.log(
      `index: ${src.ids.length} ${src.what}, ${src.ids.length - todo.length} already in table t3d_${index.checkpointId} of ${o.db}; ${todo.length} to embed`,
    );
    const t0 = performance.now();
    let added = 0,
      quarantined = 0;
    for (let at = 0; at < todo.length; at += o.batch) {
      const rows: IndexRow[] = [];
      for (const id of todo.slice(at, at + o.batch)) {
        let opened: Awaited<ReturnType<ScanSource['open']>> | undefined;
        try {
          opened = await src.open(id);
          const a = await analyzer.analyze(opened.path, { intercept: o.intercept, rejectGaps: true });
          rows.push({
            id,
            source: opened.source,
            split: src.split,
            report: '',
            labels: a.findings.filter((f) => f.positive).map((f) => f.label),
            findings: Object.fromEntries(a.findings.map((f) => [f.label, f.probability])),
            checkpointId: analyzer.checkpointId,
            vector: a.embedding,
          });
        } catch (err) {
          quarantined += 1;
          quarantine(o.db, id, analyzer.checkpointId, err);
        } finally {
          opened?.close?.();
        }
      }
      await index.add(rows);
      added += rows.length;
      progress(Math.min(at + o.batch, todo.length), todo.length, t0, added + quarantined);
    }
    if (o.ann) await index.createAnnIndex();
    console.log(
      `index: ${added} added, ${quarantined} quarantined; table t3d_${index.checkpointId} holds ${await index.count()} volumes${o.ann ? ' (IVF-PQ index built)' : ''}`,
    );
  } finally {
    analyzer.dispose();
  }
}

async function indexScans(folder: string, o: ScanIndexOptions): Promise<void> {
  const scans = listScans(folder);
  if (scans.length === 0) throw new Error(`--scans ${folder}: no .nii/.nii.gz files or DICOM series folders in it`);
  await indexScanSource(
    {
      what: `scans in ${folder}`,
      ids: scans,
      split: 'scans',
      open: async (id) => ({ path: join(folder, id), source: join(folder, id) }),
    },
    o,
  );
}

/** CT series of a DICOMweb server (QIDO-RS), each fetched (WADO-RS) into a temporary folder; id = SeriesInstanceUID. */
async function indexDicomWeb(base: string, o: ScanIndexOptions & { timeoutMs: number }): Promise<void> {
  const series = await findSeries(base, { timeoutMs: o.timeoutMs });
  const byUid = new Map(series.map((s) => [s.seriesUid, s]));
  await indexScanSource(
    {
      what: `CT series on ${base}`,
      ids: [...byUid.keys()],
      split: 'pacs',
      open: async (uid) => {
        const s = byUid.get(uid)!;
        const parts = await fetchSeries(base, s, { timeoutMs: o.timeoutMs });
        if (s.instances !== undefined && parts.length < s.instances)
          throw new Error(`partial series: ${parts.length} of ${s.instances} instances arrived`);
        const dir = mkdtempSync(join(tmpdir(), 't3d-series-'));
        parts.forEach((p, i) => writeFileSync(join(dir, `${String(i + 1).padStart(5, '0')}.dcm`), p));
        return {
          path: dir,
          source: `${base.replace(/\/+$/, '')}/studies/${s.studyUid}/series/${uid}`,
          close: () => rmSync(dir, { recursive: true, force: true }),
        };
      },
    },
    o,
  );
}

export async function runIndex(args: string[]): Promise<void> {
  const o = parseOptions(args, {
    checkpoint: 'string',
    cache: 'string',
    scans: 'string',
    dicomweb: 'string',
    timeout: 'number',
    db: 'string',
    split: 'string',
    batch: 'number',
    ann: 'boolean',
    device: 'string',
    intercept: 'number',
  });
  if (!o.checkpoint) throw new UsageError('index: --checkpoint <run-or-checkpoint> is required');
  const batch = (o.batch as number | undefined) ?? 32;
  if (!(Number.isInteger(batch) && batch >= 1))
    throw new UsageError(`index: --batch must be a positive integer, got ${batch}`);
  const db = (o.db as string | undefined) ?? DEFAULT_DB;
  const device = o.device as string | undefined;
  if ([o.cache, o.scans, o.dicomweb].filter(Boolean).length > 1)
    throw new UsageError('index: give one source: --cache <cache-dir>, --scans <folder> or --dicomweb <url>');
  if ((o.scans || o.dicomweb) && o.split) throw new UsageError('index: --split applies to a preprocessed cache');
  const scanOptions = {
    checkpoint: o.checkpoint as string,
    db,
    batch,
    ann: !!o.ann,
    device,
    intercept: o.intercept as number | undefined,
  };
  if (o.scans) return indexScans(o.scans as string, scanOptions);
  if (o.dicomweb) {
    const timeout = (o.timeout as number | undefined) ?? 60;
    if (!(timeout > 0)) throw new UsageError(`index: --timeout must be > 0 seconds, got ${timeout}`);
    return indexDicomWeb(o.dicomweb as string, { ...scanOptions, timeoutMs: timeout * 1000 });
  }
  const ckpt = loadT3dCheckpoint(o.checkpoint as string, log);
  const { model, tokenizer, config } = ckpt;
  try {
    if (device && device !== 'cpu') model.to({ device });
    model.eval();
    const cache = (o.cache as string | undefined) ?? config.data.cache;
    const { entries, labelNames } = readCacheIndex(cache);
    const splits = (o.split as string | undefined)?.split(',');
    const chosen = entries.filter((e) => !splits || splits.includes(e.split));
    if (splits && chosen.length === 0)
      throw new Error(
        `index: --split ${splits.join(',')}: no such volumes in ${cache} (splits: ${[...new Set(entries.map((e) => e.split))].join(', ')})`,
      );
    mkdirSync(db, { recursive: true });
    const index = await VectorIndex.open(db, checkpointIdOf(ckpt));
    const done = await index.ids();
    const todo = chosen.filter((e) => !done.has(e.name));
    console.log(
      `index: ${chosen.length} volumes in ${cache}, ${chosen.length - todo.length} already in table t3d_${index.checkpointId} of ${db}; ${todo.length} to embed`,
    );
    const prompts = zeroShotPrompts(model, tokenizer, labelNames, { templates: 3, device });
    const byName = new Map(entries.map((e) => [e.name, e]));
    const embed = async (names: string[]): Promise<IndexRow[]> => {
      const e = await embedSplit(model, tokenizer, cache, undefined, {
        names,
        batchSize: Math.min(batch, 8),
        maxTokens: config.data.maxTokens,
        device,
      });
      try {
        const probs = scoresFromPrompts(model, e.volumes, prompts);
        const vectors = torch.tidy(() => e.volumes.to('cpu').to('float32').toArray());
        const D = e.volumes.size(1);
        return e.names.map((n, i) => {
          const entry = byName.get(n)!;
          return {
            id: n,
            source: resolve(cache, entry.file),
            split: entry.split,
            report: entry.report,
            labels: labelNames.filter((_, l) => entry.labels[l] === 1),
            findings: Object.fromEntries(labelNames.map((l, j) => [l, probs[i]![j]!])),
            checkpointId: index.checkpointId,
            vector: vectors.slice(i * D, (i + 1) * D),
          };
        });
      } finally {
        torch.dispose([e.volumes, e.reports]);
      }
    };
    const t0 = performance.now();
    let added = 0,
      quarantined = 0;
    try {
      for (let at = 0; at < todo.length; at += batch) {
        const names = todo.slice(at, at + batch).map((e) => e.name);
        let rows: IndexRow[];
        try {
          rows = await embed(names);
        } catch {
          // find the volume(s) that fail, keep the rest
          rows = [];
          for (const n of names) {
            try {
              rows.push(...(await embed([n])));
            } catch (err) {
              quarantined += 1;
              quarantine(db, n, index.checkpointId, err);
            }
          }
        }
        await index.add(rows);
        added += rows.length;
        progress(at + names.length, todo.length, t0, added + quarantined);
      }
    } finally {
      torch.dispose([prompts.pos, prompts.neg]);
    }
    if (o.ann) await index.createAnnIndex();
    console.log(
      `index: ${added} added, ${quarantined} quarantined; table t3d_${index.checkpointId} holds ${await index.count()} volumes${o.ann ? ' (IVF-PQ index built)' : ''}`,
    );
  } finally {
    model.dispose();
  }
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
      `${String(i + 1).padStart(3)}. ${h.similarity.toFixed(3)}  ${h.id.padEnd(w)}  [${h.split}] ${h.labels.length ? h.labels.join(', ') : 'no findings'}\n       ${report}`,
    );
  });
}

function filters(o: Options): SearchFilter {
  const k = (o.k as number | undefined) ?? 10;
  if (!(Number.isInteger(k) && k >= 1)) throw new UsageError(`--k must be a positive integer, got ${k}`);
  return { k, label: o.label as string | undefined, split: o.split as string | undefined };
}

async function openIndex(db: string, checkpointId: string, checkpointDir: string): Promise<VectorIndex> {
  if (!existsSync(db))
    throw new Error(`--db ${db}: no such index; build one with \`t3d index --checkpoint ${checkpointDir}\``);
  const index = await VectorIndex.open(db, checkpointId);
  if ((await index.count()) === 0) {
    const others = await VectorIndex.checkpoints(db);
    throw new Error(
      `--db ${db}: nothing indexed with checkpoint ${index.checkpointId}${others.length ? ` (tables exist for ${others.join(', ')})` : ''}; run \`t3d index --checkpoint ${checkpointDir} --db ${db}\``,
    );
  }
  return index;
}

export async function runSearch(args: string[]): Promise<void> {
  const [text, ...rest] = args;
  if (!text || text.startsWith('--'))
    throw new UsageError('search: give the query text first, e.g. t3d search "pleural effusion" --checkpoint <run>');
  const o = parseOptions(rest, {
    checkpoint: 'string',
    db: 'string',
    k: 'number',
    label: 'string',
    split: 'string',
    json: 'boolean',
  });
  if (!o.checkpoint)
    throw new UsageError(
      'search: --checkpoint <run-or-checkpoint> is required (the index holds one table per checkpoint)',
    );
  const f = filters(o);
  const ckpt = loadT3dCheckpoint(o.checkpoint as string, log);
  try {
    const index = await openIndex((o.db as string | undefined) ?? DEFAULT_DB, checkpointIdOf(ckpt), ckpt.dir);
    ckpt.model.eval();
    const vector = torch.tidy(() =>
      embedTexts(ckpt.model, ckpt.tokenizer, [text], ckpt.config.data.maxTokens).to('float32').toArray(),
    );
    printHits(await index.search(vector, f), !!o.json);
  } finally {
    ckpt.model.dispose();
  }
}

export async function runSimilar(args: string[]): Promise<void> {
  const [query, ...rest] = args;
  if (!query || query.startsWith('--'))
    throw new UsageError('similar: give a scan (NIfTI file or DICOM series folder) or an indexed id first');
  const o = parseOptions(rest, {
    checkpoint: 'string',
    db: 'string',
    k: 'number',
    label: 'string',
    split: 'string',
    json: 'boolean',
    intercept: 'number',
  });
  if (!o.checkpoint) throw new UsageError('similar: --checkpoint <run-or-checkpoint> is required');
  const f = filters(o);
  const db = (o.db as string | undefined) ?? DEFAULT_DB;
  let index: VectorIndex;
  let vector: number[] | undefined;
  if (existsSync(query)) {
    // a scan: one analyzer loads the checkpoint, names its table and embeds the scan
    const analyzer = await openAnalyzer({ checkpoint: o.checkpoint as string, log });
    try {
      index = await openIndex(db, analyzer.checkpointId, analyzer.checkpoint);
      vector = (await analyzer.analyze(query, { intercept: o.intercept as number | undefined })).embedding;
    } finally {
      analyzer.dispose();
    }
  } else {
    const ckpt = loadT3dCheckpoint(o.checkpoint as string, log);
    ckpt.model.dispose();
    index = await openIndex(db, checkpointIdOf(ckpt), ckpt.dir);
    vector = await index.vectorOf(query);
    if (!vector) throw new Error(`similar: '${query}' is neither a scan on disk nor an id in the index`);
  }
  printHits(await index.search(vector, { ...f, excludeId: existsSync(query) ? undefined : query }), !!o.json);
}
