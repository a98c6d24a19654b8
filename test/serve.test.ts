// `t3d serve`: the API answers as the CLI does (search ranking, an upload's findings equal `t3d analyze`, a case's
// volume equals its cache entry), refuses what it must (token, size, traversal, bad uploads) without going down,
// and the page works in a real headless Chromium: a case opens, the viewer draws it, search and similar cases work.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { zipSync } from 'fflate';
import { readNifti } from '../src/io/nifti.js';
import { encodeNifti, writeNiftiSync } from '../src/io/nifti-write.js';
import { readCacheIndex } from '../src/data/cache.js';
import { readSafetensorsRaw } from '../src/util/safetensors-file.js';
import { startServer, type Server } from '../src/service/server.js';
import { VectorIndex } from '../src/service/vector-index.js';
import { listScans } from '../src/service/indexer.js';
import { packageRoot } from '../src/util/paths.js';
import { fixture } from './helpers.js';
import { decodePng } from './png-decode.js';
import { readInvesalius, skipRealCt } from './real-ct.js';

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium && process.env.T3D_REQUIRE_CHROMIUM === '1')
  throw new Error(`T3D_REQUIRE_CHROMIUM=1 but ${CHROMIUM} is missing (apt-get install chromium)`);

const tmp = mkdtempSync(join(tmpdir(), 't3d-serve-test-'));
const cli = join(packageRoot(), 'dist', 'src', 'app', 'cli.js');
const ok = (...args: string[]) => {
  const r = spawnSync('node', [cli, ...args], { encoding: 'utf8', env: { ...process.env, T3D_NUM_THREADS: '1' } });
  assert.equal(r.status, 0, `t3d ${args.join(' ')}\n${r.stderr}`);
  return r.stdout;
};
const synth = join(tmp, 'synth');
const cache = join(tmp, 'cache');
const run = join(tmp, 'run');
const db = join(tmp, 'db');
const TOKEN = 'test-token-1234';
const LIMIT = 256 * 1024;
let server: Server;
/** the main server's log lines */
const logs: string[] = [];
const auth = { authorization: `Bearer ${TOKEN}` };
const api = async (path: string, init: RequestInit = {}) => {
  const r = await fetch(server.url + path, {
    ...init,
    headers: { ...auth, ...((init.headers as Record<string, string>) ?? {}) },
  });
  return { status: r.status, body: (await r.json()) as any }; // eslint-disable-line @typescript-eslint/no-explicit-any
};
/** A raw request, path sent byte for byte (fetch would normalise `..`). */
const raw = (path: string) =>
  new Promise<{ status: number; body: string }>((resolve, reject) => {
    const u = new URL(server.url);
    const req = request({ host: u.hostname, port: u.port, path, headers: auth }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
/** The synthetic NIfTI scans (HU), as `t3d index --scans` would find them. */
const niftiScans = () =>
  listScans(join(synth, 'dataset'))
    .filter((p) => p.endsWith('.nii.gz') && !p.startsWith('masks'))
    .map((p) => join(synth, 'dataset', p));

before(async () => {
  const preset = fixture('pretrain', 'tiny-preset.json');
  ok(
    'synth',
    '--out',
    synth,
    '--count',
    '8',
    '--valid-fraction',
    '0.5',
    '--seed',
    '5',
    '--preset',
    preset,
    '--storage',
    'hu',
    '--dicom',
  );
  ok('preprocess', '--data', join(synth, 'dataset'), '--out', cache, '--preset', preset);
  ok(
    'pretrain',
    '--config',
    fixture('pretrain', 'tiny.json'),
    '--set',
    `data.cache=${cache}`,
    '--set',
    `data.preset=${preset}`,
    '--steps',
    '3',
    '--out',
    run,
  );
  ok('index', '--checkpoint', run, '--db', db);
  server = await startServer({
    checkpoint: run,
    db,
    port: 0,
    token: TOKEN,
    maxUploadBytes: LIMIT,
    log: (l) => logs.push(l),
  });
});
after(async () => {
  await server?.close();
  rmSync(tmp, { recursive: true, force: true });
});

test('the API needs the token; the page itself does not', async () => {
  assert.equal((await fetch(`${server.url}/api/info`)).status, 401);
  assert.equal(
    (await fetch(`${server.url}/api/info`, { headers: { authorization: 'Bearer wrong-token-xxxx' } })).status,
    401,
  );
  assert.equal((await fetch(`${server.url}/api/info?token=${TOKEN}`)).status, 200);
  const page = await fetch(`${server.url}/`);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /<canvas id="viewer">/);
  assert.equal((await fetch(`${server.url}/niivue.js`)).status, 200);
});

test('cases, case volumes and search answer as the index and the CLI do', async () => {
  const info = await api('/api/info');
  const { entries, labelNames } = readCacheIndex(cache);
  assert.equal(info.body.cases, entries.length);
  assert.deepEqual(info.body.labelNames, labelNames);
  const cases = await api('/api/cases?limit=1000');
  assert.ok(
    cases.body.every((c: object) => !('source' in c)),
    'no server paths go to the browser',
  );
  assert.deepEqual(cases.body.map((c: { id: string }) => c.id).sort(), entries.map((e) => e.name).sort());
  const page = await api('/api/cases?limit=2&offset=2');
  assert.deepEqual(
    page.body.map((c: { id: string }) => c.id),
    cases.body.slice(2, 4).map((c: { id: string }) => c.id),
  );
  // a case's volume is the scan its cache entry was made from, at that scan's own grid and affine, in HU
  const e = entries[0]!;
  const volumeOf = async () => {
    const vol = await fetch(`${server.url}/api/volume?id=${encodeURIComponent(e.name)}`, { headers: auth });
    assert.equal(vol.status, 200);
    return new Uint8Array(await vol.arrayBuffer());
  };
  assert.ok(e.sourcePath && existsSync(e.sourcePath), 'the cache entry names its source');
  const scan = await readNifti(e.sourcePath);
  const nativeBytes = await volumeOf();
  const native = await readNifti(nativeBytes);
  assert.deepEqual(native.dataShape, scan.dataShape);
  assert.deepEqual(native.spacing.slice(0, 3), scan.spacing.slice(0, 3));
  assert.deepEqual(native.affine, scan.affine);
  assert.notDeepEqual(native.dataShape, [...e.shape].reverse(), 'not the cache grid');
  assert.ok(
    native.data.every((v, i) => Math.abs(v - scan.data[i]!) < 0.5),
    'the HU the cache was built from',
  );
  assert.ok(
    !new TextDecoder('latin1').decode(nativeBytes).includes(e.sourcePath),
    'the source path does not reach the browser',
  );
  // without its source (moved away) the case is shown as its cache entry: same int16 values, preset's spacing
  const away = `${e.sourcePath}.away`;
  renameSync(e.sourcePath, away);
  let cached: Uint8Array;
  try {
    cached = await volumeOf();
  } finally {
    renameSync(away, e.sourcePath);
  }
  assert.ok(
    logs.some((l) => l.includes(e.name) && /cache grid.*no longer exists/.test(l)),
    `a log line says why: ${logs.join('\n')}`,
  );
  const img = await readNifti(cached, { raw: true });
  const stored = readSafetensorsRaw(join(cache, e.file), ['image']).get('image')!;
  assert.deepEqual(img.dataShape, [...stored.shape].reverse());
  assert.deepEqual(
    [...(img.data as Int16Array)],
    [...new Int16Array(stored.bytes.buffer, stored.bytes.byteOffset, stored.bytes.byteLength / 2)],
  );
  assert.deepEqual(img.spacing.slice(0, 3), [12, 12, 20]);
  // text search ranks as `t3d search`
  const text = 'bilateral pleural effusion';
  const cliHits = JSON.parse(ok('search', text, '--checkpoint', run, '--db', db, '--k', '4', '--json')) as {
    id: string;
    similarity: number;
  }[];
  const hits = await api(`/api/search?q=${encodeURIComponent(text)}&k=4`);
  assert.deepEqual(
    hits.body.map((h: { id: string }) => h.id),
    cliHits.map((h) => h.id),
  );
  hits.body.forEach((h: { similarity: number }, i: number) =>
    assert.ok(Math.abs(h.similarity - cliHits[i]!.similarity) < 1e-5),
  );
  // a query that denies a finding is read as `t3d search` reads it (its volumes left out)
  const denied = 'no pleural effusion';
  const cliDenied = JSON.parse(ok('search', denied, '--checkpoint', run, '--db', db, '--k', '20', '--json')) as {
    id: string;
  }[];
  const pageDenied = (await api(`/api/search?q=${encodeURIComponent(denied)}&k=20`)).body as {
    id: string;
    labels: string[];
  }[];
  assert.deepEqual(
    pageDenied.map((h) => h.id),
    cliDenied.map((h) => h.id),
  );
  assert.ok(!pageDenied.some((h) => h.labels.includes('Pleural effusion')));
  // concurrent searches get the same answers as one by one
  const texts = [
    'cardiomegaly',
    'no pleural effusion is seen in either hemithorax',
    'lung nodule in the right upper lobe',
    'emphysema',
    'atelectasis',
    'hiatal hernia',
  ];
  const alone: { id: string; similarity: number }[][] = [];
  for (const t of texts) alone.push((await api(`/api/search?q=${encodeURIComponent(t)}&k=4`)).body);
  const together = await Promise.all(texts.map((t) => api(`/api/search?q=${encodeURIComponent(t)}&k=4`)));
  together.forEach((r, i) => {
    assert.deepEqual(
      r.body.map((h: { id: string }) => h.id),
      alone[i]!.map((h) => h.id),
    );
    r.body.forEach((h: { similarity: number }, j: number) =>
      assert.ok(Math.abs(h.similarity - alone[i]![j]!.similarity) < 1e-5),
    );
  });
  // similar cases of an indexed case leave the case out
  const similar = await api(`/api/similar?id=${encodeURIComponent(e.name)}&k=3`);
  assert.equal(similar.body.length, 3);
  assert.ok(similar.body.every((h: { id: string }) => h.id !== e.name));
});

test('an uploaded NIfTI or zipped DICOM series gets the findings and similar cases `t3d analyze` gives', async () => {
  const scan = niftiScans()[0]!;
  const expected = JSON.parse(ok('analyze', scan, '--checkpoint', run, '--json', '--db', db, '--k', '3')) as {
    findings: { label: string; probability: number }[];
    similar: { id: string }[];
  };
  const up = await api('/api/upload', { method: 'POST', body: readFileSync(scan) });
  assert.equal(up.status, 200, JSON.stringify(up.body));
  assert.deepEqual(
    up.body.findings.map((f: { label: string }) => f.label),
    expected.findings.map((f) => f.label),
  );
  up.body.findings.forEach((f: { probability: number }, i: number) =>
    assert.ok(Math.abs(f.probability - expected.findings[i]!.probability) < 1e-5),
  );
  const volume = await fetch(`${server.url}/api/upload/volume?id=${up.body.id}`, { headers: auth });
  assert.deepEqual(new Uint8Array(await volume.arrayBuffer()), new Uint8Array(readFileSync(scan)));
  // `t3d analyze --db` lists the same similar cases as the server
  assert.deepEqual(
    (await api(`/api/similar?id=${up.body.id}&k=3`)).body.map((h: { id: string }) => h.id),
    expected.similar.map((h) => h.id),
  );
  assert.match(
    ok('analyze', scan, '--checkpoint', run, '--db', db, '--k', '2'),
    /most similar indexed cases:\n\s+1\. [-\d.]+ \S+ \[\w+\][\s\S]*\n\s+2\. /,
  );

  const series = join(synth, 'dicom', readdirSync(join(synth, 'dicom')).sort()[0]!);
  const dicomExpected = JSON.parse(ok('analyze', series, '--checkpoint', run, '--json')) as {
    findings: { probability: number }[];
  };
  const zip = zipSync(
    Object.fromEntries(
      readdirSync(series).map((f) => [`some/folder/${f}`, new Uint8Array(readFileSync(join(series, f)))]),
    ),
  );
  assert.ok(zip.length < LIMIT, `the test zip (${zip.length} bytes) must fit the limit`);
  const dz = await api('/api/upload', { method: 'POST', body: zip });
  assert.equal(dz.status, 200, JSON.stringify(dz.body));
  dz.body.findings.forEach((f: { probability: number }, i: number) =>
    assert.ok(Math.abs(f.probability - dicomExpected.findings[i]!.probability) < 1e-5),
  );
  const dv = await fetch(`${server.url}/api/upload/volume?id=${dz.body.id}`, { headers: auth });
  const img = await readNifti(new Uint8Array(await dv.arrayBuffer()));
  assert.equal(img.dataShape.length, 3);
});

test('bad requests get clear 4xx answers and the server stays up', async () => {
  const big = await api('/api/upload', { method: 'POST', body: new Uint8Array(LIMIT + 1) });
  assert.equal(big.status, 413);
  assert.match(big.body.error, /limit/);
  const junk = await api('/api/upload', { method: 'POST', body: new TextEncoder().encode('this is not a scan') });
  assert.equal(junk.status, 400);
  assert.match(junk.body.error, /neither a NIfTI file .* nor a zip/);
  const truncated = readFileSync(niftiScans()[1]!).subarray(0, 2000);
  const t = await api('/api/upload', { method: 'POST', body: truncated });
  assert.equal(t.status, 422, JSON.stringify(t.body));
  assert.match(t.body.error, /cannot be analysed/);
  assert.doesNotMatch(t.body.error, new RegExp(tmpdir()), 'no server paths in errors');
  const badZip = await api('/api/upload', {
    method: 'POST',
    body: zipSync({ 'a.dcm': new TextEncoder().encode('not dicom') }),
  });
  assert.equal(badZip.status, 422);
  for (const path of [
    '/../../../../etc/passwd',
    '/%2e%2e/%2e%2e/etc/passwd',
    '/api/volume?id=../../../../etc/passwd',
    '/app.js/../../package.json',
    '/web/app.js',
  ]) {
    const r = await raw(path);
    assert.ok(r.status === 404, `${path}: ${r.status}`);
    assert.doesNotMatch(r.body, /root:|"dependencies"/);
  }
  assert.equal((await api('/api/search?q=')).status, 400);
  assert.equal((await api('/api/search?q=x&k=abc')).status, 400);
  assert.equal((await api('/api/case?id=nope')).status, 404);
  assert.equal((await api('/api/info', { method: 'DELETE' })).status, 405);
  assert.equal((await api('/api/info')).status, 200);
});

/** A request with headers of our choosing (fetch forbids setting Host), to a server at `base`. */
type Answer = { status: number; body: any }; // eslint-disable-line @typescript-eslint/no-explicit-any
const forged = (base: string, path: string, headers: Record<string, string>, method = 'GET', body?: Uint8Array) =>
  new Promise<Answer>((resolve, reject) => {
    const u = new URL(base);
    const req = request({ host: u.hostname, port: u.port, path, method, headers }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, body: text.startsWith('{') ? JSON.parse(text) : text }));
    });
    req.on('error', reject);
    req.end(body);
  });

test('without a token: other hosts (DNS rebinding) and cross-site posts are refused, the own page is not', async () => {
  const open = await startServer({ checkpoint: run, db, port: 0, allowedHosts: ['t3d.test'], log: () => {} });
  try {
    const port = new URL(open.url).port;
    assert.equal(new URL(open.url).hostname, '127.0.0.1', 'binds to loopback by default');
    // a page on attacker.example re-resolved to 127.0.0.1 sends its own name as Host: pages, assets and API refuse
    for (const path of ['/', '/app.js', '/api/info', '/api/cases']) {
      const r = await forged(open.url, path, { host: `attacker.example:${port}` });
      assert.equal(r.status, 421, `${path}: ${r.status}`);
      assert.match(r.body.error, /attacker\.example/);
      assert.match(r.body.error, /--allow-host attacker\.example/);
    }
    assert.equal((await forged(open.url, '/api/info', { host: 'attacker.example' })).status, 421);
    assert.equal((await forged(open.url, '/api/info', { host: `127.0.0.1:${Number(port) + 1}` })).status, 421);
    assert.equal((await forged(open.url, '/api/info', { host: `localhost.attacker.example:${port}` })).status, 421);
    // loopback names with the server's port, and an --allow-host name, are answered
    for (const host of [
      `127.0.0.1:${port}`,
      `localhost:${port}`,
      `[::1]:${port}`,
      `LocalHost:${port}`,
      `t3d.test:${port}`,
    ])
      assert.equal((await forged(open.url, '/api/info', { host })).status, 200, host);
    // an HTTP/1.0 request without Host (no browser sends one) is answered
    const http10 = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), '127.0.0.1', () => socket.write('GET /api/info HTTP/1.0\r\n\r\n'));
      let text = '';
      socket.on('data', (c: Buffer) => (text += c.toString()));
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
    });
    assert.match(http10, /^HTTP\/1\.[01] 200 /);

    // a page anywhere may POST text/plain to localhost without a preflight: refused before anything is read
    const scan = new Uint8Array(readFileSync(niftiScans()[0]!));
    const host = `127.0.0.1:${port}`;
    const textPlain = { host, 'content-type': 'text/plain' };
    const crossOrigin = await forged(
      open.url,
      '/api/upload',
      { ...textPlain, origin: 'http://attacker.example' },
      'POST',
      scan,
    );
    assert.equal(crossOrigin.status, 403);
    assert.match(crossOrigin.body.error, /origin 'http:\/\/attacker\.example' is refused/);
    assert.equal(crossOrigin.body.id, undefined, 'nothing analysed');
    const refused: Record<string, string>[] = [
      { 'sec-fetch-site': 'cross-site' },
      { 'sec-fetch-site': 'same-site' },
      { origin: 'null' },
      { origin: `http://localhost:${port}` },
      { origin: `https://${host}` },
    ];
    for (const headers of refused) {
      const r = await forged(open.url, '/api/upload', { ...textPlain, ...headers }, 'POST', scan);
      assert.equal(r.status, 403, JSON.stringify(headers));
      assert.equal(r.body.id, undefined);
    }
    // the page's own request (same origin) and a script's (neither header) are analysed
    const own = await forged(
      open.url,
      '/api/upload',
      { host, origin: `http://${host}`, 'sec-fetch-site': 'same-origin' },
      'POST',
      scan,
    );
    assert.equal(own.status, 200, JSON.stringify(own.body));
    assert.match(own.body.id, /^upload-/);
    const script = await forged(open.url, '/api/upload', { host }, 'POST', scan);
    assert.equal(script.status, 200, JSON.stringify(script.body));
    // GETs are not subject to the origin check (a cross-site page cannot read their answers without rebinding)
    assert.equal((await forged(open.url, '/api/info', { host, 'sec-fetch-site': 'cross-site' })).status, 200);
  } finally {
    await open.close();
  }
});

/** Headless Chromium with WebGL2 for NiiVue through SwiftShader (software), the only renderer without a GPU. */
async function launchChromium() {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
      '--disable-sync',
      '--use-angle=swiftshader',
      '--enable-unsafe-swiftshader',
      // a name that resolves to this machine, as a rebinding attacker's does
      '--host-resolver-rules=MAP attacker.example 127.0.0.1',
    ],
  });
}

test(
  'the page in headless Chromium: a case opens and draws, search and similar cases work, errors show',
  { skip: haveChromium ? false : `${CHROMIUM} is not installed`, timeout: 180_000 },
  async () => {
    const browser = await launchChromium();
    // a PACS-ingested case with a realistic (long) series UID, in a copy of the index that a second server reads
    // (a server keeps the table version it opened): the viewer cannot show it and must say why
    const pacsUid = '1.2.826.0.1.3680043.8.498.10234567891234567891234567891234567891234';
    const pacsDb = join(tmp, 'db-pacs');
    cpSync(db, pacsDb, { recursive: true });
    const index = await VectorIndex.open(pacsDb, (await api('/api/info')).body.checkpointId as string);
    await index.add([
      {
        id: pacsUid,
        source: `http://127.0.0.1:9/dicom-web/studies/1.2.3/series/${pacsUid}`,
        split: 'pacs',
        report: '',
        labels: [],
        findings: {},
        checkpointId: index.checkpointId,
        // opposite to an indexed case's: never among the similar cases the steps below follow
        vector: (await index.vectorOf((await index.list({ limit: 1 }))[0]!.id))!.map((v) => -v),
      },
    ]);
    const pageServer = await startServer({
      checkpoint: run,
      db: pacsDb,
      port: 0,
      token: TOKEN,
      maxUploadBytes: LIMIT,
      log: () => {},
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
      const pageErrors: string[] = [];
      page.on('pageerror', (e) => pageErrors.push(e.message));
      await page.goto(`${pageServer.url}/?token=${TOKEN}`);
      await page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
      const stats = async () => {
        const { pixels, channels } = decodePng(await page.locator('#viewer').screenshot());
        const gray: number[] = [];
        for (let i = 0; i < pixels.length; i += channels) gray.push((pixels[i]! + pixels[i + 1]! + pixels[i + 2]!) / 3);
        const mean = gray.reduce((a, b) => a + b, 0) / gray.length;
        const sd = Math.sqrt(gray.reduce((a, b) => a + (b - mean) ** 2, 0) / gray.length);
        return { mean, sd, levels: new Set(gray.map(Math.round)).size };
      };
      const empty = await stats();
      const first = page.locator(`#list li:not([data-id="${pacsUid}"])`).first();
      const id = await first.getAttribute('data-id');
      await first.click();
      await page.waitForSelector(`#viewer-box[data-loaded="${id}"]`, { timeout: 60_000 });
      await page.waitForTimeout(500);
      const shown = await stats();
      // T3D_TEST_SCREENSHOTS=<dir> keeps a picture of the page, for a person to look at
      if (process.env.T3D_TEST_SCREENSHOTS)
        await page.screenshot({ path: join(process.env.T3D_TEST_SCREENSHOTS, 'serve-case.png') });
      assert.ok(shown.sd > 10 && shown.levels > 20, `the viewer draws the volume: ${JSON.stringify({ empty, shown })}`);
      assert.ok(
        shown.sd > 2 * empty.sd,
        `the drawn canvas differs from the empty one: ${JSON.stringify({ empty, shown })}`,
      );
      assert.equal(await page.locator('#case-title').textContent(), id);
      assert.equal(await page.locator('#findings tbody tr').count(), (await api('/api/info')).body.labelNames.length);
      // every call is read with its error rates and the plain statement of what it is
      assert.match((await page.locator('#calls-note').textContent())!, /zero-shot screening signals.*per volume/);
      assert.match((await page.locator('#findings td.rates').first().textContent())!, /^(\d\.\d\d|—) \/ /);
      // text search fills the list with matches
      await page.fill('#query', 'pleural effusion');
      await page.click('#search-form button');
      await page.waitForFunction(() => document.getElementById('list-title')!.textContent!.startsWith('Best matches'));
      assert.ok((await page.locator('#list li').count()) > 0);
      // follow a similar case
      const similar = page.locator('#similar li').first();
      const next = await similar.getAttribute('data-id');
      assert.ok(next && next !== id);
      await similar.click();
      await page.waitForFunction((n) => document.getElementById('case-title')!.textContent === n, next);
      // the PACS case: the server's reason instead of a spinning "loading …", and its long UID does not widen the page
      await page.fill('#query', '');
      await page.click('#search-form button');
      await page.waitForFunction(() => document.getElementById('list-title')!.textContent === 'Cases');
      await page.locator(`#list li[data-id="${pacsUid}"]`).click();
      await page.waitForSelector('#viewer-box[data-loaded="none"]', { timeout: 30_000 });
      assert.match((await page.locator('#status').textContent())!, /stored on the PACS/);
      const wide = await page.evaluate(() =>
        [...document.querySelectorAll('body *')]
          .filter((e) => e.getBoundingClientRect().right > window.innerWidth)
          .map((e) => `${e.tagName}#${e.id}.${e.className} ${Math.round(e.getBoundingClientRect().right)}`),
      );
      assert.deepEqual(wide, [], 'every element fits the window');
      // a scan stored without its intercept (CT-RATE v1 style: air at 0): the scan check's warning is on the page
      // with its fix, and the fix analyses the same file again with it
      const hu = await readNifti(niftiScans()[0]!);
      const stored = Int16Array.from(hu.data, (v) => Math.round(v) + 1024);
      const v1 = encodeNifti({ data: stored, shape: hu.dataShape, affine: hu.affine, datatype: 'int16' });
      await page.setInputFiles('#upload', {
        name: 'v1.nii',
        mimeType: 'application/octet-stream',
        buffer: Buffer.from(v1),
      });
      await page.waitForSelector('#warnings:not([hidden])', { timeout: 60_000 });
      assert.match((await page.locator('#warnings').textContent())!, /intercept/);
      await page.locator('#warnings button', { hasText: 'intercept -1024' }).first().click();
      await page.waitForFunction(
        () => document.getElementById('case-meta')!.textContent!.includes('intercept=-1024'),
        undefined,
        {
          timeout: 60_000,
        },
      );
      assert.equal(
        await page.locator('#warnings').isHidden(),
        true,
        (await page.locator('#warnings').textContent()) ?? '',
      );
      // an upload over the limit is refused with the reason shown, and the page goes on
      await page.setInputFiles('#upload', {
        name: 'big.nii',
        mimeType: 'application/octet-stream',
        buffer: Buffer.alloc(LIMIT + 10),
      });
      await page.waitForSelector('#error:not([hidden])');
      assert.match((await page.locator('#error').textContent())!, /limit/);
      // a path-traversal URL is a 404
      assert.equal((await page.request.get(`${pageServer.url}/%2e%2e/%2e%2e/etc/passwd`)).status(), 404);
      // the page under a rebound name is refused (421); the page under its own name did all of the above
      const rebound = await browser.newPage();
      const refused = await rebound.goto(`http://attacker.example:${new URL(pageServer.url).port}/`);
      assert.equal(refused?.status(), 421);
      assert.match(await rebound.content(), /does not answer for the host/);
      assert.deepEqual(pageErrors, []);
    } finally {
      await browser.close();
      await pageServer.close();
    }
  },
);

test(
  'the page in headless Chromium on the real head CT: the case draws its anatomy, bone within the body as in its slices',
  { skip: skipRealCt || (haveChromium ? false : `${CHROMIUM} is not installed`), timeout: 120_000 },
  async (t) => {
    const ct = readInvesalius();
    const [D, H, W] = ct.shape;
    const scans = join(tmp, 'real-ct');
    mkdirSync(scans);
    writeNiftiSync(join(scans, 'head.nii.gz'), {
      data: ct.data,
      shape: [W, H, D],
      affine: ct.affine,
      datatype: 'int16',
    });
    const realDb = join(tmp, 'db-real');
    ok('index', '--checkpoint', run, '--scans', scans, '--db', realDb);
    // what the viewer should draw (window −1000…400 HU) in the left column of its 2×2 layout (coronal above axial;
    // a 3D rendering sits bottom right): the slices through the volume's centre, each voxel weighted by its area in
    // mm²; bone (≥ 400 HU, drawn white) as a share of the body (> −500 HU, drawn above gray 91)
    const [sx, sy, sz] = ct.spacing;
    const at = (k: number, j: number, i: number) => ct.data[(k * H + j) * W + i]!;
    let bone = 0,
      body = 0;
    const count = (v: number, area: number) => {
      if (v > -500) body += area;
      if (v >= 400) bone += area;
    };
    for (let j = 0; j < H; j++) for (let i = 0; i < W; i++) count(at(D >> 1, j, i), sx * sy);
    for (let k = 0; k < D; k++) for (let i = 0; i < W; i++) count(at(k, H >> 1, i), sx * sz);
    const expected = bone / body;
    const browser = await launchChromium();
    const realServer = await startServer({ checkpoint: run, db: realDb, port: 0, token: TOKEN, log: () => {} });
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
      const pageErrors: string[] = [];
      page.on('pageerror', (e) => pageErrors.push(e.message));
      await page.goto(`${realServer.url}/?token=${TOKEN}`);
      await page.waitForSelector('body[data-ready="true"]', { timeout: 60_000 });
      await page.locator('#list li[data-id="head.nii.gz"]').click();
      await page.waitForSelector('#viewer-box[data-loaded="head.nii.gz"]', { timeout: 60_000 });
      await page.waitForTimeout(500);
      if (process.env.T3D_TEST_SCREENSHOTS)
        await page.screenshot({ path: join(process.env.T3D_TEST_SCREENSHOTS, 'serve-real-ct.png') });
      const { pixels, channels, width } = decodePng(await page.locator('#viewer').screenshot());
      let drawnBone = 0,
        drawnBody = 0,
        all = 0;
      for (let p = 0; p < pixels.length; p += channels) {
        if ((p / channels) % width >= width / 2) continue; // the right column
        const [r, g, b] = [pixels[p]!, pixels[p + 1]!, pixels[p + 2]!];
        if (r > g + 40) continue; // the red crosshair
        all++;
        const gray = (r + g + b) / 3;
        if (gray > 91) drawnBody++;
        if (gray >= 250) drawnBone++;
      }
      const drawn = drawnBone / drawnBody;
      const shares = { drawn, expected, bodyOfCanvas: drawnBody / all };
      t.diagnostic(`bone's share of the body drawn ${drawn.toFixed(3)}, in the slices ${expected.toFixed(3)}`);
      assert.ok(drawnBody > 0.05 * all, `the body covers part of the canvas: ${JSON.stringify(shares)}`);
      assert.ok(Math.abs(drawn - expected) < 0.25 * expected, `bone's share of the body: ${JSON.stringify(shares)}`);
      assert.deepEqual(pageErrors, []);
    } finally {
      await browser.close();
      await realServer.close();
    }
  },
);
