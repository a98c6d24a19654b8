// The .pt reader against hostile and damaged files: a pickle that would run code is refused by the name of what it
// calls, before anything runs (a marker file the payload would create never appears); truncated, corrupted,
// legacy, big-endian and TorchScript files fail with a reason naming the file.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../src/torch/index.js';
import { loadTorchPt } from '../src/io/torch-pt/load.js';
import { crc32Table } from '../src/io/torch-pt/zip.js';
import { crc32 } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import { Pickle, f32, torchZip } from './pickle-builder.js';
import { fixture } from './helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 't3d-pt-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const marker = join(tmp, 'pwned');
const write = (name: string, bytes: Uint8Array) => {
  const path = join(tmp, name);
  writeFileSync(path, bytes);
  return path;
};
const weights = (p: Pickle) => p.emptyDict().str('w').tensor('FloatStorage', '0', 4, 0, [2, 2], [2, 1]);
const valid = () => torchZip(weights(new Pickle()).raw(0x73).bytes(), { '0': f32([1, 2, 3, 4]) });

function assertRefused(path: string, pattern: RegExp): void {
  const before = torch.memory().numTensors;
  assert.throws(() => loadTorchPt(path), pattern);
  assert.equal(torch.memory().numTensors, before, 'no tensor leaks from a refused file');
  assert.ok(!existsSync(marker), 'the payload ran');
}

test('a well-formed hand-built archive loads (the control for every refusal below)', () => {
  const { root, tensors } = loadTorchPt(write('ok.pt', valid()));
  assert.deepEqual((root as { w: torch.Tensor }).w.toArray(), [1, 2, 3, 4]);
  torch.dispose(tensors);
});

test('GLOBAL posix.system / os.system with REDUCE is refused naming the function; the command never runs', () => {
  for (const [module, name] of [
    ['posix', 'system'],
    ['os', 'system'],
    ['subprocess', 'check_call'],
  ]) {
    const pkl = weights(new Pickle()).raw(0x73).str('evil').global(module!, name!);
    pkl.mark().str(`touch ${marker}`).tuple().reduce().raw(0x73);
    const path = write(`${name}.pt`, torchZip(pkl.bytes(), { '0': f32([1, 2, 3, 4]) }));
    assertRefused(
      path,
      new RegExp(`refusing to load .*${name}\\.pt: the pickle calls ${module}\\.${name}, which is not a tensor`),
    );
  }
});

test('builtins.eval, STACK_GLOBAL and INST are refused by name too', () => {
  const evalPkl = new Pickle().global('builtins', 'eval').mark();
  evalPkl.str(`__import__('os').system('touch ${marker}')`).tuple().reduce();
  assertRefused(write('eval.pt', torchZip(evalPkl.bytes())), /the pickle calls builtins\.eval,/);
  const stack = new Pickle().stackGlobal('os', 'system').mark().str(`touch ${marker}`).tuple().reduce();
  assertRefused(write('stack.pt', torchZip(stack.bytes())), /the pickle calls os\.system,/);
  const inst = new Pickle().mark().str(`touch ${marker}`).inst('os', 'system');
  assertRefused(write('inst.pt', torchZip(inst.bytes())), /the pickle calls os\.system,/);
});

test('an unknown torch global (a whole pickled module, a device tensor rebuilder) is refused by name', () => {
  const module = new Pickle().global('torch.nn.modules.conv', 'Conv3d').emptyTuple().reduce();
  assertRefused(write('module.pt', torchZip(module.bytes())), /the pickle calls torch\.nn\.modules\.conv\.Conv3d,/);
  const other = new Pickle().global('torch._utils', '_rebuild_device_tensor_from_numpy');
  assertRefused(write('np.pt', torchZip(other.bytes())), /calls torch\._utils\._rebuild_device_tensor_from_numpy,/);
  const obj = new Pickle().global('collections', 'OrderedDict').emptyTuple().raw(0x81); // NEWOBJ
  assertRefused(write('newobj.pt', torchZip(obj.bytes())), /opcode NEWOBJ/);
});

test('the malicious .pt written by torch.save in Python is refused (fixture) and runs nothing', () => {
  const path = fixture('torch-pt', 'malicious.pt');
  const cwdMarker = 't3d-pt-fixture-pwned';
  assert.throws(() => loadTorchPt(path), /refusing to load .*malicious\.pt: the pickle calls (posix|os)\.system,/);
  assert.ok(!existsSync(cwdMarker));
});

test('truncated, corrupted and non-zip files fail with a reason naming the file', () => {
  const good = valid();
  assertRefused(write('half.pt', good.subarray(0, good.length >> 1)), /half\.pt: .*end-of-central-directory/);
  assertRefused(write('tail.pt', good.subarray(0, good.length - 3)), /tail\.pt: .*end-of-central-directory/);
  assertRefused(write('empty.pt', new Uint8Array(0)), /empty\.pt: not a PyTorch file/);
  assertRefused(write('text.pt', Buffer.from('hello world, not a model')), /text\.pt: not a PyTorch file/);
  // one flipped bit inside the storage's bytes: the CRC catches it
  const flipped = Uint8Array.from(good);
  const at = Buffer.from(flipped).indexOf(Buffer.from(f32([1, 2, 3, 4])));
  flipped[at + 5]! ^= 0x10;
  assertRefused(write('flip.pt', flipped), /flip\.pt: .*archive\/data\/0 fails its CRC-32 check/);
  // a deflated member whose directory entry claims 2 GB: refused before anything is allocated
  const bomb = Buffer.from(torchZip(weights(new Pickle()).raw(0x73).bytes(), {}, { deflate: true }));
  bomb.writeUInt32LE(0x7fffffff, bomb.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02])) + 24);
  assertRefused(write('bomb.pt', bomb), /bomb\.pt: .*data\.pkl claims 2147483647 bytes from \d+ compressed/);
  // a real PyTorch file cut short
  const real = readFileSync(fixture('torch-pt', 'tensors.pt'));
  assertRefused(write('cut.pt', real.subarray(0, real.length - 100)), /cut\.pt: .*(end-of-central|truncated)/);
});

test('damaged pickles and archives that lie about their storages are refused', () => {
  const pkl = weights(new Pickle()).raw(0x73).bytes();
  assertRefused(write('short.pt', torchZip(pkl.subarray(0, pkl.length - 9))), /short\.pt: data\.pkl ends early/);
  assertRefused(write('nostore.pt', torchZip(pkl)), /names storage 0, which the archive lacks/);
  assertRefused(
    write('small.pt', torchZip(pkl, { '0': f32([1, 2]) })),
    /storage 0 holds 8 bytes, but float32\[4\] needs 16/,
  );
  const big = new Pickle().emptyDict().str('w').tensor('FloatStorage', '0', 4, 1, [2, 2], [2, 1]).raw(0x73).bytes();
  assertRefused(write('reach.pt', torchZip(big, { '0': f32([1, 2, 3, 4]) })), /reaching element 4 of storage 0/);
  // the second tensor's storage is missing: the first one's, already loaded, must be released
  const two = weights(new Pickle()).raw(0x73).str('v').tensor('FloatStorage', '1', 2, 0, [2], [1]).raw(0x73);
  assertRefused(write('half-loaded.pt', torchZip(two.bytes(), { '0': f32([1, 2, 3, 4]) })), /lacks/);
  const cycle = new Pickle().emptyList().put(0).get(0).append();
  assertRefused(write('cycle.pt', torchZip(cycle.bytes())), /holds a cycle/);
});

test('legacy, big-endian and TorchScript archives are refused with what to do', () => {
  assertRefused(write('legacy.pt', Buffer.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc])), /legacy \(pre-1\.6, non-zip\)/);
  const be = torchZip(weights(new Pickle()).raw(0x73).bytes(), { '0': f32([1, 2, 3, 4]) }, { byteorder: 'big' });
  assertRefused(write('be.pt', be), /be\.pt: saved on a big-endian machine/);
  const ts = torchZip(new Pickle().none().bytes(), {}, { extra: { 'constants.pkl': new Pickle().none().bytes() } });
  assertRefused(write('ts.pt', ts), /TorchScript archive/);
});

test('a dict key "__proto__" is an ordinary key, and deflated members are read', () => {
  const pkl = new Pickle().emptyDict().str('__proto__').int(7).raw(0x73).bytes();
  const { root } = loadTorchPt(write('proto.pt', torchZip(pkl, {}, { deflate: true })));
  assert.equal(Object.getPrototypeOf(root), Object.prototype);
  assert.deepEqual(Object.keys(root as object), ['__proto__']);
  assert.equal((root as Record<string, number>)['__proto__'], 7);
});

test('the plain-JS CRC-32 used before Node 20.15 agrees with zlib', () => {
  for (const n of [0, 1, 7, 1000, 65537]) {
    const b = randomBytes(n);
    assert.equal(crc32Table(b), crc32(b) >>> 0, `${n} bytes`);
  }
});
