// Shared test utilities: closeness checks, fixture paths.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { type Tensor } from '../src/torch/index.js';
import { packageRoot } from '../src/util/paths.js';

export const fixture = (...parts: string[]) => join(packageRoot(), 'test', 'fixtures', ...parts);

/** |a - b| ≤ atol + rtol·|b| element-wise, with matching shapes; reports the worst element. */
export function assertClose(actual: Tensor, expected: Tensor | number[], o: { atol?: number; rtol?: number; what?: string } = {}): void {
  const atol = o.atol ?? 1e-5, rtol = o.rtol ?? 1e-5;
  const what = o.what ?? 'tensor';
  const exp = Array.isArray(expected) ? expected : expected.to('float64').toArray();
  if (!Array.isArray(expected)) assert.deepEqual(actual.shape, expected.shape, `${what}: shape`);
  const act = actual.to('float64').toArray();
  assert.equal(act.length, exp.length, `${what}: element count`);
  let worst = -1, worstErr = 0;
  for (let i = 0; i < act.length; i++) {
    const a = act[i]!, e = exp[i]!;
    if (Number.isNaN(a) && Number.isNaN(e)) continue;
    if (a === e) continue;
    const err = Math.abs(a - e) - (atol + rtol * Math.abs(e));
    if (!(err <= 0) && (worst < 0 || err > worstErr)) { worst = i; worstErr = err; }
  }
  assert.ok(worst < 0, `${what}: element ${worst} is ${act[worst]}, expected ${exp[worst]} (atol ${atol}, rtol ${rtol})`);
}
