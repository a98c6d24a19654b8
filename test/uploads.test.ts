// Uploads to `t3d serve` that try to exhaust it: zips are unpacked off the event loop (other requests are answered
// meanwhile), within caps on members, on the bytes actually produced and on time; members with traversal or absolute
// names refuse the zip, naming the member; a refusal leaves nothing on disk; kept uploads stay within a byte bound.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { startServer, type Server, type ServeOptions } from '../src/service/server.js';
import { listScans } from '../src/service/indexer.js';
import { packageRoot } from '../src/util/paths.js';
import { fixture } from './helpers.js';
import { deflated, zerosZip, zipOf } from './zip-build.js';
import { unzipInto } from '../src/service/zip.js';

const tmp = mkdtempSync(join(tmpdir(), 't3d-uploads-test-'));
const cli = join(packageRoot(), 'dist', 'src', 'app', 'cli.js');
const ok = (...args: string[]) => {
  const r = spawnSync('node', [cli, ...args], { encoding: 'utf8', env: { ...process.env, T3D_NUM_THREADS: '1' } });
  assert.equal(r.status, 0, `t3d ${args.join(' ')}\n${r.stderr}`);
};
const synth = join(tmp, 'synth');
const run = join(tmp, 'run');
const db = join(tmp, 'db');
const MiB = 2 ** 20;
let scans: string[];

before(() => {
  const preset = fixture('pretrain', 'tiny-preset.json');
  ok('synth', '--out', synth, '--count', '8', '--valid-fraction', '0.5', '--seed', '3', '--preset', preset);
  const cache = join(tmp, 'cache');
  ok('preprocess', '--data', join(synth, 'dataset'), '--out', cache, '--preset', preset);
  const config = fixture('pretrain', 'tiny.json');
  ok(
    'pretrain',
    '--config',
    config,
    '--set',
    `data.cache=${cache}`,
    '--set',
    `data.preset=${preset}`,
    '--steps',
    '1',
    '--out',
    run,
  );
  scans = listScans(join(synth, 'dataset'))
    .filter((p) => p.endsWith('.nii.gz'))
    .map((p) => join(synth, 'dataset', p));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A server with `o`, closed after `fn`. */
async function withServer(o: Partial<ServeOptions>, fn: (s: Server) => Promise<void>): Promise<void> {
  const s = await startServer({ checkpoint: run, db, port: 0, log: () => {}, ...o });
  try {
    await fn(s);
  } finally {
    await s.close();
  }
}
type Answer = { status: number; body: { error?: string; id?: string } };
const upload = async (s: Server, body: Uint8Array<ArrayBuffer>): Promise<Answer> => {
  const r = await fetch(`${s.url}/api/upload`, { method: 'POST', body });
  return { status: r.status, body: (await r.json()) as Answer['body'] };
};
/** The upload folders the server holds (kept uploads only, once every request has been answered). */
const onDisk = (s: Server) => readdirSync(s.uploadsDir);

test('a zip bomb is unpacked off the event loop: other requests are answered meanwhile, the bomb refused', async (t) => {
  // 400 × 1 MiB of zeros in 440 KB (the previous code's cap, 4 × 128 MiB, let it inflate all of it on the event
  // loop); the cap is on what inflation produces, at 64 MiB
  const bomb = zerosZip(400);
  await withServer({ maxUploadBytes: 128 * MiB, maxUnzippedBytes: 64 * MiB }, async (s) => {
    let done = false;
    const answer = upload(s, bomb).finally(() => (done = true));
    const waits: number[] = [];
    while (!done) {
      const t = performance.now();
      assert.equal((await fetch(`${s.url}/api/info`)).status, 200);
      waits.push(performance.now() - t);
      await new Promise((r) => setTimeout(r, 10));
    }
    const r = await answer;
    t.diagnostic(`/api/info during the upload: ${waits.length} requests, longest ${Math.max(...waits).toFixed(0)} ms`);
    assert.ok(waits.length >= 3, `the upload took ${waits.length} /api/info requests: too short to tell`);
    assert.ok(Math.max(...waits) < 200, `/api/info waited ${Math.max(...waits).toFixed(0)} ms during the upload`);
    assert.equal(r.status, 413, JSON.stringify(r.body));
    assert.match(r.body.error!, /the zip unpacks to more than 64 MiB/);
    assert.deepEqual(onDisk(s), [], 'nothing of the refused upload stays on disk');
  });
});

test('uploads in progress at once are bounded: one more is refused (503) until one has finished', async () => {
  await withServer({ maxUploadBytes: 16 * MiB, maxUnzippedBytes: 24 * MiB, maxConcurrentUploads: 1 }, async (s) => {
    const first = upload(s, zerosZip(40));
    await new Promise((r) => setTimeout(r, 100));
    const second = await upload(s, readFileSync(scans[0]!));
    assert.equal(second.status, 503, JSON.stringify(second.body));
    assert.match(
      second.body.error!,
      /takes 1 upload\(s\) at once and has as many in progress; send it when one is done/,
    );
    assert.equal((await first).status, 413);
    const again = await upload(s, readFileSync(scans[0]!));
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal(onDisk(s).length, 1, 'only the analysed upload is kept');
  });
});

test('zip caps: members counted before inflating, bytes counted as produced (headers that understate them)', async () => {
  await withServer({ maxUploadBytes: 256 * 1024, maxZipMembers: 20 }, async (s) => {
    const tiny = (i: number) => deflated(`s${i}.dcm`, new Uint8Array(100));
    const many = await upload(s, zipOf(Array.from({ length: 21 }, (_, i) => tiny(i))));
    assert.equal(many.status, 413, JSON.stringify(many.body));
    assert.match(many.body.error!, /the zip has 21 members; the limit is 20/);
    // each member's headers claim 1,000 bytes (4,000 in all, far under the 1 MiB cap); they inflate to 4 × 2 MiB
    const lying = zipOf(Array.from({ length: 4 }, (_, i) => deflated(`s${i}.dcm`, new Uint8Array(2 * MiB), 1000)));
    assert.ok(lying.length < 256 * 1024);
    const r = await upload(s, lying);
    assert.equal(r.status, 413, JSON.stringify(r.body));
    assert.match(r.body.error!, /the zip unpacks to more than 1 MiB/);
    // under the cap, a header that disagrees with the data is a damaged zip
    const small = await upload(s, zipOf([deflated('a.dcm', new Uint8Array(5000), 1000)]));
    assert.equal(small.status, 400, JSON.stringify(small.body));
    assert.match(small.body.error!, /"a\.dcm" unpacks to 5000 bytes where its header says 1000/);
    assert.deepEqual(onDisk(s), []);
  });
});

test('a zip that takes longer than the time budget is stopped and removed', async () => {
  await withServer({ maxUploadBytes: 16 * MiB, maxUnzippedBytes: 4096 * MiB, unzipSeconds: 0.1 }, async (s) => {
    const t = performance.now();
    const r = await upload(s, zerosZip(1000));
    assert.equal(r.status, 413, JSON.stringify(r.body));
    assert.match(r.body.error!, /the zip takes longer than 0\.1 s to unpack/);
    assert.ok(performance.now() - t < 3000, `answered after ${(performance.now() - t).toFixed(0)} ms`);
    assert.deepEqual(onDisk(s), [], 'what the stopped worker wrote is removed');
  });
});

test('members named ".", "..", with ".." segments or absolute paths refuse the zip, naming the member', async () => {
  await withServer({ maxUploadBytes: 256 * 1024 }, async (s) => {
    const slice = deflated('series/00001.dcm', new Uint8Array(1000));
    for (const name of [
      '.',
      '..',
      '../evil.dcm',
      'series/../../evil.dcm',
      '/etc/evil.dcm',
      'C:\\evil.dcm',
      'a\\..\\b',
    ]) {
      const r = await upload(s, zipOf([slice, { ...slice, name }]));
      assert.equal(r.status, 400, `${name}: ${JSON.stringify(r.body)}`);
      assert.ok(r.body.error!.includes(`the zip member ${JSON.stringify(name)} `), r.body.error);
      assert.match(r.body.error!, /absolute path|path segment/);
    }
    assert.deepEqual(onDisk(s), []);
  });
});

test('kept uploads stay within the byte bound: the oldest is evicted first, its folder removed', async () => {
  const sizes = scans.slice(0, 3).map((f) => readFileSync(f).length);
  // room for the two newest of three uploads, not for all three
  const bound = sizes[1]! + sizes[2]! + 1;
  assert.ok(bound < sizes[0]! + sizes[1]! + sizes[2]!);
  await withServer({ maxKeptBytes: bound }, async (s) => {
    const ids: string[] = [];
    for (const f of scans.slice(0, 3)) {
      const r = await upload(s, readFileSync(f));
      assert.equal(r.status, 200, JSON.stringify(r.body));
      ids.push(r.body.id!);
    }
    const status = async (id: string) => (await fetch(`${s.url}/api/upload?id=${id}`)).status;
    assert.deepEqual(await Promise.all(ids.map(status)), [404, 200, 200]);
    assert.equal(onDisk(s).length, 2, 'the evicted upload folder is removed');
    const gone = await (await fetch(`${s.url}/api/upload?id=${ids[0]}`)).json();
    assert.match((gone as { error: string }).error, /most recent uploads are kept, within 0 MiB on disk/);
  });
});

test('`t3d serve` gives freed memory back by default (T3D_MALLOC=system); T3D_MALLOC=keep still keeps it', async () => {
  const { T3D_MALLOC: _, ...plain } = process.env;
  for (const [malloc, expected] of [
    [undefined, 'system'],
    ['keep', 'keep'],
  ] as const) {
    const env = { ...plain, T3D_NUM_THREADS: '1', ...(malloc ? { T3D_MALLOC: malloc } : {}) };
    const child = spawn('node', [cli, 'serve', '--checkpoint', run, '--db', db, '--port', '0'], { env });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        child.once('exit', (code) => reject(new Error(`t3d serve stopped (exit ${code})`)));
        createInterface({ input: child.stdout }).on('line', (l) => {
          const m = /^t3d serve: (http:\/\/\S+?)\//.exec(l);
          if (m) resolve(m[1]!);
        });
      });
      const info = (await (await fetch(`${url}/api/info`)).json()) as { hostMemory: string };
      assert.equal(info.hostMemory, expected, `T3D_MALLOC=${malloc ?? '(unset)'}`);
    } finally {
      child.kill('SIGTERM');
    }
  }
  // the other commands keep freed memory by default
  const r = spawnSync('node', [cli, 'info', '--json'], { encoding: 'utf8', env: plain });
  assert.equal(JSON.parse(r.stdout).hostMemory, 'keep');
});

test('zips as other tools write them unpack to their members: zip64 headers, stored, streamed (data descriptors)', () => {
  const expected = [
    Buffer.concat([Buffer.from(Array.from({ length: 1024 }, (_, i) => i % 256)), Buffer.alloc(5000)]),
    Buffer.from('slice two '.repeat(500)),
  ];
  for (const name of ['zip64.zip', 'stored.zip', 'streamed.zip']) {
    const out = mkdtempSync(join(tmp, 'unzip-'));
    const r = unzipInto(new Uint8Array(readFileSync(fixture('zip', name))), out, { maxBytes: MiB, maxMembers: 10 });
    assert.deepEqual(r, { files: 2, bytes: 11024 }, name);
    assert.deepEqual(readdirSync(out), ['00001.dcm', '00002.dcm'], `${name}: folders, __MACOSX/ and .DS_Store skipped`);
    expected.forEach((bytes, i) => assert.deepEqual(readFileSync(join(out, `0000${i + 1}.dcm`)), bytes, name));
  }
});
