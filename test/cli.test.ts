// The command line: options parsed by commander under the names each command declares, --help for every command,
// and exit codes that tell a wrong command line (2) from a failure while running (1).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { UsageError, parseOptions } from '../src/app/args.js';
import { packageRoot } from '../src/util/paths.js';

const cli = join(packageRoot(), 'dist', 'src', 'app', 'cli.js');
const t3d = (...args: string[]) => spawnSync('node', [cli, ...args], { encoding: 'utf8' });

test('parseOptions: kinds, repeated lists, --no- flags and hyphenated names come back as declared', () => {
  const spec = {
    out: 'string',
    steps: 'number',
    json: 'boolean',
    'no-baseline': 'boolean',
    'max-upload-mb': 'number',
    set: 'list',
  } as const;
  assert.deepEqual(
    parseOptions(
      ['--out', 'x', '--steps=5', '--json', '--no-baseline', '--max-upload-mb', '2.5', '--set', 'a=1', '--set', 'b=2'],
      spec,
    ),
    { out: 'x', steps: 5, json: true, 'no-baseline': true, 'max-upload-mb': 2.5, set: ['a=1', 'b=2'] },
  );
  assert.deepEqual(parseOptions([], spec), {});
  for (const [args, message] of [
    [['--bogus'], /unknown option '--bogus' \(allowed: --out, --steps/],
    [['--out'], /option '--out <value>' argument missing/],
    [['--steps', 'many'], /'many' is invalid.*must be a number/],
    [['--steps', ''], /must be a number/],
    [['stray'], /too many arguments/],
  ] as const)
    assert.throws(
      () => parseOptions([...args], spec),
      (e: Error) => e instanceof UsageError && message.test(e.message),
      String(args),
    );
});

test('exit codes: 0 for --help, 2 for a wrong command line, 1 for a failure while running', () => {
  const help = t3d('serve', '--help');
  assert.equal(help.status, 0);
  assert.match(help.stdout, /Usage: t3d serve --checkpoint/);
  for (const args of [
    ['nonsense'],
    ['synth', '--bogus'],
    ['synth', '--count', 'x', '--out', 'y'],
    ['analyze', 'scan.nii'],
    ['search', 'x', '--checkpoint', 'r', '--k', '0'],
  ]) {
    const r = t3d(...args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /^t3d: /);
  }
  const missing = t3d('analyze', 'no-such-scan.nii.gz', '--checkpoint', 'no-such-run');
  assert.equal(missing.status, 1, missing.stderr);
});
