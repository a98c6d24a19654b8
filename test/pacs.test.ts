// PACS ingestion over DICOMweb against a real Orthanc (Debian's orthanc + orthanc-dicomweb, started on loopback with a
// config written here): synthetic CT series uploaded, found by QIDO-RS, fetched by WADO-RS, indexed once; a series
// with a missing slice is quarantined; a killed ingestion resumes without duplicates; a silent server times out; a
// truncated transfer is caught (those two against a local stand-in server). Without Orthanc installed the Orthanc tests
// are skipped, unless T3D_REQUIRE_ORTHANC=1 (orthanc.ts).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyOverrides, loadConfig } from '../src/train/config.js';
import { ensureCache } from '../src/data/synth-cache.js';
import { parseMultipart } from '../src/io/dicomweb.js';
import { VectorIndex } from '../src/service/vector-index.js';
import { pacsDescription } from '../src/service/indexer.js';
import { packageRoot } from '../src/util/paths.js';
import { fixture } from './helpers.js';
import { Orthanc, skipOrthanc } from './orthanc.js';

const skip = skipOrthanc;

const tmp = mkdtempSync(join(tmpdir(), 't3d-pacs-'));
const cli = join(packageRoot(), 'dist', 'src', 'app', 'cli.js');
const t3d = (...args: string[]) =>
  spawnSync('node', [cli, ...args], { encoding: 'utf8', env: { ...process.env, T3D_NUM_THREADS: '1' } });
const ok = (...args: string[]) => {
  const r = t3d(...args);
  assert.equal(r.status, 0, `t3d ${args.join(' ')}\n${r.stderr}`);
  return r.stdout;
};
const cache = join(tmp, 'cache');
const run = join(tmp, 'run');
const synth = join(tmp, 'synth');
let orthanc: Orthanc | undefined;
let base = '';
let rest = '';

before(async () => {
  const preset = fixture('pretrain', 'tiny-preset.json');
  await ensureCache(
    applyOverrides(loadConfig(fixture('pretrain', 'tiny.json')), [`data.cache=${cache}`, `data.preset=${preset}`]),
  );
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
  ok('synth', '--out', synth, '--count', '4', '--seed', '3', '--preset', preset, '--dicom');
  if (skip) return;
  orthanc = await Orthanc.start(tmp);
  rest = orthanc.rest;
  for (const series of readdirSync(join(synth, 'dicom')))
    await orthanc.upload(
      readdirSync(join(synth, 'dicom', series)).map((f) => readFileSync(join(synth, 'dicom', series, f))),
    );
  base = orthanc.dicomWeb;
});
after(() => {
  orthanc?.process?.kill('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
});

const checkpointIdOf = (out: string) => /table t3d_([0-9a-f]{16})/.exec(out)![1]!;

test("a PACS series' row shows its descriptions and study date (never the patient)", () => {
  const s = { studyUid: '1.2', seriesUid: '1.2.3', description: 'CT CHEST', studyDate: '20240102' };
  assert.equal(
    pacsDescription({ ...s, studyDescription: 'CHEST ROUTINE' }),
    'PACS series “CT CHEST”, study “CHEST ROUTINE”, of 2024-01-02',
  );
  assert.equal(pacsDescription({ studyUid: '1.2', seriesUid: '1.2.3' }), 'PACS series without a description');
});

test('multipart/related parsing: parts, quoted boundary, and truncated bodies', () => {
  const enc = (s: string) => new TextEncoder().encode(s);
  const body = enc(
    '--b1\r\nContent-Type: application/dicom\r\n\r\nAAA\r\n--b1\r\nContent-Type: application/dicom\r\nContent-Length: 2\r\n\r\nBB\r\n--b1--\r\n',
  );
  assert.deepEqual(
    parseMultipart(body, 'multipart/related; type="application/dicom"; boundary="b1"').map((p) =>
      new TextDecoder().decode(p),
    ),
    ['AAA', 'BB'],
  );
  assert.deepEqual(parseMultipart(body, 'multipart/related; boundary=b1').length, 2);
  assert.throws(
    () => parseMultipart(body.subarray(0, 60), 'multipart/related; boundary=b1'),
    /part 2 .*(truncated|not closed)/,
  );
  assert.throws(() => parseMultipart(body, 'application/dicom'), /expected multipart\/related with a boundary/);
});

test(
  'CT series from Orthanc are found, fetched and indexed once; they embed as their NIfTI files do',
  { skip },
  async () => {
    const db = join(tmp, 'db');
    const first = ok('index', '--checkpoint', run, '--dicomweb', base, '--db', db);
    assert.match(
      first,
      /4 CT series on .*; 4 to embed[\s\S]*4 added, 0 quarantined; table t3d_[0-9a-f]{16} holds 4 volumes/,
    );
    assert.match(
      ok('index', '--checkpoint', run, '--dicomweb', base, '--db', db),
      /4 already in table .*; 0 to embed[\s\S]*0 added, 0 quarantined; .* holds 4 volumes/,
    );
    const index = await VectorIndex.open(db, checkpointIdOf(first));
    const ids = [...(await index.ids())];
    assert.equal(ids.length, 4);
    // the same volumes as NIfTI files (raw values + the CT-RATE-style intercept) give the same embeddings
    const nii = join(tmp, 'nii');
    mkdirSync(nii);
    for (const split of ['train', 'valid']) {
      for (const c of readdirSync(join(synth, 'dataset', split))) {
        for (const s of readdirSync(join(synth, 'dataset', split, c))) {
          for (const f of readdirSync(join(synth, 'dataset', split, c, s)))
            writeFileSync(join(nii, f), readFileSync(join(synth, 'dataset', split, c, s, f)));
        }
      }
    }
    const dbNii = join(tmp, 'db-nii');
    ok('index', '--checkpoint', run, '--scans', nii, '--db', dbNii, '--intercept', '-1024');
    const niiIndex = await VectorIndex.open(dbNii, checkpointIdOf(first));
    for (const id of ids) {
      const v = (await index.vectorOf(id))!;
      const self = (await index.search(v, { k: 1, split: 'pacs' }))[0]!;
      assert.equal(self.id, id);
      assert.ok(self.source.startsWith(`${base}/studies/`) && self.source.endsWith(`/series/${id}`), self.source);
      // the case list shows the series' description from the PACS in place of a report
      assert.match(self.report, /^PACS series “synthetic chest CT”/);
      const match = (await niiIndex.search(v, { k: 1 }))[0]!;
      assert.ok(match.similarity > 0.999, `series ${id}: nearest NIfTI ${match.id} at cosine ${match.similarity}`);
    }
  },
);

let removed: ArrayBuffer | undefined; // the slice the next test deletes, put back later
test('a series with a missing slice is quarantined; the others are indexed', { skip }, async () => {
  const series = (await (await fetch(`${rest}/series?expand`)).json()) as {
    ID: string;
    MainDicomTags: { SeriesInstanceUID: string };
  }[];
  const victim = series[0]!;
  const instances = (await (await fetch(`${rest}/series/${victim.ID}/instances`)).json()) as {
    ID: string;
    MainDicomTags: { InstanceNumber: string };
  }[];
  const middle = instances.sort(
    (a, b) => Number(a.MainDicomTags.InstanceNumber) - Number(b.MainDicomTags.InstanceNumber),
  )[Math.floor(instances.length / 2)]!;
  removed = await (await fetch(`${rest}/instances/${middle.ID}/file`)).arrayBuffer();
  assert.ok((await fetch(`${rest}/instances/${middle.ID}`, { method: 'DELETE' })).ok);
  const db = join(tmp, 'db-partial');
  const out = ok('index', '--checkpoint', run, '--dicomweb', base, '--db', db);
  assert.match(out, /3 added, 1 quarantined/);
  const q = readFileSync(join(db, 'quarantine.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { id: string; error: string });
  assert.equal(q.length, 1);
  assert.equal(q[0]!.id, victim.MainDicomTags.SeriesInstanceUID);
  assert.match(q[0]!.error, /partial series/);
});

test('ingestion killed midway resumes: every series indexed exactly once', { skip }, async () => {
  const db = join(tmp, 'db-kill');
  const child = spawn('node', [cli, 'index', '--checkpoint', run, '--dicomweb', base, '--db', db, '--batch', '1'], {
    env: { ...process.env, T3D_NUM_THREADS: '1' },
  });
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (/index: 2\/\d+ /.test(out)) {
        child.kill('SIGKILL');
        resolve();
      } // after two one-series batches
    });
    child.on('exit', () => resolve());
    child.on('error', reject);
  });
  await new Promise((r) => child.once('exit', r).once('close', r));
  const again = ok('index', '--checkpoint', run, '--dicomweb', base, '--db', db);
  const id = checkpointIdOf(again);
  assert.match(again, /[1-3] already in table/);
  const index = await VectorIndex.open(db, id);
  const ids = await index.ids();
  assert.equal(await index.count(), ids.size, 'no id twice');
  // the series left partial by the previous test is quarantined (again on each run), never indexed
  const quarantined = new Set(
    readFileSync(join(db, 'quarantine.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { id: string }).id),
  );
  assert.equal(quarantined.size, 1);
  assert.ok(![...quarantined].some((q) => ids.has(q)));
  assert.equal(ids.size, 3);
});

test('a quarantined series that becomes whole is indexed and loses its quarantine entry', { skip }, async () => {
  const db = join(tmp, 'db-partial');
  assert.match(readFileSync(join(db, 'quarantine.jsonl'), 'utf8'), /partial series/);
  assert.ok((await fetch(`${rest}/instances`, { method: 'POST', body: removed! })).ok, 'the slice is put back');
  assert.match(
    ok('index', '--checkpoint', run, '--dicomweb', base, '--db', db),
    /3 already in table .*; 1 to embed[\s\S]*1 added, 0 quarantined; .* holds 4 volumes/,
  );
  assert.equal(readFileSync(join(db, 'quarantine.jsonl'), 'utf8'), '', 'no stale entry');
});

test(
  'Orthanc killed mid-ingest: retried, then exit 1 saying a rerun resumes, nothing quarantined; after a restart the rerun indexes the rest once',
  { skip },
  async () => {
    const db = join(tmp, 'db-outage');
    const args = ['index', '--checkpoint', run, '--dicomweb', base, '--db', db, '--batch', '1'];
    const child = spawn('node', [cli, ...args, '--retries', '2', '--retry-wait', '0.2'], {
      env: { ...process.env, T3D_NUM_THREADS: '1' },
    });
    let stdout = '',
      stderr = '',
      killed = false;
    const status = await new Promise<number | null>((resolve) => {
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
        if (!killed && /index: 1\/4 /.test(stdout)) {
          killed = true; // after the first of 4 series
          orthanc!.process!.kill('SIGKILL');
        }
      });
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
      });
      child.on('close', resolve);
    });
    assert.ok(killed, stdout);
    assert.equal(status, 1, `${stdout}\n${stderr}`);
    assert.match(stderr, /trying again in 0\.2 s \(1\/2\)[\s\S]*trying again in 0\.4 s \(2\/2\)/);
    assert.match(
      stderr,
      /3 tries over [\d.]+ s\)\. Stopped: \d of 4 added in this run \(0 quarantined .*rerun the same command to resume/,
    );
    assert.ok(!existsSync(join(db, 'quarantine.jsonl')), 'an outage quarantines nothing');
    const index = await VectorIndex.open(db, checkpointIdOf(stdout));
    const before = await index.ids();
    assert.ok(before.size >= 1 && before.size < 4, `${before.size} indexed before the outage`);
    const server = orthanc!.process!;
    await new Promise((r) => (server.exitCode !== null || server.signalCode !== null ? r(0) : server.once('exit', r)));
    await orthanc!.restart();
    assert.match(
      ok(...args),
      new RegExp(
        `4 CT series on .*, ${before.size} already in table .*; ${4 - before.size} to embed[\\s\\S]*` +
          `${4 - before.size} added, 0 quarantined; .* holds 4 volumes`,
      ),
    );
    const after = await VectorIndex.open(db, checkpointIdOf(stdout));
    assert.equal((await after.ids()).size, 4);
    assert.equal(await after.count(), 4, 'no series twice');
  },
);

test(
  "--dicomweb at Orthanc's root (not its /dicom-web) is an error that names the DICOMweb root; no index folder is left",
  { skip },
  () => {
    const db = join(tmp, 'db-root');
    const r = t3d('index', '--checkpoint', run, '--dicomweb', rest, '--db', db);
    assert.equal(r.status, 1, r.stdout);
    assert.match(
      r.stderr,
      /series\?Modality=CT.*: the answer is not DICOM JSON .*For Orthanc it is http:\/\/127\.0\.0\.1:\d+\/dicom-web/,
    );
    assert.ok(!existsSync(db), 'no empty index folder');
  },
);

/** The CLI run asynchronously: a stand-in server answers from this process's event loop. */
const t3dAsync = (...args: string[]) =>
  new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
    const c = spawn('node', [cli, ...args], { env: { ...process.env, T3D_NUM_THREADS: '1' } });
    let stdout = '',
      stderr = '';
    c.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    c.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    c.on('close', (status) => resolve({ status, stdout, stderr }));
  });

test('stand-in server: silence times out, failures are retried, an outage stops without quarantine, bad content is quarantined, an empty list is an error', async () => {
  let mode: 'silent' | 'truncated' | 'empty' | 'down' = 'silent';
  let failures = 0; // the next requests to cut off before answering
  const server: Server = createServer((req, res) => {
    if (mode === 'silent') return; // never answers
    if (req.url!.includes('/series?')) {
      res.setHeader('content-type', 'application/dicom+json');
      const series = {
        '0020000D': { vr: 'UI', Value: ['1.2.3'] },
        '0020000E': { vr: 'UI', Value: ['1.2.3.4'] },
        '00080060': { vr: 'CS', Value: ['CT'] },
      };
      res.end(JSON.stringify(mode === 'empty' ? [] : [series]));
      return;
    }
    if (mode === 'down' || failures-- > 0) {
      req.socket.destroy();
      return;
    }
    res.setHeader('content-type', 'multipart/related; type="application/dicom"; boundary=xyz');
    res.end('--xyz\r\nContent-Type: application/dicom\r\n\r\nDICM-truncated');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/dicom-web`;
  const index = (db: string, ...more: string[]) =>
    t3dAsync('index', '--checkpoint', run, '--dicomweb', url, '--db', join(tmp, db), ...more);
  try {
    const t0 = Date.now();
    const silent = await index('db-silent', '--timeout', '1', '--retries', '1', '--retry-wait', '0.1');
    assert.equal(silent.status, 1);
    assert.match(
      silent.stderr,
      /DICOMweb http:\/\/127\.0\.0\.1:\d+\/dicom-web\/series\?Modality=CT.*: no answer within 1 s \(2 tries over/,
    );
    assert.ok(Date.now() - t0 < 30_000);
    assert.ok(!existsSync(join(tmp, 'db-silent')));

    mode = 'empty';
    const empty = await index('db-empty');
    assert.equal(empty.status, 1);
    assert.match(empty.stderr, /the server lists no CT series; nothing to index/);
    assert.ok(!existsSync(join(tmp, 'db-empty')), 'no empty index folder');

    mode = 'down';
    const down = await index('db-down', '--retries', '2', '--retry-wait', '0.05');
    assert.equal(down.status, 1, down.stdout);
    assert.match(down.stderr, /3 tries over .*0 of 1 added in this run .*rerun the same command to resume/);
    assert.ok(!existsSync(join(tmp, 'db-down')), 'nothing quarantined, no empty index folder');

    mode = 'truncated';
    failures = 2;
    const db = join(tmp, 'db-truncated');
    const r = await index('db-truncated', '--timeout', '5', '--retries', '2', '--retry-wait', '0.05');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr.match(/trying again/g)?.length, 2, r.stderr);
    assert.match(r.stdout, /0 added, 1 quarantined/);
    assert.match(
      readFileSync(join(db, 'quarantine.jsonl'), 'utf8'),
      /"id":"1\.2\.3\.4".*not closed by a delimiter \(truncated transfer\)/,
    );
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});
