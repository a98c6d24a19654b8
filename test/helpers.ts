// Shared test utilities: closeness checks, fixture paths.
import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import * as torch from '../src/torch/index.js';
import { type DType, type Tensor } from '../src/torch/index.js';
import { packageRoot } from '../src/util/paths.js';

export const fixture = (...parts: string[]) => join(packageRoot(), 'test', 'fixtures', ...parts);

/** |a - b| ≤ atol + rtol·|b| element-wise, with matching shapes; reports the worst element. */
export function assertClose(
  actual: Tensor,
  expected: Tensor | number[],
  o: { atol?: number; rtol?: number; what?: string } = {},
): void {
  const atol = o.atol ?? 1e-5,
    rtol = o.rtol ?? 1e-5;
  const what = o.what ?? 'tensor';
  const exp = Array.isArray(expected) ? expected : expected.to('float64').toArray();
  if (!Array.isArray(expected)) assert.deepEqual(actual.shape, expected.shape, `${what}: shape`);
  const act = actual.to('float64').toArray();
  assert.equal(act.length, exp.length, `${what}: element count`);
  let worst = -1,
    worstErr = 0;
  for (let i = 0; i < act.length; i++) {
    const a = act[i]!,
      e = exp[i]!;
    if (Number.isNaN(a) && Number.isNaN(e)) continue;
    if (a === e) continue;
    const err = Math.abs(a - e) - (atol + rtol * Math.abs(e));
    if (!(err <= 0) && (worst < 0 || err > worstErr)) {
      worst = i;
      worstErr = err;
    }
  }
  assert.ok(
    worst < 0,
    `${what}: element ${worst} is ${act[worst]}, expected ${exp[worst]} (atol ${atol}, rtol ${rtol})`,
  );
}

// The tensors our writer puts in test/fixtures/engine/ts_written.safetensors (one per dtype), shared by the
// script that writes the fixture and the test that compares Python's reading of it.
export const TS_WRITTEN_DTYPES: DType[] = [
  'bool',
  'uint8',
  'int8',
  'int16',
  'int32',
  'int64',
  'float16',
  'bfloat16',
  'float32',
  'float64',
];

/** Values chosen to be exact in every dtype they are stored in. */
export function tsWrittenValues(dtype: DType): number[] {
  const base = [0, 1, -2, 3, 5, -8];
  switch (dtype) {
    case 'bool':
      return base.map((v) => (v !== 0 ? 1 : 0));
    case 'uint8':
      return base.map((v) => Math.abs(v) * 30);
    case 'int64':
      return base.map((v) => v * 2 ** 40);
    case 'float16':
    case 'bfloat16':
      return base.map((v) => v / 4);
    default:
      return base.map((v) => v * 7);
  }
}

export function tsWrittenTensors(): Map<string, Tensor> {
  return new Map(TS_WRITTEN_DTYPES.map((dt) => [`t_${dt}`, torch.tensor(tsWrittenValues(dt), [2, 3], { dtype: dt })]));
}

/** A TCP port free on loopback now (for a server a test starts). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}
