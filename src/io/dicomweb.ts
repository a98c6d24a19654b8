// A DICOMweb client for the two calls ingestion needs (PS3.18): QIDO-RS to find series, WADO-RS to fetch a series'
// instances as multipart/related application/dicom. Every request has a timeout; errors name the URL and the reason.

export interface SeriesRef {
  studyUid: string;
  seriesUid: string;
  modality?: string;
  description?: string;
  /** NumberOfSeriesRelatedInstances, when the server reports it */
  instances?: number;
}

export interface DicomWebOptions {
  timeoutMs?: number;
  fetch?: typeof fetch;
}

type DicomJson = Record<string, { vr: string; Value?: unknown[] }>;
const value = (o: DicomJson, tag: string): unknown => o[tag]?.Value?.[0];

async function get(url: string, accept: string, o: DicomWebOptions): Promise<Response> {
  const timeoutMs = o.timeoutMs ?? 60_000;
  let res: Response;
  try {
    res = await (o.fetch ?? fetch)(url, { headers: { accept }, signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    const e = err as Error;
    if (e.name === 'TimeoutError' || e.name === 'AbortError')
      throw new Error(`DICOMweb ${url}: no answer within ${timeoutMs / 1000} s`);
    const cause = (e as { cause?: Error }).cause;
    throw new Error(`DICOMweb ${url}: ${e.message}${cause ? ` (${cause.message})` : ''}`);
  }
  if (!res.ok) throw new Error(`DICOMweb ${url}: HTTP ${res.status} ${res.statusText}`);
  return res;
}

/** QIDO-RS: the series of a modality (default CT) on the server at `base` (e.g. http://host:8042/dicom-web). */
export async function findSeries(base: string, o: DicomWebOptions & { modality?: string } = {}): Promise<SeriesRef[]> {
  const url =
    `${base.replace(/\/+$/, '')}/series?Modality=${encodeURIComponent(o.modality ?? 'CT')}` +
    '&includefield=0008103E&includefield=00201209';
  const res = await get(url, 'application/dicom+json', o);
  const text = await res.text();
  let rows: DicomJson[];
  try {
    rows = text.trim() ? (JSON.parse(text) as DicomJson[]) : [];
  } catch {
    throw new Error(`DICOMweb ${url}: the answer is not DICOM JSON`);
  }
  if (!Array.isArray(rows)) throw new Error(`DICOMweb ${url}: expected a JSON array of series`);
  return rows
    .map((r) => ({
      studyUid: String(value(r, '0020000D') ?? ''),
      seriesUid: String(value(r, '0020000E') ?? ''),
      modality: value(r, '00080060') as string | undefined,
      description: value(r, '0008103E') as string | undefined,
      instances: value(r, '00201209') === undefined ? undefined : Number(value(r, '00201209')),
    }))
    .filter((s) => s.studyUid && s.seriesUid);
}

/** WADO-RS: every instance of a series, as the bytes of its DICOM file. */
export async function fetchSeries(base: string, s: SeriesRef, o: DicomWebOptions = {}): Promise<Uint8Array[]> {
  const url =
    `${base.replace(/\/+$/, '')}/studies/${encodeURIComponent(s.studyUid)}` +
    `/series/${encodeURIComponent(s.seriesUid)}`;
  const res = await get(url, 'multipart/related; type="application/dicom"', o);
  const type = res.headers.get('content-type') ?? '';
  let body: Uint8Array;
  try {
    body = new Uint8Array(await res.arrayBuffer());
  } catch (err) {
    throw new Error(`DICOMweb ${url}: the transfer broke off (${(err as Error).message})`);
  }
  return parseMultipart(body, type, url);
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
      throw new Error(`DICOMweb ${where}: part ${parts.length + 1} has no end of headers (truncated?)`);
    const next = indexOf(body, enc.encode(`\r\n--${m[1]}`), headersEnd + 4);
    if (next < 0)
      throw new Error(`DICOMweb ${where}: part ${parts.length + 1} is not closed by a delimiter (truncated transfer)`);
    parts.push(body.subarray(headersEnd + 4, next));
    at = next + 2;
  }
}
