// The embedding index: `t3d index` is incremental and keeps checkpoints apart, bad volumes are quarantined, and
// search returns exactly the brute-force cosine ranking of the embeddings `t3d embed` writes, with working filters.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../src/torch/index.js';
import { applyOverrides, loadConfig } from '../src/train/config.js';
import { ensureCache } from '../src/data/synth-cache.js';
import { readCacheIndex } from '../src/data/cache.js';
import { VectorIndex } from '../src/service/vector-index.js';
import { listScans } from '../src/service/indexer.js';
import { readQuery } from '../src/service/search.js';
import { packageRoot } from '../src/util/paths.js';
import { fixture } from './helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 't3d-search-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const cache = join(tmp, 'cache');
const db = join(tmp, 'db');
const cli = join(packageRoot(), 'dist', 'src', 'app', 'cli.js');
const t3d = (...args: string[]) => {
  const r = spawnSync('node', [cli, ...args], { encoding: 'utf8', env: { ...process.env, T3D_NUM_THREADS: '1' } });
  return { status: r.status, out: r.stdout, err: r.stderr };
};
const ok = (...args: string[]) => {
  const r = t3d(...args);
  assert.equal(r.status, 0, `t3d ${args.join(' ')}\n${r.err}`);
  return r.out;
};
const pretrainArgs = (out: string, seed: number) => [
  'pretrain',
  '--config',
  fixture('pretrain', 'tiny.json'),
  '--set',
  `data.cache=${cache}`,
  '--set',
  `data.preset=${fixture('pretrain', 'tiny-preset.json')}`,
  '--set',
  `train.seed=${seed}`,
  '--steps',
  '3',
  '--out',
  out,
];
const run = join(tmp, 'run-a');
const checkpointId = () => (JSON.parse(readFileSync(join(tmp, 'index-a.json'), 'utf8')) as { id: string }).id;

test('setup: a tiny cache and two checkpoints', async () => {
  await ensureCache(
    applyOverrides(loadConfig(fixture('pretrain', 'tiny.json')), [
      `data.cache=${cache}`,
      `data.preset=${fixture('pretrain', 'tiny-preset.json')}`,
    ]),
  );
  ok(...pretrainArgs(run, 0));
  ok(...pretrainArgs(join(tmp, 'run-b'), 1));
});

test('`t3d index` embeds every volume once; a rerun skips them all', async () => {
  const n = readCacheIndex(cache).entries.length;
  const first = ok('index', '--checkpoint', run, '--db', db, '--batch', '4');
  assert.match(first, new RegExp(`${n} added, 0 quarantined; table t3d_([0-9a-f]{16}) holds ${n} volumes`));
  const id = /table t3d_([0-9a-f]{16})/.exec(first)![1]!;
  writeFileSync(join(tmp, 'index-a.json'), JSON.stringify({ id }));
  assert.match(
    ok('index', '--checkpoint', run, '--db', db),
    new RegExp(
      `${n} already in table t3d_${id} .*; 0 to embed[\\s\\S]*0 added, 0 quarantined; table t3d_${id} holds ${n} volumes`,
    ),
  );
  assert.equal(await (await VectorIndex.open(db, id)).count(), n);
});

test('search ranks exactly as brute-force cosine over `t3d embed` output; label, split and id filters hold', async () => {
  ok('embed', '--checkpoint', run, '--cache', cache, '--split', 'valid', '--out', join(tmp, 'valid.safetensors'));
  const { tensors, metadata } = torch.loadSafetensors(join(tmp, 'valid.safetensors'));
  const names = JSON.parse(metadata.names!) as string[];
  const emb = tensors.get('embeddings')!;
  const D = emb.size(1);
  const flat = emb.toArray();
  const vec = (i: number) => flat.slice(i * D, (i + 1) * D);
  torch.dispose([...tensors.values()]);
  const index = await VectorIndex.open(db, checkpointId());
  const query = vec(0).map((v, j) => v + 0.5 * vec(1)[j]!);
  const norm = Math.hypot(...query);
  const expected = names
    .map((name, i) => ({ name, sim: vec(i).reduce((s, v, j) => s + v * query[j]!, 0) / norm }))
    .sort((a, b) => b.sim - a.sim);
  const hits = await index.search(query, { k: names.length, split: 'valid' });
  assert.deepEqual(
    hits.map((h) => h.id),
    expected.map((e) => e.name),
  );
  hits.forEach((h, i) =>
    assert.ok(Math.abs(h.similarity - expected[i]!.sim) < 1e-5, `${h.id}: ${h.similarity} vs ${expected[i]!.sim}`),
  );
  assert.ok(
    hits.every(
      (h) =>
        h.split === 'valid' &&
        h.checkpointId === checkpointId() &&
        Object.keys(h.findings).length === readCacheIndex(cache).labelNames.length,
    ),
  );
  // label filter: exactly the volumes whose labels CSV row has it
  const { entries, labelNames } = readCacheIndex(cache);
  const l = labelNames.findIndex((_, j) => entries.some((e) => e.labels[j] === 1));
  const withLabel = entries
    .filter((e) => e.labels[l] === 1)
    .map((e) => e.name)
    .sort();
  const labelled = await index.search(query, { k: 100, label: labelNames[l] });
  assert.deepEqual(labelled.map((h) => h.id).sort(), withLabel);
  const similar = await index.search(vec(0), { k: 3, excludeId: names[0] });
  assert.ok(similar.length === 3 && !similar.some((h) => h.id === names[0]));
  assert.deepEqual(await index.vectorOf('no-such-id'), undefined);
});

test('`t3d search` and `t3d similar` print the ranking (also as JSON); another checkpoint has its own table', () => {
  const hits = JSON.parse(ok('search', 'pleural effusion', '--checkpoint', run, '--db', db, '--k', '4', '--json')) as {
    id: string;
    similarity: number;
  }[];
  assert.equal(hits.length, 4);
  assert.ok(hits.every((h, i) => i === 0 || h.similarity <= hits[i - 1]!.similarity));
  const someId = readCacheIndex(cache).entries[0]!.name;
  const similar = JSON.parse(ok('similar', someId, '--checkpoint', run, '--db', db, '--k', '2', '--json')) as {
    id: string;
  }[];
  assert.equal(similar.length, 2);
  assert.ok(!similar.some((h) => h.id === someId));
  assert.match(
    ok('similar', someId, '--checkpoint', run, '--db', db, '--k', '1'),
    /^ {2}1\. [0-9.-]+ {2}\S+ {2}\[(train|valid)\]/,
  );
  const other = t3d('search', 'pleural effusion', '--checkpoint', join(tmp, 'run-b'), '--db', db);
  assert.notEqual(other.status, 0);
  assert.match(
    other.err,
    new RegExp(`nothing indexed with checkpoint [0-9a-f]{16} \\(tables exist for ${checkpointId()}\\)`),
  );
  assert.match(
    t3d('search', 'x', '--checkpoint', run, '--db', db, '--k', '0').err,
    /--k must be a positive integer, got 0/,
  );
  assert.match(
    t3d('similar', 'nowhere', '--checkpoint', run, '--db', db).err,
    /'nowhere' is neither a scan on disk nor an id in the index/,
  );
  assert.match(
    t3d('search', 'x', '--checkpoint', run, '--db', join(tmp, 'no-db')).err,
    /no such index; build one with `t3d index/,
  );
});

test('a query that denies a finding: its volumes left out, the rest ranked by what it asks, or away from the finding; "no" without a known finding is said to be ignored', () => {
  const labelNames = ['Lung nodule', 'Pleural effusion'];
  const fake: Record<string, number[]> = {
    'pleural effusion': [0, 2, 0],
    'large nodule in the right lung': [3, 0, 0],
    'no tumour': [0, 0, 1],
  };
  const embed = (texts: string[]) => texts.map((t) => fake[t] ?? assert.fail(`embedded '${t}'`));
  const both = readQuery('No pleural effusion. Large nodule in the right lung', embed, labelNames);
  assert.deepEqual(both.vector, [3, 0, 0]);
  assert.deepEqual(both.withoutLabels, ['Pleural effusion']);
  const only = readQuery('pleural effusion is not seen', embed, labelNames);
  assert.deepEqual(
    only.vector.map((v) => v + 0),
    [0, -1, 0],
  );
  assert.deepEqual(readQuery('pleural effusion', embed, labelNames), {
    vector: [0, 2, 0],
    withoutLabels: [],
    notes: [],
  });
  const unread = readQuery('no tumour', embed, labelNames);
  assert.deepEqual(unread.vector, [0, 0, 1]);
  assert.match(unread.notes.join(), /'no tumour' denies something the search cannot tell apart/);
});

test('`t3d search "no pleural effusion"` returns no effusion and reverses the effusion ranking; --label ignores case, an unknown one lists the valid labels', () => {
  const { entries, labelNames } = readCacheIndex(cache);
  const l = labelNames.indexOf('Pleural effusion');
  const effusions = new Set(entries.filter((e) => e.labels[l] === 1).map((e) => e.name));
  assert.ok(effusions.size > 0 && effusions.size < entries.length, 'the index holds volumes with and without one');
  const search = (text: string, ...more: string[]) =>
    t3d('search', text, '--checkpoint', run, '--db', db, '--k', String(entries.length), '--json', ...more);
  type H = { id: string; similarity: number; labels: string[] };
  const positive = JSON.parse(search('pleural effusion').out) as H[];
  assert.equal(positive.length, entries.length);
  const negative = search('no pleural effusion');
  assert.equal(negative.status, 0, negative.err);
  const hits = JSON.parse(negative.out) as H[];
  assert.ok(!hits.some((h) => effusions.has(h.id) || h.labels.includes('Pleural effusion')), negative.out);
  assert.deepEqual(
    hits.map((h) => h.id),
    positive
      .filter((h) => !effusions.has(h.id))
      .reverse()
      .map((h) => h.id),
  );
  for (const h of hits) {
    const p = positive.find((q) => q.id === h.id)!;
    assert.ok(Math.abs(h.similarity + p.similarity) < 1e-4, `${h.id}: ${h.similarity} vs ${p.similarity}`);
  }
  assert.match(
    negative.err,
    /read 'no pleural effusion' as without Pleural effusion: volumes labelled Pleural effusion are left out/,
  );
  const byLabel = (label: string) => (JSON.parse(search('x', '--label', label).out) as H[]).map((h) => h.id).sort();
  assert.deepEqual(byLabel('pleural EFFUSION'), [...effusions].sort());
  assert.deepEqual(byLabel(' Pleural effusion'), [...effusions].sort());
  const unknown = search('x', '--label', 'Effusion');
  assert.equal(unknown.status, 1);
  assert.match(
    unknown.err,
    /--label 'Effusion': no such finding in the index; valid labels: Medical material, .*Pleural effusion/,
  );
  const similar = t3d('similar', entries[0]!.name, '--checkpoint', run, '--db', db, '--label', 'cardio', '--json');
  assert.equal(similar.status, 1);
  assert.match(similar.err, /valid labels: .*Cardiomegaly/);
});

test('a folder with two DICOM series: the error names --series, which picks one (t3d analyze, t3d similar)', () => {
  const twoSeries = fixture('dicom', 'two-series');
  const second = '1.2.826.0.1.3680043.8.498.77.7';
  const both = t3d('analyze', twoSeries, '--checkpoint', run, '--db', db);
  assert.equal(both.status, 1);
  assert.match(both.err, /found 2 series, expected one: .*; choose one with --series <SeriesInstanceUID>/);
  const picked = JSON.parse(ok('analyze', twoSeries, '--checkpoint', run, '--series', second, '--json')) as {
    findings: unknown[];
  };
  assert.equal(picked.findings.length, readCacheIndex(cache).labelNames.length);
  assert.equal(
    (
      JSON.parse(
        ok('similar', twoSeries, '--checkpoint', run, '--db', db, '--series', second, '--k', '2', '--json'),
      ) as unknown[]
    ).length,
    2,
  );
  assert.match(
    t3d('analyze', twoSeries, '--checkpoint', run, '--series', '1.2.3').err,
    /no series 1\.2\.3; found series/,
  );
});

test('a relative --db whose name starts with "db" is a folder, not a LanceDB Cloud URI', () => {
  const r = spawnSync('node', [cli, 'index', '--checkpoint', run, '--split', 'valid', '--db', 'db-relative'], {
    cwd: tmp,
    encoding: 'utf8',
    env: { ...process.env, T3D_NUM_THREADS: '1' },
  });
  assert.equal(r.status, 0, r.stderr);
  assert.ok(existsSync(join(tmp, 'db-relative', `t3d_${checkpointId()}.lance`)));
});

test('a volume that cannot be read is quarantined; the others are indexed; nothing is half-written', async () => {
  const broken = join(tmp, 'cache-broken');
  cpSync(cache, broken, { recursive: true });
  const { entries } = readCacheIndex(broken);
  const victim = entries[2]!;
  writeFileSync(join(broken, victim.file), 'not a volume');
  const db2 = join(tmp, 'db2');
  const out = ok('index', '--checkpoint', run, '--cache', broken, '--db', db2, '--batch', '4');
  assert.match(out, new RegExp(`${entries.length - 1} added, 1 quarantined`));
  const q = readFileSync(join(db2, 'quarantine.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { id: string; error: string });
  assert.deepEqual(
    q.map((r) => r.id),
    [victim.name],
  );
  const index = await VectorIndex.open(db2, checkpointId());
  assert.equal((await index.ids()).has(victim.name), false);
  assert.equal(await index.count(), entries.length - 1);
  assert.ok(existsSync(join(db2, `t3d_${checkpointId()}.lance`)));
});

test('`t3d index --scans`: NIfTI files and DICOM series folders, embedded as `t3d analyze` does (= the cache row of the same volume); unreadable ones quarantined', async () => {
  const scans = join(tmp, 'scans');
  const nifti = (name: string) =>
    join(
      `${cache}-source`,
      'dataset',
      'valid',
      name.split('_').slice(0, 2).join('_'),
      name.split('_').slice(0, 3).join('_'),
      `${name}.nii.gz`,
    );
  mkdirSync(join(scans, 'ward', 'series-7'), { recursive: true });
  copyFileSync(nifti('valid_1_a_1'), join(scans, 'first.nii.gz'));
  copyFileSync(nifti('valid_2_a_1'), join(scans, 'ward', 'second.nii.gz'));
  writeFileSync(join(scans, 'ward', 'series-7', 'IM0001'), 'not DICOM');
  writeFileSync(join(scans, 'broken.nii.gz'), 'not NIfTI');
  writeFileSync(join(scans, 'notes.txt'), 'ignored');
  assert.deepEqual(listScans(scans), ['broken.nii.gz', 'first.nii.gz', 'ward/second.nii.gz', 'ward/series-7']);
  // the synthetic NIfTI files store raw values; HU come from the metadata intercept, as in CT-RATE v1
  const out = ok('index', '--checkpoint', run, '--scans', scans, '--db', db, '--batch', '2', '--intercept', '-1024');
  assert.match(out, /4 scans in .*; 4 to embed[\s\S]*2 added, 2 quarantined/);
  const q = readFileSync(join(db, 'quarantine.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as { id: string }).id);
  assert.deepEqual(q.slice(-2), ['broken.nii.gz', 'ward/series-7']);
  assert.match(
    ok('index', '--checkpoint', run, '--scans', scans, '--db', db, '--intercept', '-1024'),
    /2 already in table .*; 2 to embed/,
    'quarantined scans are retried, indexed ones skipped',
  );
  const index = await VectorIndex.open(db, checkpointId());
  const fromScan = (await index.vectorOf('first.nii.gz'))!,
    fromCache = (await index.vectorOf('valid_1_a_1'))!;
  const cosine = fromScan.reduce((s, v, i) => s + v * fromCache[i]!, 0);
  assert.ok(cosine > 0.999, `the scan and its cache entry embed alike (cosine ${cosine})`);
  const hits = await index.search(fromScan, { k: 2, split: 'scans' });
  assert.deepEqual(hits.map((h) => h.id).sort(), ['first.nii.gz', 'ward/second.nii.gz']);
  assert.match(
    t3d('index', '--checkpoint', run, '--scans', scans, '--cache', cache).err,
    /give one source: --cache <cache-dir>, --scans <folder> or --dicomweb <url>/,
  );
  assert.match(
    t3d('index', '--checkpoint', run, '--scans', scans, '--split', 'valid').err,
    /--split applies to a preprocessed cache/,
  );
});
