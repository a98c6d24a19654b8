#!/usr/bin/env node
// Builds the libtorch N-API addon (build/Release/t3d_native.node), and the libdeflate gzip addon (t3d_gzip.node).
// libtorch is found in this order: $LIBTORCH (a libtorch folder or a PyTorch wheel's torch/ folder) →
// the torch of an importable python3 → the system prefix (Debian/Ubuntu libtorch-dev).
// Translation units compile in parallel against a precompiled header and are rebuilt only when changed.
import { execFileSync, spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
  copyFileSync,
  renameSync,
  rmSync,
} from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const nativeDir = join(root, 'native');
const outDir = join(root, 'build');
const objDir = join(outDir, 'obj');
const pchDir = join(outDir, 'pch');

function fail(msg) {
  console.error(`build-native: ${msg}`);
  process.exit(1);
}

function multiarchLibDir() {
  try {
    const triple = execFileSync('gcc', ['-print-multiarch'], { encoding: 'utf8' }).trim();
    if (triple) return `/usr/lib/${triple}`;
  } catch {
    /* fall through */
  }
  return '/usr/lib';
}

function fromDir(dir, source) {
  const inc = join(dir, 'include');
  const lib = join(dir, 'lib');
  if (existsSync(join(inc, 'torch', 'csrc')) && existsSync(join(lib, 'libtorch.so'))) return { inc, lib, source };
  return null;
}

function resolveLibtorch() {
  if (process.env.LIBTORCH) {
    const found = fromDir(resolve(process.env.LIBTORCH), 'LIBTORCH');
    if (!found) fail(`LIBTORCH=${process.env.LIBTORCH} has no include/torch/csrc and lib/libtorch.so`);
    return found;
  }
  try {
    const dir = execFileSync('python3', ['-c', 'import os, torch; print(os.path.dirname(torch.__file__))'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    const found = dir && fromDir(dir, 'python3 torch');
    if (found) return found;
  } catch {
    /* no python torch */
  }
  const lib = multiarchLibDir();
  if (existsSync('/usr/include/torch/csrc') && existsSync(join(lib, 'libtorch.so')))
    return { inc: '/usr/include', lib, source: 'system' };
  fail(
    'libtorch not found. Run `bash scripts/setup.sh` as root (installs Debian libtorch-dev) or set LIBTORCH=/path/to/libtorch',
  );
}

function cxx11Abi(lib) {
  for (const cfg of [
    join(lib, '..', 'share', 'cmake', 'Torch', 'TorchConfig.cmake'),
    join(lib, 'cmake', 'Torch', 'TorchConfig.cmake'),
  ]) {
    if (existsSync(cfg)) {
      const m = /_GLIBCXX_USE_CXX11_ABI=([01])/.exec(readFileSync(cfg, 'utf8'));
      if (m) return m[1];
    }
  }
  return '1';
}

/** The CUDA runtime's headers: CUDA_HOME or CUDA_PATH, /usr/local/cuda, or a PyTorch wheel's nvidia packages. */
function cudaIncludeDir(torchLib) {
  const site = join(torchLib, '..', '..', 'nvidia');
  const candidates = [process.env.CUDA_HOME, process.env.CUDA_PATH, '/usr/local/cuda']
    .filter(Boolean)
    .map((d) => join(d, 'include'));
  if (existsSync(site)) for (const pkg of readdirSync(site)) candidates.push(join(site, pkg, 'include'));
  return candidates.find((d) => existsSync(join(d, 'cuda_runtime_api.h')));
}

function nodeIncludeDir() {
  const candidates = [join(dirname(process.execPath), '..', 'include', 'node')];
  if (process.env.npm_config_nodedir) candidates.unshift(join(process.env.npm_config_nodedir, 'include', 'node'));
  const found = candidates.find((d) => existsSync(join(d, 'node_api.h')));
  if (!found) fail(`Node headers (node_api.h) not found in ${candidates.join(', ')}`);
  return found;
}

function run(cmd, args) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { stdio: 'inherit' });
    child.on('close', (code) => (code === 0 ? resolvePromise() : reject(new Error(`${cmd} exited with ${code}`))));
  });
}

const mtime = (p) => (existsSync(p) ? statSync(p).mtimeMs : 0);

async function main() {
  const torch = resolveLibtorch();
  const cuda = existsSync(join(torch.lib, 'libtorch_cuda.so'));
  // resolved as Node does: installed as a dependency, node-addon-api may sit in the consumer's node_modules
  let addonApi;
  try {
    addonApi = dirname(createRequire(import.meta.url).resolve('node-addon-api/package.json'));
  } catch {
    addonApi = '';
  }
  if (!existsSync(join(addonApi, 'napi.h'))) fail('node-addon-api missing: run `npm ci` first');
  mkdirSync(objDir, { recursive: true });
  mkdirSync(pchDir, { recursive: true });

  const flags = [
    '-std=c++17',
    '-O2',
    '-fPIC',
    '-Wall',
    '-Wextra',
    '-Wno-unused-parameter',
    // nothing reads errno after math calls; with it, a loop calling sqrt cannot vectorise (the fused AdamW)
    '-fno-math-errno',
    `-D_GLIBCXX_USE_CXX11_ABI=${cxx11Abi(torch.lib)}`,
    // /usr/include is already a system directory; naming it again breaks libstdc++'s #include_next.
    ...(torch.inc === '/usr/include' ? [] : ['-isystem', torch.inc]),
    '-isystem',
    join(torch.inc, 'torch', 'csrc', 'api', 'include'),
    '-isystem',
    nodeIncludeDir(),
    '-isystem',
    addonApi,
  ];
  if (cuda) flags.push('-DT3D_CUDA');
  // c10/cuda's headers (CUDA memory statistics) need the CUDA runtime's; a build without them still trains on CUDA
  const cudaInc = cuda ? cudaIncludeDir(torch.lib) : undefined;
  if (cudaInc) flags.push('-isystem', cudaInc, '-DT3D_CUDA_RUNTIME');

  // Precompiled header: rebuilt when common.h or the flags change.
  const flagsKey = JSON.stringify({ flags, torch });
  const pchHeader = join(pchDir, 'common.h');
  const pch = `${pchHeader}.gch`;
  const stampPath = join(pchDir, 'flags.json');
  const headerChanged = mtime(join(nativeDir, 'common.h')) > mtime(pch);
  const flagsChanged = !existsSync(stampPath) || readFileSync(stampPath, 'utf8') !== flagsKey;
  if (headerChanged || flagsChanged) {
    console.log(`build-native: precompiling common.h (libtorch from ${torch.source}: ${torch.inc})`);
    copyFileSync(join(nativeDir, 'common.h'), pchHeader);
    await run('g++', [...flags, '-x', 'c++-header', pchHeader, '-o', pch]);
    writeFileSync(stampPath, flagsKey);
  }

  const sources = readdirSync(nativeDir)
    .filter((f) => f.endsWith('.cc'))
    .sort();
  const objects = sources.map((f) => join(objDir, f.replace(/\.cc$/, '.o')));
  const stale = sources.filter(
    (f, i) => mtime(join(nativeDir, f)) > mtime(objects[i]) || mtime(pch) > mtime(objects[i]),
  );
  const jobs = Math.max(1, availableParallelism());
  const queue = [...stale];
  const worker = async () => {
    for (let f = queue.shift(); f; f = queue.shift()) {
      console.log(`build-native: compiling ${f}`);
      await run('g++', [
        ...flags,
        '-Winvalid-pch',
        '-include',
        pchHeader,
        '-c',
        join(nativeDir, f),
        '-o',
        join(objDir, f.replace(/\.cc$/, '.o')),
      ]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, queue.length) }, worker));

  const target = join(outDir, 'Release', 't3d_native.node');
  mkdirSync(dirname(target), { recursive: true });
  if (stale.length > 0 || !existsSync(target)) {
    const libs = ['-ltorch', '-ltorch_cpu', '-lc10'];
    if (cuda) libs.push('-Wl,--no-as-needed', '-ltorch_cuda', '-lc10_cuda', '-Wl,--as-needed');
    // link beside the target and rename: processes that have the old addon mapped keep a valid file
    await run('g++', [
      '-shared',
      '-o',
      `${target}.tmp`,
      ...objects,
      `-L${torch.lib}`,
      `-Wl,-rpath,${torch.lib}`,
      ...libs,
    ]);
    renameSync(`${target}.tmp`, target);
  }
  const gzip = await buildGzipAddon(addonApi);
  writeFileSync(
    join(outDir, 'native.json'),
    JSON.stringify({ libtorch: torch, cuda, libdeflate: gzip }, null, 2) + '\n',
  );
  console.log(`build-native: ${target} (${stale.length} of ${sources.length} units rebuilt)`);
}

/** The libdeflate gzip addon (native/gzip), when libdeflate's header is installed; without it gzip stays Node's zlib. */
async function buildGzipAddon(addonApi) {
  const source = join(nativeDir, 'gzip', 'gzip.cc');
  const target = join(outDir, 'Release', 't3d_gzip.node');
  try {
    execFileSync('g++', ['-E', '-x', 'c++', '-'], {
      input: '#include <libdeflate.h>\n',
      stdio: ['pipe', 'ignore', 'ignore'],
    });
  } catch {
    rmSync(target, { force: true }); // an addon built earlier would fail to load without libdeflate's library
    console.log(
      "build-native: libdeflate.h not found (Debian: libdeflate-dev): .nii.gz files inflate with Node's zlib",
    );
    return false;
  }
  if (mtime(source) > mtime(target)) {
    console.log('build-native: compiling gzip/gzip.cc (libdeflate)');
    await run('g++', [
      '-std=c++17',
      '-O2',
      '-fPIC',
      '-Wall',
      '-Wextra',
      '-shared',
      '-isystem',
      nodeIncludeDir(),
      '-isystem',
      addonApi,
      source,
      '-o',
      `${target}.tmp`,
      '-ldeflate',
    ]);
    renameSync(`${target}.tmp`, target);
  }
  return true;
}

main().catch((err) => fail(err.message));
