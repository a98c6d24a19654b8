// The tests' PNG decoder against PNGs filtered by an independent encoder (scripts/fixtures/make_png_fixtures.py,
// every filter type, RGB and RGBA) and against the project's own writer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { encodePng } from '../src/io/png.js';
import { fixture } from './helpers.js';
import { decodePng } from './png-decode.js';

test('decodePng: every filter type, RGB and RGBA, pixel for pixel', () => {
  const expected = JSON.parse(readFileSync(fixture('png', 'expected.json'), 'utf8')) as Record<
    string,
    { width: number; height: number; channels: number; pixels: number[] }
  >;
  for (const [name, e] of Object.entries(expected)) {
    const d = decodePng(readFileSync(fixture('png', `${name}.png`)));
    assert.deepEqual([d.width, d.height, d.channels], [e.width, e.height, e.channels], name);
    assert.deepEqual([...d.pixels], e.pixels, name);
  }
});

test("decodePng reads the project's PNG writer back; non-PNG input is refused", () => {
  const px = Uint8Array.from({ length: 4 * 3 * 3 }, (_, i) => (i * 37) % 256);
  const d = decodePng(encodePng(px, 4, 3, 3));
  assert.deepEqual([...d.pixels], [...px]);
  assert.throws(() => decodePng(new Uint8Array(16)), /not a PNG/);
});
