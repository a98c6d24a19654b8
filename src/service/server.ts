// The web app behind `t3d serve`: one checkpoint and its embedding index — open an indexed case or upload a scan,
// scroll its slices (NiiVue), read its findings, search the index by text and walk to similar cases.
// node:http rather than a framework: nine fixed routes, a streamed upload with a hard size limit and one error
// path are all this needs, and it keeps the server free of dependencies. Routes are matched exactly against a
// fixed table (no file is ever served from a path in a URL); case ids travel as query parameters and are only
// looked up in the index. Every failure answers JSON { error } with a 4xx/5xx status; none stops the server.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { randomUUID, timingSafeEqual } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VectorIndex, type Case, type SearchFilter } from './vector-index.js';
import { packageRoot } from '../util/paths.js';
import { type OperatingRule } from '../eval/metrics/operating-points.js';
import { openAnalyzer, type Analysis, type AnalyzeOptions, type Analyzer } from './analyzer.js';
import { ScanRefusedError } from '../data/scan-checks.js';
import { sourceNifti, uploadNifti, writeUpload } from './volumes.js';
import { ClientError } from './client-error.js';
import { UploadStore } from './upload-store.js';
import { readQuery } from './search.js';
import { authorityHost, requestGuard } from './request-guard.js';
import { hostMemory } from '../torch/index.js';

const MAX_UPLOADS = 16;

export interface ServeOptions {
  checkpoint: string;
  db: string;
  host?: string;
  port?: number;
  token?: string;
  /** names besides loopback and the listening address that requests may give as their Host (--allow-host) */
  allowedHosts?: string[];
  maxUploadBytes?: number;
  /** how findings are called (--specificity); Youden's J by default */
  operatingPoint?: OperatingRule;
  /** the most bytes a zipped series may unpack to (default 4 × maxUploadBytes) */
  maxUnzippedBytes?: number;
  /** the most members a zip may have (default 10,000) */
  maxZipMembers?: number;
  /** the most seconds a zip may take to unpack (default 60) */
  unzipSeconds?: number;
  /** the most bytes on disk of the kept uploads, the oldest evicted first (default 4 GiB) */
  maxKeptBytes?: number;
  /** the most uploads received, unpacked and analysed at once; more are refused with 503 (default 2) */
  maxConcurrentUploads?: number;
  device?: string;
  log?: (line: string) => void;
}
export interface Server {
  url: string;
  /** the folder of the uploads' own folders, removed on close */
  uploadsDir: string;
  close(): Promise<void>;
}

interface Upload {
  dir: string;
  bytes: number;
  scan: { scan: string; kind: 'nifti' | 'dicom' };
  analysis: Analysis;
}

/** The static files of the page: a fixed map from route to file, nothing else is served from disk. */
function assets(): Map<string, { file: string; type: string }> {
  const web = join(packageRoot(), 'web');
  // NiiVue's self-contained browser bundle, found from its package entry (its exports do not list the bundle)
  const niivue = join(
    dirname(dirname(dirname(fileURLToPath(import.meta.resolve('@niivue/niivue'))))),
    'dist',
    'niivue.umd.js',
  );
  return new Map([
    ['/', { file: join(web, 'index.html'), type: 'text/html; charset=utf-8' }],
    ['/app.js', { file: join(web, 'app.js'), type: 'text/javascript; charset=utf-8' }],
    ['/app.css', { file: join(web, 'app.css'), type: 'text/css; charset=utf-8' }],
    ['/niivue.js', { file: niivue, type: 'text/javascript; charset=utf-8' }],
  ]);
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, (_, v: unknown) => (v === Infinity ? 'Infinity' : v));
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' }).end(text);
}

/** The request body, refused with 413 as soon as it passes `limit` bytes (the rest is not read). */
function readBody(req: IncomingMessage, limit: number): Promise<Uint8Array> {
  const declared = Number(req.headers['content-length']);
  if (declared > limit)
    return Promise.reject(new ClientError(413, `the upload is ${declared} bytes; the limit is ${limit}`));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.pause();
        reject(new ClientError(413, `the upload passed the limit of ${limit} bytes`));
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function positiveInt(v: string | null, name: string, fallback: number, max: number): number {
  if (v === null || v === '') return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > max)
    throw new ClientError(400, `${name} must be an integer in 0..${max}, got '${v}'`);
  return n;
}

/** An upload's ?intercept=<HU>&force=1: the fixes that the scan checks' warnings name, for the page to offer. */
function uploadOptions(q: URLSearchParams): AnalyzeOptions {
  const given = q.get('intercept');
  const intercept = given === null || given === '' ? undefined : Number(given);
  if (intercept !== undefined && !(Number.isFinite(intercept) && Math.abs(intercept) <= 65536))
    throw new ClientError(400, `intercept must be a number (HU), got '${given}'`);
  return { intercept, force: q.get('force') === '1' };
}

export async function startServer(o: ServeOptions): Promise<Server> {
  const log = o.log ?? ((l: string) => console.error(`t3d: ${l}`));
  const maxUpload = o.maxUploadBytes ?? 512 * 2 ** 20;
  const analyzer: Analyzer = await openAnalyzer({
    checkpoint: o.checkpoint,
    operatingPoint: o.operatingPoint,
    device: o.device,
    log,
  });
  const files = assets();
  const tmp = mkdtempSync(join(tmpdir(), 't3d-serve-'));
  const uploads = new UploadStore<Upload>(MAX_UPLOADS, o.maxKeptBytes ?? 4 * 2 ** 30);
  const limits = {
    maxBytes: o.maxUnzippedBytes ?? 4 * maxUpload,
    maxMembers: o.maxZipMembers ?? 10_000,
    unzipSeconds: o.unzipSeconds ?? 60,
  };
  const maxConcurrent = o.maxConcurrentUploads ?? 2;
  let inProgress = 0;
  let index: VectorIndex;
  try {
    index = await VectorIndex.open(o.db, analyzer.checkpointId);
  } catch (e) {
    analyzer.dispose();
    throw e;
  }
  if ((await index.count()) === 0)
    log(
      `the index ${o.db} has no table for checkpoint ${analyzer.checkpointId}: search and cases stay empty until ` +
        `\`t3d index --checkpoint ${analyzer.checkpoint} --db ${o.db}\``,
    );
  const token = o.token ? Buffer.from(o.token) : undefined;
  const authorized = (req: IncomingMessage, url: URL) => {
    if (!token) return true;
    const given = Buffer.from(
      /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? url.searchParams.get('token') ?? '',
    );
    return given.length === token.length && timingSafeEqual(given, token);
  };
  const filterOf = (q: URLSearchParams): SearchFilter => ({
    k: positiveInt(q.get('k'), 'k', 10, 1000) || 10,
    label: q.get('label') || undefined,
    split: q.get('split') || undefined,
  });
  const caseOf = async (q: URLSearchParams): Promise<Case> => {
    const id = q.get('id');
    if (!id) throw new ClientError(400, 'give the case as ?id=<indexed id>');
    const c = await index.get(id);
    if (!c) throw new ClientError(404, `no case '${id}' in the index`);
    return c;
  };
  const uploadOf = (q: URLSearchParams): Upload => {
    const u = uploads.get(q.get('id') ?? '');
    if (!u)
      throw new ClientError(
        404,
        `no upload '${q.get('id')}' (the ${MAX_UPLOADS} most recent uploads are kept, ` +
          `within ${Math.round(uploads.maxBytes / 2 ** 20)} MiB on disk)`,
      );
    return u;
  };
  // cases go to the browser without their source: a path on this machine or a PACS URL is the server's business
  const shown = <C extends Case>(cases: C[]): Omit<C, 'source'>[] => cases.map(({ source: _, ...c }) => c);
  const nifti = (res: ServerResponse, bytes: Uint8Array): void => {
    res
      .writeHead(200, {
        'content-type': 'application/octet-stream',
        'content-length': bytes.length,
        'cache-control': 'no-store',
      })
      .end(bytes);
  };

  const api: Record<string, (q: URLSearchParams, req: IncomingMessage, res: ServerResponse) => Promise<void>> = {
    'GET /api/info': async (_q, _req, res) =>
      sendJson(res, 200, {
        checkpoint: analyzer.checkpoint,
        checkpointId: analyzer.checkpointId,
        labelNames: analyzer.labelNames,
        thresholds: analyzer.thresholds,
        operating: analyzer.operating,
        note: analyzer.note,
        cases: await index.count(),
        maxUploadBytes: maxUpload,
        hostMemory,
      }),
    'GET /api/cases': async (q, _req, res) =>
      sendJson(
        res,
        200,
        shown(
          await index.list({
            label: q.get('label') || undefined,
            split: q.get('split') || undefined,
            limit: positiveInt(q.get('limit'), 'limit', 50, 1000),
            offset: positiveInt(q.get('offset'), 'offset', 0, 1e9),
          }),
        ),
      ),
    'GET /api/case': async (q, _req, res) => sendJson(res, 200, shown([await caseOf(q)])[0]),
    'GET /api/volume': async (q, _req, res) =>
      nifti(res, await sourceNifti((await caseOf(q)).source, analyzer.cacheDir, log)),
    'GET /api/similar': async (q, _req, res) => {
      const id = q.get('id') ?? '';
      const vector = id.startsWith('upload-')
        ? uploadOf(q).analysis.embedding
        : await index.vectorOf((await caseOf(q)).id);
      sendJson(
        res,
        200,
        shown(await index.search(vector!, { ...filterOf(q), excludeId: id.startsWith('upload-') ? undefined : id })),
      );
    },
    'GET /api/search': async (q, _req, res) => {
      const text = (q.get('q') ?? '').trim();
      if (!text) throw new ClientError(400, 'give the query text as ?q=');
      if (text.length > 2000) throw new ClientError(400, 'the query text is longer than 2000 characters');
      const query = readQuery(text, (texts) => analyzer.embedTexts(texts), await index.labelNames());
      sendJson(
        res,
        200,
        shown(await index.search(query.vector, { ...filterOf(q), withoutLabels: query.withoutLabels })),
      );
    },
    'POST /api/upload': async (q, req, res) => {
      // each upload in progress holds its body in memory and its unpacked files on disk: bound how many there are
      if (inProgress >= maxConcurrent)
        throw new ClientError(
          503,
          `the server takes ${maxConcurrent} upload(s) at once and has as many in progress; send it when one is done`,
        );
      inProgress++;
      const options = uploadOptions(q);
      const id = `upload-${randomUUID()}`;
      const dir = mkdtempSync(join(tmp, 'u-'));
      try {
        const bytes = await readBody(req, maxUpload);
        if (bytes.length === 0) throw new ClientError(400, 'the upload is empty');
        const scan = await writeUpload(bytes, dir, limits);
        let analysis: Analysis;
        try {
          analysis = await analyzer.analyze(scan.scan, options);
        } catch (e) {
          const error = `the scan cannot be analysed: ${(e as Error).message.split(dir).join('<upload>')}`;
          if (!(e instanceof ScanRefusedError)) throw new ClientError(422, error);
          // the page shows why, and can offer to analyse it anyway (?force=1)
          rmSync(dir, { recursive: true, force: true });
          sendJson(res, 422, { error, warnings: e.warnings });
          return;
        }
        for (const w of analysis.warnings) log(`upload ${id}: warning [${w.code}] ${w.message}`);
        uploads.add(id, { dir, bytes: scan.bytes, scan, analysis });
        const { embedding: _, scan: _scan, checkpoint: _c, ...shown } = analysis;
        sendJson(res, 200, { id, ...shown });
      } catch (e) {
        if (!uploads.has(id)) rmSync(dir, { recursive: true, force: true });
        throw e;
      } finally {
        inProgress--;
      }
    },
    'GET /api/upload': async (q, _req, res) => {
      const { embedding: _, scan: _scan, checkpoint: _c, ...shown } = uploadOf(q).analysis;
      sendJson(res, 200, { id: q.get('id'), ...shown });
    },
    'GET /api/upload/volume': async (q, _req, res) => nifti(res, await uploadNifti(uploadOf(q).scan)),
  };

  let guard: (req: IncomingMessage) => void = () => {
    throw new ClientError(503, 'the server is starting');
  };
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    guard(req);
    const url = new URL(req.url ?? '/', 'http://localhost');
    const asset = req.method === 'GET' ? files.get(url.pathname) : undefined;
    if (asset) {
      res.writeHead(200, { 'content-type': asset.type }).end(readFileSync(asset.file));
      return;
    }
    const route = api[`${req.method} ${url.pathname}`];
    if (!route) {
      const known = Object.keys(api).filter((k) => k.endsWith(` ${url.pathname}`));
      throw known.length
        ? new ClientError(405, `${req.method} is not allowed on ${url.pathname}`)
        : new ClientError(404, `no such page or API route: ${url.pathname}`);
    }
    if (!authorized(req, url))
      throw new ClientError(401, 'this server needs an access token: Authorization: Bearer <token>');
    await route(url.searchParams, req, res);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      const client = e instanceof ClientError;
      if (!client) log(`${req.method} ${req.url}: ${(e as Error).stack ?? e}`);
      if (res.headersSent) {
        res.destroy();
        return;
      }
      // after a refused upload the rest of the body is not read: close the connection instead of draining it
      // (likewise after a refused host or origin: nothing of such a request is read)
      if (client && [403, 413, 421, 503].includes(e.status)) res.setHeader('connection', 'close');
      sendJson(res, client ? e.status : 500, { error: client ? e.message : `internal error: ${(e as Error).message}` });
    });
  });
  server.requestTimeout = 10 * 60_000;
  // Node's 5 s keep-alive makes a client that reuses an idle connection just as the server drops it get ECONNRESET
  // (a page idle between clicks, a script pausing between calls); 65 s outlasts such pauses, as common proxies do
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 8080, o.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : (o.port ?? 8080);
  const listenHost = o.host ?? '127.0.0.1';
  guard = requestGuard({ listenHost, port, allowedHosts: o.allowedHosts });
  const host = ['0.0.0.0', '::'].includes(listenHost) ? '127.0.0.1' : authorityHost(listenHost);
  const url = `http://${host}:${port}`;
  return {
    url,
    uploadsDir: tmp,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          analyzer.dispose();
          rmSync(tmp, { recursive: true, force: true });
          resolve();
        });
      }),
  };
}
