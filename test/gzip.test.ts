// Whole-buffer gunzip (io/gzip): libdeflate's output checked against Node's zlib (an independent inflater) on the
// cases .nii.gz files bring, in this process, in a worker thread, and with T3D_GZIP=zlib in a child process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { gzipSync, gunzipSync as zlibGunzipSync } from 'node:zlib';
import { GunzipCapacityError, gunzip, gunzipEngine, gunzipSync } from '../src/io/gzip.js';

/** int16 CT-like data: smooth, noisy, compressible about 2:1 like real volumes */
function volumeBytes(n: number): Buffer {
  const v = new Int16Array(n);
  let s = 7;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    v[i] = Math.round(400 * Math.sin(i / 900) - 600 + ((s >>> 16) % 64));
  }
  return Buffer.from(v.buffer);
}
const raw = volumeBytes(600_000);
const gz = gzipSync(raw);

test('the engine: libdeflate where the build found it (required in CI), else zlib', () => {
  if (process.env.T3D_REQUIRE_LIBDEFLATE === '1')
    assert.equal(
      gunzipEngine,
      'libdeflate',
      'T3D_REQUIRE_LIBDEFLATE=1 but the gzip addon was not built (Debian: libdeflate-dev)',
    );
  assert.ok(gunzipEngine === 'libdeflate' || gunzipEngine === 'zlib');
});

test('inflates what zlib inflates: one member, concatenated members, zero padding; sync and on the thread pool', async () => {
  const cases: [string, Buffer][] = [
    ['one member', gz],
    ['two members', Buffer.concat([gz, gzipSync(raw.subarray(0, 1000))])],
    ['zero padding after the member', Buffer.concat([gz, Buffer.alloc(512)])],
    ['an empty member', gzipSync(Buffer.alloc(0))],
  ];
  for (const [what, file] of cases) {
    const expected = zlibGunzipSync(file);
    assert.ok(Buffer.from(gunzipSync(file, expected.length + 100)).equals(expected), `${what} (sync)`);
    assert.ok(Buffer.from(await gunzip(file, expected.length)).equals(expected), `${what} (async, exact capacity)`);
  }
});

test('a stream larger than the capacity, a truncated or corrupt stream, trailing garbage: clear errors', async () => {
  assert.throws(
    () => gunzipSync(gz, raw.length - 1),
    (e: unknown) => e instanceof GunzipCapacityError && /inflates past 1199999 bytes/.test((e as Error).message),
  );
  await assert.rejects(gunzip(gz, 1000), GunzipCapacityError);
  const corrupt = Buffer.from(gz);
  corrupt.fill(0xff, 100, 200);
  for (const bad of [gz.subarray(0, gz.length - 12), corrupt, Buffer.concat([gz, Buffer.from('garbage')])]) {
    assert.throws(() => gunzipSync(bad, raw.length * 2), /corrupt or truncated gzip stream/);
    await assert.rejects(gunzip(bad, raw.length * 2), /corrupt or truncated gzip stream/);
  }
});

test('works in a worker thread (preprocessing inflates there)', async () => {
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    import(workerData.module).then(({ gunzipSync, gunzipEngine }) => {
      const out = gunzipSync(workerData.gz, workerData.size);
      parentPort.postMessage({ engine: gunzipEngine, sum: out.reduce((a, b) => (a + b) % 65521, 0), length: out.length });
    });`;
  const w = new Worker(code, {
    eval: true,
    workerData: { module: new URL('../src/io/gzip.js', import.meta.url).href, gz, size: raw.length },
  });
  const got = await new Promise<{ engine: string; sum: number; length: number }>((ok, fail) => {
    w.once('message', ok);
    w.once('error', fail);
  });
  await w.terminate();
  assert.equal(got.engine, gunzipEngine);
  assert.deepEqual([got.length, got.sum], [raw.length, raw.reduce((a, b) => (a + b) % 65521, 0)]);
});

test("T3D_GZIP=zlib selects Node's zlib, with the same results and errors", () => {
  const script = `
    import { gunzipSync, gunzipEngine, GunzipCapacityError } from ${JSON.stringify(new URL('../src/io/gzip.js', import.meta.url).href)};
    import { gzipSync } from 'node:zlib';
    const raw = Buffer.from('abc'.repeat(1000));
    const ok = Buffer.from(gunzipSync(Buffer.concat([gzipSync(raw), gzipSync(raw)]), 6000)).equals(Buffer.concat([raw, raw]));
    let capacity = false; try { gunzipSync(gzipSync(raw), 10); } catch (e) { capacity = e instanceof GunzipCapacityError; }
    console.log(JSON.stringify({ engine: gunzipEngine, ok, capacity }));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, T3D_GZIP: 'zlib' },
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { engine: 'zlib', ok: true, capacity: true });
});
