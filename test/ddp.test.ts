// Data-parallel pre-training on c10d: `t3d pretrain --nproc-per-node 2` (two processes, Gloo on loopback, the
// global batch split between them, CLIP, SimCLR and TMA over the gathered global batch) ends with the parameters
// and losses of one process trained on the same global batches, and a killed group resumes.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../src/torch/index.js';
import { applyOverrides, loadConfig } from '../src/train/config.js';
import { ensureCache } from '../src/app/pretrain.js';
import { packageRoot } from '../src/util/paths.js';
import { fixture } from './helpers.js';

const skip = torch.distributed.isAvailable() ? false : 'the addon was built without Gloo (libgloo-dev)';
const tmp = mkdtempSync(join(tmpdir(), 't3d-ddp-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const cli = join(packageRoot(), 'dist', 'src', 'app', 'cli.js');
const sets = [
  `data.cache=${join(tmp, 'cache')}`,
  `data.preset=${fixture('pretrain', 'tiny-preset.json')}`,
  'data.synth={"count":16,"seed":0,"validFraction":0.25}',
  // per-volume normalisation and no dropout: BatchNorm statistics are per rank and dropout draws per process
  'model.vision.norm=instance',
  'model.text.hidden_dropout_prob=0',
  'model.text.attention_probs_dropout_prob=0',
  'objective.tma.weight=0',
  'data.views.numLocal=0',
  'data.batchSize=4',
  'optim.steps=3',
  'train.checkpointEvery=3',
  // Adam divides each gradient by its own scale: the float noise of a gradient that is ~0 (a bias before a
  // normalisation, an activation at a kink) becomes a step of up to ±lr, and over steps the two runs drift apart
  // chaotically. eps 1 makes every small gradient's step lr·gradient, so the comparison is about the gradients
  'optim.eps=1',
];
const TOLERANCE = 1e-6; // the two runs differ by ~3e-8; a gradient not summed over ranks moves parameters by ~1e-5
const args = (out: string, extra: string[]) => [
  cli,
  'pretrain',
  '--config',
  fixture('pretrain', 'tiny.json'),
  ...sets.flatMap((s) => ['--set', s]),
  '--out',
  out,
  ...extra,
];
const pretrain = (out: string, extra: string[] = []) => {
  const r = spawnSync('node', args(out, extra), { encoding: 'utf8', env: { ...process.env, T3D_NUM_THREADS: '1' } });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  return r.stdout;
};
const losses = (run: string) =>
  readFileSync(join(run, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { step?: number; loss?: number })
    .filter((m) => m.loss !== undefined)
    .map((m) => m.loss!);
const weights = (run: string) => {
  const dir = join(run, 'checkpoints', readdirSync(join(run, 'checkpoints')).sort().pop()!);
  return torch.loadSafetensors(join(dir, 'model.safetensors')).tensors;
};

for (const [objective, extra] of [
  ['CLIP only', []],
  [
    'T3D, fused TMA (report-fused views, Sinkhorn codes with a queue)',
    ['objective.tma.weight=0.2', 'data.views.numLocal=2'],
  ],
  [
    'T3D, swapped TMA + SimCLR',
    [
      'objective.tma.weight=0.2',
      'objective.tma.formulation=swapped',
      'data.views.numLocal=2',
      'objective.ssl.weight=0.5',
    ],
  ],
  [
    'T3D, local TMA (sentences over local views, InfoNCE)',
    ['objective.tma.weight=0.2', 'objective.tma.formulation=local', 'data.views.numLocal=2'],
  ],
] as const) {
  test(
    `2 ranks × Gloo reach the parameters and losses of one process on the same global batches: ${objective}`,
    { skip, timeout: 300_000 },
    async () => {
      await ensureCache(applyOverrides(loadConfig(fixture('pretrain', 'tiny.json')), sets));
      const name = objective.split(',')[0]!.replace(/\W+/g, '-') + extra.length;
      const one = join(tmp, `one-${name}`),
        two = join(tmp, `two-${name}`);
      const more = extra.flatMap((x) => ['--set', x]);
      pretrain(one, more);
      assert.match(pretrain(two, [...more, '--nproc-per-node', '2']), /2 ranks × 2 volumes per batch/);
      const [l1, l2] = [losses(one), losses(two)];
      assert.equal(l1.length, 3);
      l1.forEach((l, i) =>
        assert.ok(Math.abs(l - l2[i]!) < 1e-5, `step ${i + 1}: loss ${l2[i]} with 2 ranks vs ${l} in one process`),
      );
      const [w1, w2] = [weights(one), weights(two)];
      assert.deepEqual([...w2.keys()].sort(), [...w1.keys()].sort());
      let worst = 0;
      for (const [n, a] of w1)
        worst = Math.max(
          worst,
          torch.tidy(() => a.sub(w2.get(n)!).abs().max().item()),
        );
      assert.ok(worst < TOLERANCE, `largest parameter difference ${worst}`);
      torch.dispose([...w1.values(), ...w2.values()]);
    },
  );
}

/** A non-loopback IPv4 address of this machine, so the multi-node path (Gloo's default device) runs; else loopback. */
const hostAddress = () =>
  Object.values(networkInterfaces())
    .flat()
    .find((i) => i && i.family === 'IPv4' && !i.internal)?.address ?? '127.0.0.1';
const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, () => {
      const p = (s.address() as AddressInfo).port;
      s.close(() => resolve(p));
    });
  });

test(
  'two nodes (`--nnodes 2 --node-rank 0|1 --master-addr`) reach the parameters of one process; bad launcher flags are usage errors',
  { skip, timeout: 300_000 },
  async () => {
    await ensureCache(applyOverrides(loadConfig(fixture('pretrain', 'tiny.json')), sets));
    const one = join(tmp, 'one-nodes'),
      two = join(tmp, 'two-nodes');
    pretrain(one);
    const node = [
      '--nproc-per-node',
      '1',
      '--nnodes',
      '2',
      '--master-addr',
      hostAddress(),
      '--master-port',
      String(await freePort()),
    ];
    const run = (rank: number) =>
      new Promise<{ code: number | null; out: string }>((resolve) => {
        const p = spawn('node', args(two, [...node, '--node-rank', String(rank)]), {
          env: { ...process.env, T3D_NUM_THREADS: '1' },
        });
        let out = '';
        p.stdout.on('data', (d: Buffer) => {
          out += d.toString();
        });
        p.stderr.on('data', (d: Buffer) => {
          out += d.toString();
        });
        p.on('close', (code) => resolve({ code, out }));
      });
    const runs = await Promise.all([run(0), run(1)]);
    runs.forEach((r, rank) => assert.equal(r.code, 0, `node ${rank}: ${r.out}`));
    assert.match(runs[0]!.out, /2 ranks × 2 volumes per batch/);
    const [w1, w2] = [weights(one), weights(two)];
    let worst = 0;
    for (const [name, a] of w1)
      worst = Math.max(
        worst,
        torch.tidy(() => a.sub(w2.get(name)!).abs().max().item()),
      );
    assert.ok(worst < TOLERANCE, `largest parameter difference ${worst}`);
    torch.dispose([...w1.values(), ...w2.values()]);
    for (const [flags, message] of [
      [['--nnodes', '2', '--node-rank', '1'], /needs --master-addr/],
      [['--nnodes', '2', '--node-rank', '2', '--master-addr', '127.0.0.1'], /--node-rank 2 must be below --nnodes 2/],
      [['--nproc-per-node', '0'], /--nproc-per-node must be an integer ≥ 1/],
    ] as const) {
      const env = { ...process.env };
      delete env.MASTER_ADDR;
      const r = spawnSync('node', args(join(tmp, 'never'), [...flags]), { encoding: 'utf8', env });
      assert.equal(r.status, 2, `${flags.join(' ')}: exit ${r.status}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
  },
);

test(
  'a 2-rank run killed after a checkpoint resumes as a group and ends where one uninterrupted process does',
  { skip, timeout: 300_000 },
  async () => {
    await ensureCache(applyOverrides(loadConfig(fixture('pretrain', 'tiny.json')), sets));
    const one = join(tmp, 'one-6'),
      two = join(tmp, 'two-6');
    const six = ['--steps', '6'];
    pretrain(one, six);
    // the launcher and its ranks in their own process group, killed at once (SIGKILL: no clean-up) after step 3's checkpoint
    const group = spawn('node', args(two, [...six, '--nproc-per-node', '2']), {
      detached: true,
      stdio: 'ignore',
      env: { ...process.env, T3D_NUM_THREADS: '1' },
    });
    const manifest = join(two, 'checkpoints', 'step-00000003', 'manifest.json');
    for (let i = 0; i < 600 && !existsSync(manifest); i++) await new Promise((r) => setTimeout(r, 100));
    process.kill(-group.pid!, 'SIGKILL');
    await new Promise((r) => group.on('close', r));
    assert.ok(existsSync(manifest), 'the group wrote step 3');
    assert.match(
      pretrain(two, [...six, '--nproc-per-node', '2', '--resume']),
      /resumed from .*step-00000003 at step 3[\s\S]*finished at step 6/,
    );
    const [w1, w2] = [weights(one), weights(two)];
    let worst = 0;
    for (const [name, a] of w1)
      worst = Math.max(
        worst,
        torch.tidy(() => a.sub(w2.get(name)!).abs().max().item()),
      );
    assert.ok(worst < TOLERANCE, `largest parameter difference ${worst}`);
    torch.dispose([...w1.values(), ...w2.values()]);
  },
);
