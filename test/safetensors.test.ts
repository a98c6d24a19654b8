// safetensors interchange with Python's reference implementation, and hostile-file handling.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, existsSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../src/torch/index.js';
import { nn, optim } from '../src/torch/index.js';
import { TS_WRITTEN_DTYPES, assertClose, fixture, tsWrittenValues } from './helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 't3d-st-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

test('every dtype written by Python safetensors loads with the same values', () => {
  const expected = JSON.parse(readFileSync(fixture('engine', 'dtypes.json'), 'utf8')) as Record<
    string,
    { shape: number[]; values: number[] }
  >;
  const { tensors } = torch.loadSafetensors(fixture('engine', 'dtypes.safetensors'));
  assert.deepEqual([...tensors.keys()].sort(), Object.keys(expected).sort());
  for (const [name, t] of tensors) {
    assert.equal(t.dtype, name, `${name}: dtype`);
    assert.deepEqual(t.shape, expected[name]!.shape);
    assert.deepEqual(t.to('float64').toArray(), expected[name]!.values, `${name}: values`);
  }
  torch.dispose([...tensors.values()]);
});

test('a file written here is read by Python safetensors as intended (fixture recorded by Python)', () => {
  const seen = JSON.parse(readFileSync(fixture('engine', 'ts_written.json'), 'utf8')) as Record<
    string,
    { dtype: string; shape: number[]; values: number[] }
  >;
  for (const dt of TS_WRITTEN_DTYPES) {
    const rec = seen[`t_${dt}`];
    assert.ok(rec, `Python did not see t_${dt}`);
    assert.equal(rec.dtype, dt === 'bool' ? 'bool' : dt);
    assert.deepEqual(rec.shape, [2, 3]);
    assert.deepEqual(rec.values, tsWrittenValues(dt), `t_${dt}`);
  }
});

test('round trip of every dtype, metadata, empty and scalar tensors', () => {
  const path = join(tmp, 'rt.safetensors');
  const src = new Map(
    TS_WRITTEN_DTYPES.map((dt) => [dt as string, torch.tensor(tsWrittenValues(dt), [3, 2], { dtype: dt })]),
  );
  src.set('empty', torch.zeros([0, 4]));
  src.set('scalar', torch.scalar(2.5, { dtype: 'float64' }));
  src.set('strided', torch.arange(12, undefined, 1, { dtype: 'float32' }).reshape(3, 4).T);
  torch.saveSafetensors(path, src, { note: 'hello' });
  const { tensors, metadata } = torch.loadSafetensors(path);
  assert.equal(metadata.note, 'hello');
  for (const [k, t] of src) {
    const u = tensors.get(k)!;
    assert.equal(u.dtype, t.dtype);
    assert.deepEqual(u.shape, t.shape);
    assert.deepEqual(u.to('float64').toArray(), t.to('float64').toArray(), k);
  }
  assert.deepEqual(
    readdirSync(tmp).filter((f) => f.includes('.tmp-')),
    [],
    'no temp file left behind',
  );
});

function corrupt(name: string, bytes: Buffer): string {
  const p = join(tmp, name);
  writeFileSync(p, bytes);
  return p;
}
function headerFile(header: unknown, dataBytes = 0): Buffer {
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, Buffer.alloc(dataBytes)]);
}

test('corrupt or hostile files give clear errors naming the file, never crash', () => {
  const good = readFileSync(fixture('engine', 'dtypes.safetensors'));
  const cases: [string, Buffer, RegExp][] = [
    ['short.safetensors', Buffer.from([1, 2, 3]), /shorter than the 8-byte header/],
    [
      'huge-header.safetensors',
      Buffer.concat([Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]), Buffer.alloc(16)]),
      /header length .* exceeds/,
    ],
    ['truncated.safetensors', good.subarray(0, good.length - 5), /beyond the .* data bytes/],
    [
      'not-json.safetensors',
      (() => {
        const b = Buffer.from(good);
        b.write('{{{{', 8);
        return b;
      })(),
      /header is not JSON/,
    ],
    ['array-header.safetensors', headerFile([1, 2]), /not a JSON object/],
    [
      'bad-dtype.safetensors',
      headerFile({ a: { dtype: 'C64', shape: [1], data_offsets: [0, 8] } }, 8),
      /unsupported dtype "C64"/,
    ],
    [
      'bad-shape.safetensors',
      headerFile({ a: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, 4),
      /invalid shape/,
    ],
    ['size-mismatch.safetensors', headerFile({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 8] } }, 8), /needs 16/],
    [
      'out-of-bounds.safetensors',
      headerFile({ a: { dtype: 'F32', shape: [1e6], data_offsets: [0, 4e6] } }, 16),
      /beyond the 16 data bytes/,
    ],
    [
      'overlap.safetensors',
      headerFile(
        {
          a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
          b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
        },
        12,
      ),
      /overlap/,
    ],
    ['bad-metadata.safetensors', headerFile({ __metadata__: { a: 1 } }), /__metadata__/],
  ];
  for (const [name, bytes, reason] of cases) {
    const p = corrupt(name, bytes);
    assert.throws(
      () => torch.loadSafetensors(p),
      (e: Error) => e.message.includes(p) && reason.test(e.message),
      name,
    );
  }
  assert.throws(() => torch.loadSafetensors(join(tmp, 'missing.safetensors')), /ENOENT/);
  assert.ok(existsSync(tmp));
});

test('module and optimizer state save/load restores training exactly', () => {
  torch.manualSeed(5);
  const make = () => new nn.Sequential(new nn.Linear(4, 8), new nn.GELU(), new nn.LayerNorm(8), new nn.Linear(8, 2));
  const a = make();
  const x = torch.randn([16, 4]).keep();
  const y = torch.randint(0, 2, [16]).keep();
  const trainStep = (m: nn.Sequential, opt: optim.AdamW) =>
    torch.tidy(() => {
      torch.F.crossEntropy(m.forward(x), y).backward();
      opt.step();
      opt.zeroGrad();
    });
  const optA = new optim.AdamW(a.parameters(), { lr: 0.05 });
  for (let i = 0; i < 3; i++) trainStep(a, optA);
  torch.saveModule(a, join(tmp, 'm.safetensors'));
  torch.saveOptimizer(optA, join(tmp, 'o.safetensors'));
  const b = make();
  torch.loadModule(b, join(tmp, 'm.safetensors'));
  const optB = new optim.AdamW(b.parameters(), { lr: 0.05 });
  torch.loadOptimizer(optB, join(tmp, 'o.safetensors'));
  for (let i = 0; i < 3; i++) {
    trainStep(a, optA);
    trainStep(b, optB);
  }
  const sa = a.stateDict(),
    sb = b.stateDict();
  assert.deepEqual([...sa.keys()], ['0.weight', '0.bias', '2.weight', '2.bias', '3.weight', '3.bias']);
  for (const [k, t] of sa) assertClose(sb.get(k)!, t, { atol: 0, rtol: 0, what: k });
  assert.throws(() => torch.loadModule(new nn.Linear(4, 8), join(tmp, 'm.safetensors')), /unexpected keys/);
});
