// The per-op profiler counts and times addon calls by op name while recording, and leaves the binding as it was.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/torch/index.js';
import { native } from '../src/torch/native.js';

test('profiler: calls counted per op while recording, none after; the binding is restored', () => {
  const before = native.matmul;
  const a = torch.randn([64, 64]).keep();
  torch.profiler.start();
  assert.throws(() => torch.profiler.start(), /already recording/);
  for (let i = 0; i < 3; i++) torch.tidy(() => a.matmul(a).add(1));
  const rows = torch.profiler.stop();
  assert.equal(native.matmul, before);
  torch.tidy(() => a.matmul(a));
  const byOp = new Map(rows.map((r) => [r.op, r]));
  assert.equal(byOp.get('matmul')?.calls, 3);
  assert.equal(byOp.get('addS')?.calls ?? byOp.get('add')?.calls, 3);
  assert.ok(
    rows.every((r, i) => i === 0 || rows[i - 1]!.ms >= r.ms),
    'sorted by time',
  );
  assert.ok(Math.abs(rows.reduce((s, r) => s + r.share, 0) - 1) < 1e-9);
  assert.match(
    torch.profiler.table(rows, { top: rows.length, per: 3 }),
    /^\| matmul \| 1\.0 \| \d+\.\d ms \| \d+\.\d % \|$/m,
  );
  assert.match(torch.profiler.table(rows, { top: 1 }), new RegExp(`^\\| ${rows.length - 1} other ops \\|`, 'm'));
  assert.throws(() => torch.profiler.stop(), /not recording/);
  a.dispose();
});
