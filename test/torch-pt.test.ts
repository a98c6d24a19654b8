// The .pt reader against archives written by torch.save in Python (scripts/fixtures/make_torch_pt_fixtures.py):
// every accepted dtype, views of every layout, tensors sharing one storage, parameters and nested containers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../src/torch/index.js';
import { type Tensor } from '../src/torch/index.js';
import { loadTorchPt, stateDictOf } from '../src/io/torch-pt/load.js';
import { stridedView } from '../src/io/torch-pt/strided.js';
import { fixture } from './helpers.js';

interface Expected {
  dtype: string;
  shape: number[];
  values: number[];
}
interface Fixture {
  tensors: Record<string, Expected>;
  shared: string[][];
  nested: Record<string, unknown> & { state_dict: Record<string, Expected> };
}
let cached: Fixture | undefined;
const fx = (): Fixture =>
  (cached ??= JSON.parse(readFileSync(fixture('torch-pt', 'expected.json'), 'utf8')) as Fixture);
const DTYPE: Record<string, string> = {
  float32: 'float32',
  float64: 'float64',
  float16: 'float16',
  bfloat16: 'bfloat16',
  int64: 'int64',
  int32: 'int32',
  int16: 'int16',
  int8: 'int8',
  uint8: 'uint8',
  bool: 'bool',
};

function assertTensor(t: Tensor, e: Expected, what: string): void {
  assert.ok(t instanceof torch.Tensor, `${what}: not a tensor`);
  assert.equal(t.dtype, DTYPE[e.dtype], `${what}: dtype`);
  assert.deepEqual(t.shape, e.shape, `${what}: shape`);
  assert.deepEqual(t.to('float64').toArray(), e.values, `${what}: values`);
}

test('every tensor of a torch.save file comes back with its dtype, shape and exact values', () => {
  const before = torch.memory().numTensors;
  const file = loadTorchPt(fixture('torch-pt', 'tensors.pt'));
  const root = file.root as Record<string, Tensor>;
  assert.deepEqual(Object.keys(root), Object.keys(fx().tensors), 'keys in saved order');
  assert.equal(file.tensors.length, Object.keys(fx().tensors).length);
  assert.equal(torch.memory().numTensors, before + file.tensors.length, 'no stray handles (storages released)');
  torch.tidy(() => {
    for (const [k, e] of Object.entries(fx().tensors)) assertTensor(root[k]!, e, k);
  });
  torch.dispose(file.tensors);
  assert.equal(torch.memory().numTensors, before);
});

test('tensors that shared a storage in Python share its bytes here; views are views, not copies', () => {
  const file = loadTorchPt(fixture('torch-pt', 'tensors.pt'));
  const root = file.root as Record<string, Tensor>;
  const group = fx().shared.find((g) => g.includes('shared_all'))!;
  assert.deepEqual([...group].sort(), ['shared_all', 'shared_head', 'shared_tail']);
  root.shared_all!.fill_(-1);
  for (const k of group)
    assert.ok(
      root[k]!.toArray().every((v) => v === -1),
      `${k} did not see the write`,
    );
  // the column slice and the strided slice share the square's storage too (their block starts before them)
  root.square!.fill_(9);
  assert.ok(root.col_slice!.toArray().every((v) => v === 9) && root.step_slice!.toArray().every((v) => v === 9));
  assert.deepEqual(root.transposed!.strides, [1, 4], 'transposed stays a transposed view');
  torch.dispose(file.tensors);
});

test('nested dicts, an OrderedDict state dict, numbers, strings, lists, tuples and big ints', () => {
  const file = loadTorchPt(fixture('torch-pt', 'nested.pt'));
  const root = file.root as Record<string, unknown>;
  const e = fx().nested;
  for (const k of ['epoch', 'lr', 'name', 'flags', 'shape']) assert.deepEqual(root[k], e[k], k);
  assert.equal(root.big, BigInt(e.big as string));
  const sd = stateDictOf(file, 'nested.pt');
  assert.deepEqual([...sd.keys()], Object.keys(e.state_dict));
  for (const [k, t] of sd) assertTensor(t, e.state_dict[k]!, k);
  torch.dispose(file.tensors);
});

test('stateDictOf takes a bare state dict and names the file when there is none', () => {
  const file = loadTorchPt(fixture('torch-pt', 'tensors.pt'));
  assert.equal(stateDictOf(file, 'tensors.pt').size, Object.keys(fx().tensors).length);
  torch.dispose(file.tensors);
  assert.throws(() => stateDictOf({ root: { epoch: 3 }, tensors: [] }, 'x.pt'), /x\.pt: holds no state dict/);
});

test('stridedView matches the element formula for every layout, sharing bytes wherever a view exists', () => {
  const storage = torch.arange(0, 40, 1, { dtype: 'float32' });
  const cases: [number, number[], number[], boolean][] = [
    [0, [4, 5], [5, 1], true],
    [7, [2, 3], [3, 1], true],
    [0, [5, 4], [1, 5], true],
    [3, [2, 3, 4], [1, 8, 2], true],
    [1, [4, 2], [5, 1], true], // column slice: the block starts at its row
    [6, [3, 2], [10, 3], true],
    [2, [3, 4], [1, 0], true], // broadcast
    [5, [1, 3, 1], [99, 2, 7], true],
    [4, [], [], true],
    [0, [3, 3], [1, 1], false], // overlapping: gathered
    [2, [3, 3], [10, 3], true], // a step that does not divide the row
    [1, [2, 3, 2], [20, 5, 2], true],
    [1, [2, 3, 2], [17, 4, 2], false], // 17 is no multiple of 4: gathered
    [1, [3, 3], [13, 1], true],
    [30, [3, 4], [3, 1], false], // rows overlapping: gathered
    [0, [2, 2], [35, 1], false], // its enclosing block (2 rows of 35) would run past the storage: gathered
  ];
  for (const [offset, size, stride, shares] of cases) {
    const t = stridedView(storage, offset, size, stride);
    const want: number[] = [];
    const walk = (d: number, at: number): void => {
      if (d === size.length) return void want.push(at);
      for (let i = 0; i < size[d]!; i++) walk(d + 1, at + i * stride[d]!);
    };
    walk(0, offset);
    const what = `offset ${offset} size [${size}] stride [${stride}]`;
    assert.deepEqual(t.shape, size, what);
    assert.deepEqual(t.toArray(), want, what);
    const copy = storage.clone();
    const u = stridedView(copy, offset, size, stride);
    copy.fill_(-5);
    assert.equal(
      u.toArray().every((v) => v === -5),
      shares,
      `${what}: ${shares ? 'should' : 'should not'} share`,
    );
    torch.dispose([t, u, copy]);
  }
  storage.dispose();
});

test('stridedView gives the element formula values for random layouts (views or gathered copies)', () => {
  const storage = torch.arange(0, 300, 1, { dtype: 'float64' });
  let seed = 12345;
  const rand = (n: number) => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0), (seed >>> 8) % n);
  for (let trial = 0; trial < 300; trial++) {
    const size = Array.from({ length: 1 + rand(4) }, () => 1 + rand(5));
    const stride = size.map(() => (rand(6) === 0 ? 0 : 1 + rand(20)));
    const offset = rand(30);
    const want: number[] = [];
    const walk = (d: number, at: number): void => {
      if (d === size.length) return void want.push(at);
      for (let i = 0; i < size[d]!; i++) walk(d + 1, at + i * stride[d]!);
    };
    walk(0, offset);
    if (Math.max(...want) >= 300) continue;
    const t = stridedView(storage, offset, size, stride);
    assert.deepEqual(t.toArray(), want, `offset ${offset} size [${size}] stride [${stride}]`);
    t.dispose();
  }
  storage.dispose();
});

test('the ZIP64 end records torch.save writes are followed when the plain record defers to them', () => {
  // PyTorch writes ZIP64 end records into every archive; past 4 GiB the plain record holds 0xFFFF… placeholders
  const bytes = Buffer.from(readFileSync(fixture('torch-pt', 'nested.pt')));
  const eocd = bytes.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  bytes.writeUInt16LE(0xffff, eocd + 8);
  bytes.writeUInt16LE(0xffff, eocd + 10);
  bytes.writeUInt32LE(0xffffffff, eocd + 12);
  bytes.writeUInt32LE(0xffffffff, eocd + 16);
  const dir = mkdtempSync(join(tmpdir(), 't3d-pt64-'));
  try {
    writeFileSync(join(dir, 'nested.pt'), bytes);
    const file = loadTorchPt(join(dir, 'nested.pt'));
    assert.equal((file.root as Record<string, unknown>).epoch, 3);
    assert.equal(stateDictOf(file, 'nested.pt').size, Object.keys(fx().nested.state_dict).length);
    torch.dispose(file.tensors);
    // and a damaged locator is reported, not followed
    bytes.writeUInt32LE(0, eocd - 20);
    writeFileSync(join(dir, 'bad.pt'), bytes);
    assert.throws(() => loadTorchPt(join(dir, 'bad.pt')), /bad\.pt: .*ZIP64 sizes without a ZIP64 locator/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
