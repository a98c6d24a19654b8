// The embedding index's writers: a preprocessed cache, a folder of scans or a PACS (DICOMweb) → embeddings, reports,
// labels and zero-shot finding probabilities → one LanceDB table per checkpoint. Incremental (indexed ids are
// skipped), one atomic append per batch, unreadable volumes and scans the scan checks refuse quarantined in
// <db>/quarantine.jsonl (quarantine.ts); the warnings of the scans indexed are listed in <db>/scan-warnings.jsonl.
// A PACS that stops answering is no reason to quarantine: ingestion stops with an error, and a rerun resumes.
import { appendFileSync, existsSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as torch from '../torch/index.js';
import { readCacheIndex } from '../data/cache.js';
import { assertCachePreset } from '../data/ensure-cache.js';
import { DEFAULT_RETRY, downloadSeries, findSeries, TransportError, type SeriesRef } from '../io/dicomweb.js';
import { loadT3dCheckpoint } from '../train/factory.js';
import { checkpointId } from '../train/checkpoint.js';
import { embedSplit } from '../inference/embed.js';
import { scoresFromPrompts, zeroShotPrompts } from '../eval/tasks/zeroshot.js';
import { ScanRefusedError, type ScanWarning } from '../data/scan-checks.js';
import { openAnalyzer } from './analyzer.js';
import { Quarantine } from './quarantine.js';
import { VectorIndex, type IndexRow } from './vector-index.js';

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
function setAside(q: Quarantine, id: string, err: unknown, log: (line: string) => void): void {
  log(`index: ${id} skipped: ${(err as Error).message}`);
  q.add(id, err);
}

/** Runs `body` on the database folder `db`, creating it; a failure that leaves a new folder without a table or a
 * quarantine list removes it again. */
async function inDb<T>(db: string, body: () => Promise<T>): Promise<T> {
  const created = !existsSync(db);
  mkdirSync(db, { recursive: true });
  try {
    return await body();
  } catch (err) {
    if (created && !existsSync(join(db, 'quarantine.jsonl')) && (await VectorIndex.checkpoints(db)).length === 0)
      rmSync(db, { recursive: true, force: true });
    throw err;
  }
}

/** Reports a scan's check warnings and lists them in <db>/scan-warnings.jsonl (the scan is indexed). */
function recordWarnings(db: string, id: string, checkpointId: string, w: ScanWarning[], log: (l: string) => void) {
  for (const x of w) log(`index: ${id}: warning [${x.code}] ${x.message}`);
  appendFileSync(
    join(db, 'scan-warnings.jsonl'),
    JSON.stringify({ id, checkpointId, warnings: w, at: new Date().toISOString() }) + '\n',
  );
}

function progress(done: number, total: number, t0: number, processed: number, print: (line: string) => void): void {
  const rate = processed / ((performance.now() - t0) / 1000);
  print(
    `index: ${done}/${total} (${Math.round((100 * done) / total)} %) ${rate.toFixed(1)} volumes/s ETA ` +
      `${Math.round((total - done) / Math.max(rate, 1e-9))} s`,
  );
}

interface ScanSource {
  /** what the items are, for the first progress line */
  what: string;
  ids: string[];
  split: string;
  /**
   * the scan of an id on disk (a NIfTI file or a DICOM series folder), its source, what the row shows as its report
   * (a PACS series' descriptions) and a clean-up once analysed
   */
  open(id: string): Promise<{ path: string; source: string; report?: string; close?: () => void }>;
}

export interface IndexOptions {
  checkpoint: string;
  db: string;
  batch: number;
  ann: boolean;
  device?: string;
  /** progress lines (default console.log) and warnings (default console.error) */
  print?: (line: string) => void;
  log?: (line: string) => void;
}
/** force: index scans the scan checks refuse (they are quarantined otherwise) */
export type ScanIndexOptions = IndexOptions & { intercept?: number; force?: boolean };
const printer = (o: IndexOptions) => ({
  print: o.print ?? ((l: string) => console.log(l)),
  log: o.log ?? ((l: string) => console.error(`t3d: ${l}`)),
});

/**
 * Scans → the checkpoint's analyzer → rows, appended batch by batch; unreadable scans quarantined, indexed ids
 * skipped. A TransportError (the source stopped answering) ends the run with an error after the rows so far.
 */
async function indexScanSource(src: ScanSource, o: ScanIndexOptions): Promise<void> {
  const { print, log } = printer(o);
  const analyzer = await openAnalyzer({ checkpoint: o.checkpoint, device: o.device, log });
  try {
    await inDb(o.db, async () => {
      const index = await VectorIndex.open(o.db, analyzer.checkpointId);
      const q = new Quarantine(o.db, index.checkpointId);
      const done = await index.ids();
      q.clear(done);
      const todo = src.ids.filter((s) => !done.has(s));
      print(
        `index: ${src.ids.length} ${src.what}, ${src.ids.length - todo.length} already in table ` +
          `t3d_${index.checkpointId} of ${o.db}; ${todo.length} to embed`,
      );
      const t0 = performance.now();
      let added = 0,
        quarantined = 0,
        refused = 0,
        warned = 0;
      for (let at = 0; at < todo.length; at += o.batch) {
        const rows: IndexRow[] = [];
        let outage: TransportError | undefined;
        for (const id of todo.slice(at, at + o.batch)) {
          let opened: Awaited<ReturnType<ScanSource['open']>> | undefined;
          try {
            opened = await src.open(id);
            const a = await analyzer.analyze(opened.path, { intercept: o.intercept, rejectGaps: true, force: o.force });
            if (a.warnings.length) {
              warned += 1;
              recordWarnings(o.db, id, analyzer.checkpointId, a.warnings, log);
            }
            rows.push({
              id,
              source: opened.source,
              split: src.split,
              report: opened.report ?? '',
              labels: a.findings.filter((f) => f.positive).map((f) => f.label),
              findings: Object.fromEntries(a.findings.map((f) => [f.label, f.probability])),
              checkpointId: analyzer.checkpointId,
              vector: a.embedding,
            });
          } catch (err) {
            if (err instanceof TransportError) {
              outage = err;
              break;
            }
            quarantined += 1;
            if (err instanceof ScanRefusedError) refused += 1;
            setAside(q, id, err, log);
          } finally {
            opened?.close?.();
          }
        }
        await index.add(rows);
        q.clear(rows.map((r) => r.id));
        added += rows.length;
        if (outage)
          throw new Error(
            `index: ${outage.message}. Stopped: ${added} of ${todo.length} added in this run (${quarantined} ` +
              `quarantined for their content, none for this failure); rerun the same command to resume: what is ` +
              'indexed is skipped',
          );
        progress(Math.min(at + o.batch, todo.length), todo.length, t0, added + quarantined, print);
      }
      if (o.ann) await index.createAnnIndex();
      print(
        `index: ${added} added${warned ? ` (${warned} with warnings: ${join(o.db, 'scan-warnings.jsonl')})` : ''}, ` +
          `${quarantined} quarantined` +
          `${refused ? ` (${refused} refused by the scan checks; --force indexes them)` : ''}; ` +
          `table t3d_${index.checkpointId} holds ${await index.count()} volumes${o.ann ? ' (IVF-PQ index built)' : ''}`,
      );
    });
  } finally {
    analyzer.dispose();
  }
}

/** Every .nii/.nii.gz file and DICOM series folder under `folder`; id = the path inside it, split 'scans'. */
export async function indexScans(folder: string, o: ScanIndexOptions): Promise<void> {
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

/**
 * What the case list shows for a PACS series instead of a report: its series and study descriptions and the study
 * date, as the server lists them (no patient name or id: the index is not the place for them).
 */
export function pacsDescription(s: SeriesRef): string {
  const date = /^\d{8}$/.test(s.studyDate ?? '')
    ? s.studyDate!.replace(/(\d{4})(\d\d)(\d\d)/, '$1-$2-$3')
    : s.studyDate;
  const parts = [
    s.description && `series “${s.description}”`,
    s.studyDescription && `study “${s.studyDescription}”`,
    date && `of ${date}`,
  ].filter(Boolean);
  return `PACS ${parts.length ? parts.join(', ') : 'series without a description'}`;
}

/** CT series of a DICOMweb server (QIDO-RS), each fetched (WADO-RS) into a temporary folder; id = SeriesInstanceUID. */
export async function indexDicomWeb(
  base: string,
  o: ScanIndexOptions & { timeoutMs: number; retry?: { retries?: number; waitS?: number } },
): Promise<void> {
  const retries = o.retry?.retries ?? DEFAULT_RETRY.retries,
    waitS = o.retry?.waitS ?? DEFAULT_RETRY.firstWaitMs / 1000;
  if (!(Number.isInteger(retries) && retries >= 0))
    throw new Error(`index: --retries must be an integer ≥ 0, got ${retries}`);
  if (!(waitS >= 0)) throw new Error(`index: --retry-wait must be ≥ 0 seconds, got ${waitS}`);
  const retry = { retries, firstWaitMs: waitS * 1000 };
  const web = { timeoutMs: o.timeoutMs, retry, log: printer(o).log };
  const series = await findSeries(base, web);
  if (series.length === 0)
    throw new Error(
      `--dicomweb ${base}: the server lists no CT series; nothing to index (is it the server's DICOMweb root, ` +
        'e.g. http://host:8042/dicom-web for Orthanc?)',
    );
  const byUid = new Map(series.map((s) => [s.seriesUid, s]));
  await indexScanSource(
    {
      what: `CT series on ${base}`,
      ids: [...byUid.keys()],
      split: 'pacs',
      open: async (uid) => {
        const s = byUid.get(uid)!;
        const { dir, close } = await downloadSeries(base, s, web);
        return {
          path: dir,
          source: `${base.replace(/\/+$/, '')}/studies/${s.studyUid}/series/${uid}`,
          report: pacsDescription(s),
          close,
        };
      },
    },
    o,
  );
}

/** The volumes of a preprocessed cache (default: the checkpoint's own), optionally some splits only. */
export async function indexCache(o: IndexOptions & { cache?: string; splits?: string[] }): Promise<void> {
  const { print, log } = printer(o);
  const { db, batch, device } = o;
  const ckpt = loadT3dCheckpoint(o.checkpoint, log);
  const { model, tokenizer, config } = ckpt;
  try {
    if (device && device !== 'cpu') model.to({ device });
    model.eval();
    const cache = o.cache ?? config.data.cache;
    if (!cache) throw new Error(`index: ${ckpt.dir} is an imported model with no training cache; give --cache`);
    assertCachePreset(cache, ckpt.preset, ckpt.dir);
    const { entries, labelNames } = readCacheIndex(cache);
    const splits = o.splits;
    const chosen = entries.filter((e) => !splits || splits.includes(e.split));
    if (splits && chosen.length === 0)
      throw new Error(
        `index: --split ${splits.join(',')}: no such volumes in ${cache} (splits: ` +
          `${[...new Set(entries.map((e) => e.split))].join(', ')})`,
      );
    mkdirSync(db, { recursive: true });
    const index = await VectorIndex.open(db, checkpointId(ckpt.dir));
    const q = new Quarantine(db, index.checkpointId);
    const done = await index.ids();
    q.clear(done);
    const todo = chosen.filter((e) => !done.has(e.name));
    print(
      `index: ${chosen.length} volumes in ${cache}, ${chosen.length - todo.length} already in table ` +
        `t3d_${index.checkpointId} of ${db}; ${todo.length} to embed`,
    );
    // an image-only model (no text tower) scores no findings: its rows hold the reference labels only
    const prompts = model.text ? zeroShotPrompts(model, tokenizer, labelNames, { templates: 3, device }) : undefined;
    const byName = new Map(entries.map((e) => [e.name, e]));
    const embed = async (names: string[]): Promise<IndexRow[]> => {
      const e = await embedSplit(model, tokenizer, cache, undefined, {
        names,
        batchSize: Math.min(batch, 8),
        maxTokens: config.data.maxTokens,
        device,
      });
      try {
        const probs = prompts ? scoresFromPrompts(model, e.volumes, prompts) : undefined;
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
            findings: probs ? Object.fromEntries(labelNames.map((l, j) => [l, probs[i]![j]!])) : {},
            checkpointId: index.checkpointId,
            vector: vectors.slice(i * D, (i + 1) * D),
          };
        });
      } finally {
        torch.dispose([e.volumes, e.reports ?? []]);
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
              setAside(q, n, err, log);
            }
          }
        }
        await index.add(rows);
        q.clear(rows.map((r) => r.id));
        added += rows.length;
        progress(at + names.length, todo.length, t0, added + quarantined, print);
      }
    } finally {
      if (prompts) torch.dispose([prompts.pos, prompts.neg]);
    }
    if (o.ann) await index.createAnnIndex();
    print(
      `index: ${added} added, ${quarantined} quarantined; table t3d_${index.checkpointId} holds ` +
        `${await index.count()} volumes${o.ann ? ' (IVF-PQ index built)' : ''}`,
    );
  } finally {
    model.dispose();
  }
}
