// A DICOMweb client for the two calls ingestion needs (PS3.18): QIDO-RS to find series, WADO-RS to fetch a series'
// instances as multipart/related application/dicom. Every request has a timeout and is retried with backoff while the
// transport fails (TransportError); errors name the URL and the reason.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SeriesRef {
  studyUid: string;
  seriesUid: string;
  modality?: string;
  description?: string;
  /** the study's description and date (YYYYMMDD), when the server reports them */
  studyDescription?: string;
  studyDate?: string;
  /** NumberOfSeriesRelatedInstances, when the server reports it */
  instances?: number;
}

export interface DicomWebOptions {
  timeoutMs?: number;
  fetch?: typeof fetch;
  retry?: RetryPolicy;
  /** a line per retried request */
  log?: (line: string) => void;
}

/** Transport failures are retried: `retries` more tries after the first, waiting `firstWaitMs`, then twice as long
 * each time (at most 30 s a wait), so the total wait is bounded by firstWaitMs·(2^retries − 1). */
export interface RetryPolicy {
  retries: number;
  firstWaitMs: number;
}
export const DEFAULT_RETRY: RetryPolicy = { retries: 4, firstWaitMs: 1000 };

/** The network or the server failed (refused, reset, timed out, 5xx), not the data: retried, never a reason to
 * quarantine a series. */
export class TransportError extends Error {}
/** A multipart body that ends early: retried as a transport failure (a server killed mid-answer sends one), but one
 * that arrives truncated on every try is the series' own fault. */
export class TruncatedBody extends Error {}

type DicomJson = Record<string, { vr: string; Value?: unknown[] }>;
const value = (o: DicomJson, tag: string): unknown => o[tag]?.Value?.[0];

/** One GET and its whole body, failures of the transport thrown as TransportError, other HTTP errors as Error. */
async function getOnce(url: string, accept: string, o: DicomWebOptions): Promise<{ res: Response; body: Uint8Array }> {
  const timeoutMs = o.timeoutMs ?? 60_000;
  const signal = AbortSignal.timeout(timeoutMs);
  const failed = (err: unknown, what: string): TransportError => {
    const e = err as Error;
    if (e.name === 'TimeoutError' || e.name === 'AbortError')
      return new TransportError(`DICOMweb ${url}: no answer within ${timeoutMs / 1000} s`);
    const cause = (e as { cause?: Error }).cause;
    return new TransportError(`DICOMweb ${url}: ${what}${e.message}${cause ? ` (${cause.message})` : ''}`);
  };
  let res: Response;
  try {
    res = await (o.fetch ?? fetch)(url, { headers: { accept }, signal });
  } catch (err) {
    throw failed(err, '');
  }
  if (res.status >= 500 || res.status === 408 || res.status === 429) {
    await res.body?.cancel().catch(() => {});
    throw new TransportError(`DICOMweb ${url}: HTTP ${res.status} ${res.statusText}`);
  }
  if (!res.ok) {
    await res.body?.cancel().catch(() => {});
    throw new Error(`DICOMweb ${url}: HTTP ${res.status} ${res.statusText}`);
  }
  try {
    return { res, body: new Uint8Array(await res.arrayBuffer()) };
  } catch (err) {
    throw failed(err, 'the transfer broke off: ');
  }
}

/** getOnce and `read`, retried with exponential backoff while the transport fails or the body arrives truncated;
 * the last failure says how often it tried. */
async function get<T>(
  url: string,
  accept: string,
  o: DicomWebOptions,
  read: (res: Response, body: Uint8Array) => T,
): Promise<T> {
  const { retries, firstWaitMs } = o.retry ?? DEFAULT_RETRY;
  const t0 = performance.now();
  for (let attempt = 0; ; attempt++) {
    try {
      const { res, body } = await getOnce(url, accept, o);
      return read(res, body);
    } catch (err) {
      if (!(err instanceof TransportError || err instanceof TruncatedBody)) throw err;
      if (attempt >= retries) {
        const message = `${err.message} (${attempt + 1} tries over ${((performance.now() - t0) / 1000).toFixed(1)} s)`;
        throw err instanceof TransportError ? new TransportError(message) : new Error(message);
      }
      const wait = Math.min(firstWaitMs * 2 ** attempt, 30_000);
      o.log?.(`${err.message}; trying again in ${(wait / 1000).toFixed(1)} s (${attempt + 1}/${retries})`);
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

/** Where QIDO-RS lives when `base` is a server's root rather than its DICOMweb root (Orthanc's default path). */
const rootHint = (base: string): string =>
  /\/dicom-?web\/?$/i.test(base)
    ? ''
    : `; is ${base} the server's DICOMweb root? For Orthanc it is ${base.replace(/\/+$/, '')}/dicom-web`;

/** QIDO-RS: the series of a modality (default CT) on the server at `base` (e.g. http://host:8042/dicom-web). */
export async function findSeries(base: string, o: DicomWebOptions & { modality?: string } = {}): Promise<SeriesRef[]> {
  const url =
    `${base.replace(/\/+$/, '')}/series?Modality=${encodeURIComponent(o.modality ?? 'CT')}` +
    '&includefield=0008103E&includefield=00201209&includefield=00081030&includefield=00080020';
  let body: Uint8Array;
  try {
    body = await get(url, 'application/dicom+json', o, (_res, b) => b);
  } catch (err) {
    if (err instanceof TransportError || !/HTTP 40[04]/.test((err as Error).message)) throw err;
    throw new Error(`${(err as Error).message}${rootHint(base)}`);
  }
  const text = new TextDecoder().decode(body);
  let rows: unknown;
  try {
    rows = text.trim() ? JSON.parse(text) : [];
  } catch {
    throw new Error(`DICOMweb ${url}: the answer is not DICOM JSON${rootHint(base)}`);
  }
  if (!Array.isArray(rows)) throw new Error(`DICOMweb ${url}: expected a JSON array of series${rootHint(base)}`);
  // DICOM JSON: one object per series, keyed by 8-hex-digit tags (Orthanc's own REST API lists bare ids instead)
  const bad = rows.find(
    (r) => typeof r !== 'object' || r === null || !Object.keys(r).some((k) => /^[0-9A-F]{8}$/i.test(k)),
  );
  if (bad !== undefined)
    throw new Error(
      `DICOMweb ${url}: the answer is not DICOM JSON (an element is ${JSON.stringify(bad).slice(0, 60)})` +
        rootHint(base),
    );
  return (rows as DicomJson[])
    .map((r) => ({
      studyUid: String(value(r, '0020000D') ?? ''),
      seriesUid: String(value(r, '0020000E') ?? ''),
      modality: value(r, '00080060') as string | undefined,
      description: value(r, '0008103E') as string | undefined,
      studyDescription: value(r, '00081030') as string | undefined,
      studyDate: value(r, '00080020') as string | undefined,
      instances: value(r, '00201209') === undefined ? undefined : Number(value(r, '00201209')),
    }))
    .filter((s) => s.studyUid && s.seriesUid);
}

/** WADO-RS: every instance of a series, as the bytes of its DICOM file. */
export async function fetchSeries(base: string, s: SeriesRef, o: DicomWebOptions = {}): Promise<Uint8Array[]> {
  const url =
    `${base.replace(/\/+$/, '')}/studies/${encodeURIComponent(s.studyUid)}` +
    `/series/${encodeURIComponent(s.seriesUid)}`;
  return get(url, 'multipart/related; type="application/dicom"', o, (res, body) =>
    parseMultipart(body, res.headers.get('content-type') ?? '', url),
  );
}

/**
 * WADO-RS into a new temporary folder, one file per instance, for the DICOM reader; a series that arrives with fewer
 * instances than QIDO-RS listed is an error ("partial series"). `close` removes the folder.
 */
export async function downloadSeries(
  base: string,
  s: SeriesRef,
  o: DicomWebOptions = {},
): Promise<{ dir: string; close: () => void }> {
  const parts = await fetchSeries(base, s, o);
  if (s.instances !== undefined && parts.length < s.instances)
    throw new Error(`partial series: ${parts.length} of ${s.instances} instances arrived`);
  const dir = mkdtempSync(join(tmpdir(), 't3d-series-'));
  parts.forEach((p, i) => writeFileSync(join(dir, `${String(i + 1).padStart(5, '0')}.dcm`), p));
  return { dir, close: () => rmSync(dir, { recursive: true, force: true }) };
}

const indexOf = (hay: Uint8Array, needle: Uint8Array, from: number): number => {
  outer: for (let i = from; i <= hay.length - needle.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
};

/** The parts of a multipart body (RFC 2046): the bytes between delimiter lines, without their part headers. */
export function parseMultipart(body: Uint8Array, contentType: string, where = 'multipart body'): Uint8Array[] {
  const m = /boundary="?([^";]+)"?/i.exec(contentType);
  if (!/^multipart\//i.test(contentType.trim()) || !m)
    throw new Error(`DICOMweb ${where}: expected multipart/related with a boundary, got '${contentType}'`);
  const enc = new TextEncoder();
  const delimiter = enc.encode(`--${m[1]}`);
  const crlf2 = enc.encode('\r\n\r\n');
  const parts: Uint8Array[] = [];
  let at = indexOf(body, delimiter, 0);
  if (at < 0) throw new Error(`DICOMweb ${where}: no part delimiter in the body`);
  for (;;) {
    const after = at + delimiter.length;
    if (body[after] === 0x2d && body[after + 1] === 0x2d) return parts; // closing delimiter "--boundary--"
    const headersEnd = indexOf(body, crlf2, after);
    if (headersEnd < 0)
      throw new TruncatedBody(`DICOMweb ${where}: part ${parts.length + 1} has no end of headers (truncated?)`);
    const next = indexOf(body, enc.encode(`\r\n--${m[1]}`), headersEnd + 4);
    if (next < 0)
      throw new TruncatedBody(
        `DICOMweb ${where}: part ${parts.length + 1} is not closed by a delimiter (truncated transfer)`,
      );
    parts.push(body.subarray(headersEnd + 4, next));
    at = next + 2;
  }
}
