// The package as another project gets it: `npm pack`, `npm install <tarball>` in a fresh project (its install
// script builds the native addon there), then the documented imports work from JavaScript and type-check in
// TypeScript. Needs the npm registry (or its cache) for the dependencies, as any install does.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../src/util/paths.js';

const tmp = mkdtempSync(join(tmpdir(), 't3d-package-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const root = packageRoot();
const app = join(tmp, 'app');
const sh = (cmd: string, args: string[], cwd: string) =>
  execFileSync(cmd, args, {
    cwd,
    encoding: 'utf8',
    env: { ...process.env, T3D_NUM_THREADS: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
/** Type-checks a file of the app against the installed package's declarations (strict, Node's ESM resolution). */
const typecheck = (file: string) =>
  sh(
    join(root, 'node_modules', '.bin', 'tsc'),
    [
      '--noEmit',
      '--strict',
      '--module',
      'nodenext',
      '--moduleResolution',
      'nodenext',
      '--skipLibCheck',
      '--types',
      'node',
      '--typeRoots',
      join(root, 'node_modules', '@types'),
      file,
    ],
    app,
  );

test('npm pack → npm install in another project → the public imports work and type-check', { timeout: 600_000 }, () => {
  sh('npm', ['pack', '--silent', '--pack-destination', tmp], root);
  const tarball = readdirSync(tmp).find((f) => f.endsWith('.tgz'))!;
  const files = sh('tar', ['tzf', join(tmp, tarball)], tmp).split('\n');
  assert.ok(
    files.includes('package/dist/src/index.js') &&
      files.includes('package/dist/src/index.d.ts') &&
      files.includes('package/native/common.h'),
  );
  assert.ok(
    !files.some(
      (f) => f.startsWith('package/dist/test/') || f.startsWith('package/test/') || f.startsWith('package/results/'),
    ),
    'no tests or results in the package',
  );
  mkdirSync(app);
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({ name: 'app', version: '1.0.0', type: 'module', private: true }),
  );
  sh('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', join(tmp, tarball)], app);
  assert.ok(
    existsSync(join(app, 'node_modules', 't3d', 'build', 'Release', 't3d_native.node')),
    'the install script built the addon',
  );

  writeFileSync(
    join(app, 'use.mjs'),
    `import { torch, ResNet3d, auroc, loadPreset, WordPieceTokenizer, VectorIndex } from 't3d';
import { tensor } from 't3d/torch';
const net = new ResNet3d({ depth: 10, widenFactor: 0.25, conv1Kernel: 3, conv1Stride: 2 });
const pooled = torch.tidy(() => net.encode(torch.randn([2, 1, 16, 16, 16])).pooled.shape);
console.log(JSON.stringify({ pooled, auroc: auroc([0.1, 0.9, 0.4], [0, 1, 1]), preset: loadPreset('cpu-96').shape, sum: tensor([1, 2]).sum().item(),
  classes: [typeof WordPieceTokenizer, typeof VectorIndex] }));
`,
  );
  assert.deepEqual(JSON.parse(sh('node', ['use.mjs'], app)), {
    pooled: [2, 128],
    auroc: 1,
    preset: [64, 96, 96],
    sum: 3,
    classes: ['function', 'function'],
  });
  assert.throws(
    () => sh('node', ['--input-type=module', '-e', "import 't3d/dist/src/app/cli.js'"], app),
    /ERR_PACKAGE_PATH_NOT_EXPORTED/,
    'internals are not exported',
  );

  writeFileSync(
    join(app, 'types.ts'),
    `import { torch, macroAuroc, type PretrainConfig } from 't3d';
const x: torch.Tensor = torch.zeros([2, 3]);
const m: number = macroAuroc([[0.1], [0.9]], [[0], [1]]).value;
const lr: PretrainConfig['optim']['lr'] = 1e-3;
console.log(x.shape, m, lr);
`,
  );
  typecheck('types.ts');
  assert.throws(
    () => {
      writeFileSync(
        join(app, 'bad.ts'),
        "import { torch } from 't3d';\nconst n: string = torch.zeros([1]);\nconsole.log(n);\n",
      );
      typecheck('bad.ts');
    },
    (e: Error & { stdout?: string }) => /Type 'Tensor' is not assignable to type 'string'/.test(e.stdout ?? ''),
    'the declarations carry real types',
  );
});
