// The house's shape (docs/ARCHITECTURE.md §1, §7): imports flow one way through the layers, source files stay small
// enough to read, source lines stay within 120 characters, and the app layer stays thin.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const LAYERS = [
  'util',
  'torch',
  'io',
  'domain',
  'text',
  'data',
  'models',
  'objectives',
  'inference',
  'train',
  'eval',
  'service',
  'app',
];
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const src = join(root, 'src');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}
const layerOf = (file: string): string => relative(src, file).split('/')[0]!;

/** The relative imports of a TypeScript file that go upward in LAYERS, as 'file → target' lines. */
function upwardImports(file: string, text: string): string[] {
  const from = layerOf(file);
  const out: string[] = [];
  for (const m of text.matchAll(/(?:from\s+|import\(\s*|new URL\(\s*)'(\.{1,2}\/[^']+)'/g)) {
    const to = layerOf(resolve(dirname(file), m[1]!));
    if (LAYERS.includes(from) && LAYERS.includes(to) && LAYERS.indexOf(to) > LAYERS.indexOf(from)) {
      out.push(`${relative(src, file)} → ${m[1]}`);
    }
  }
  return out;
}

test('every folder of src/ is a known layer, and no layer imports one above it', () => {
  const files = sources(src);
  const unknown = [...new Set(files.map(layerOf))].filter((l) => !l.endsWith('.ts') && !LAYERS.includes(l));
  assert.deepEqual(unknown, [], 'folders missing from the layer order');
  const upward = files.flatMap((f) => upwardImports(f, readFileSync(f, 'utf8')));
  assert.deepEqual(upward, []);
  // the check itself: a data file importing the trainer is caught
  assert.equal(upwardImports(join(src, 'data', 'x.ts'), "import { pretrain } from '../train/trainer.js';").length, 1);
});

test('source files stay under 400 lines and their lines within 120 characters', () => {
  const long: string[] = [];
  const wide: string[] = [];
  for (const f of sources(src)) {
    const lines = readFileSync(f, 'utf8').split('\n');
    if (lines.length > 400) long.push(`${relative(src, f)}: ${lines.length} lines`);
    lines.forEach((l, i) => {
      if ([...l].length > 120) wide.push(`${relative(src, f)}:${i + 1} (${[...l].length} characters)`);
    });
  }
  assert.deepEqual(long, []);
  assert.deepEqual(wide, []);
});

test('the app layer parses options and prints: each file ≤ 120 lines, ≤ 50 on average (bounds that stop growth)', () => {
  const files = sources(join(src, 'app')).map((f) => ({ f, n: readFileSync(f, 'utf8').split('\n').length }));
  assert.deepEqual(
    files.filter((x) => x.n > 120).map((x) => `${relative(src, x.f)}: ${x.n} lines`),
    [],
  );
  const total = files.reduce((n, x) => n + x.n, 0);
  assert.ok(total <= 50 * files.length, `src/app/ has ${total} lines in ${files.length} files`);
});
