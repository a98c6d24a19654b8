// `t3d pretrain`: T3D pre-training from a config preset (+ overrides), on the synthetic set by default.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import * as torch from '../torch/index.js';
import { applyOverrides, loadConfig, validateConfig, type PretrainConfig } from '../train/config.js';
import { buildT3dModel, pretrainedTextDir } from '../train/factory.js';
import { pretrain } from '../train/trainer.js';
import { listCheckpoints } from '../train/checkpoint.js';
import { globalShapeOf, loadPreset } from '../data/presets.js';
import { writeSynthDataset } from '../data/synth/dataset.js';
import { readSource } from '../data/sources.js';
import { buildCache, readCacheIndex } from '../data/cache.js';
import { Loader } from '../data/loader.js';
import { WordPieceTokenizer } from '../text/wordpiece.js';
import { trainWordPiece } from '../text/wordpiece-trainer.js';
import { embedSplit, evaluateEmbedded } from '../eval/tasks/zeroshot.js';
import { Progress } from '../util/progress.js';
import { UsageError, parseOptions } from './args.js';

/** Makes sure the preprocessed cache exists: generates and preprocesses the synthetic set when configured. */
export async function ensureCache(c: PretrainConfig): Promise<void> {
  if (existsSync(join(c.data.cache, 'cache.json'))) return;
  if (!c.data.synth)
    throw new Error(`${c.data.cache}: no preprocessed cache; build one with \`t3d preprocess\` or set data.synth`);
  const preset = loadPreset(c.data.preset);
  const source = `${c.data.cache}-source`;
  const p1 = new Progress('synth', c.data.synth.count);
  const synth = await writeSynthDataset({
    out: source,
    count: c.data.synth.count,
    seed: c.data.synth.seed,
    validFraction: c.data.synth.validFraction,
    preset,
    onProgress: (d) => p1.update(d),
  });
  if (synth.failed.length)
    throw new Error(
      `${source}: generating ${synth.failed.length} of ${c.data.synth.count} synthetic cases failed (first: ${synth.failed[0]}); rerun to retry them`,
    );
  const src = readSource(source);
  const p2 = new Progress('preprocess', src.records.length);
  const r = await buildCache(src, preset, c.data.cache, { onProgress: (d) => p2.update(d) });
  if (r.quarantined.length)
    throw new Error(`preprocessing quarantined ${r.quarantined.length} synthetic volumes: ${r.quarantined[0]!.reason}`);
  // the cache holds everything training and evaluation read (volumes, masks, reports, labels)
  if (c.data.synth.keepSource === false) rmSync(source, { recursive: true, force: true });
}

/** The tokenizer: given in the config, or trained on the training reports (and saved next to the run). */
export function prepareTokenizer(c: PretrainConfig, outDir: string): WordPieceTokenizer {
  if (c.model.tokenizer) {
    return c.model.tokenizer.endsWith('.json')
      ? WordPieceTokenizer.fromTokenizerJson(c.model.tokenizer)
      : WordPieceTokenizer.fromVocabTxt(c.model.tokenizer);
  }
  // a pre-trained text encoder brings its vocabulary: a tokenizer trained here would not match its embeddings
  if ('pretrained' in c.model.text) {
    const dir = String(c.model.text.pretrained);
    for (const f of ['tokenizer.json', 'vocab.txt']) {
      if (existsSync(join(dir, f)))
        return f === 'tokenizer.json'
          ? WordPieceTokenizer.fromTokenizerJson(join(dir, f))
          : WordPieceTokenizer.fromVocabTxt(join(dir, f));
    }
    throw new Error(
      `model.text.pretrained ${dir}: no tokenizer.json or vocab.txt there; give one with model.tokenizer`,
    );
  }
  const saved = join(outDir, 'tokenizer.json');
  if (existsSync(saved)) return WordPieceTokenizer.fromTokenizerJson(saved);
  const reports = readCacheIndex(c.data.cache)
    .entries.filter((e) => e.split === c.data.trainSplit)
    .map((e) => e.report);
  const tok = trainWordPiece(reports, { vocabSize: c.model.vocabSize });
  mkdirSync(outDir, { recursive: true });
  tok.saveTokenizerJson(saved);
  return tok;
}

/**
 * `--nproc-per-node N`: N ranks of this same command on this machine, with torchrun's variables (rank 0 serves the
 * rendezvous on MASTER_ADDR:MASTER_PORT, default 127.0.0.1 and a free port) and the cores shared out; if one rank
 * fails the others are stopped. Other launchers (Slurm, Kubernetes, torchrun-style scripts) set RANK, WORLD_SIZE,
 * MASTER_ADDR and MASTER_PORT themselves and start one `t3d pretrain` per rank.
 */
interface Launch {
  nproc: number;
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  masterPort?: number;
}

const LAUNCH_FLAGS = ['--nproc-per-node', '--nnodes', '--node-rank', '--master-addr', '--master-port'];

/**
 * torchrun's job, for `t3d pretrain`: starts this node's `nproc` ranks with RANK, LOCAL_RANK, NODE_RANK,
 * WORLD_SIZE, MASTER_ADDR and MASTER_PORT set, and stops them all when one fails. One node: a free port on
 * loopback unless given. Several nodes: the same command on each with its --node-rank; node 0 hosts the rendezvous.
 */
async function launch(args: string[], l: Launch): Promise<void> {
  const rest = args.filter((a, i) => !LAUNCH_FLAGS.some((f) => a === f || args[i - 1] === f || a.startsWith(`${f}=`)));
  const port =
    l.masterPort ??
    (await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as AddressInfo).port;
        s.close(() => resolve(p));
      });
    }));
  const world = l.nnodes * l.nproc;
  const threads = process.env.T3D_NUM_THREADS ?? String(Math.max(1, Math.floor(availableParallelism() / l.nproc)));
  const children = Array.from({ length: l.nproc }, (_, local) => {
    const rank = l.nodeRank * l.nproc + local;
    return spawn(process.execPath, [fileURLToPath(new URL('./cli.js', import.meta.url)), 'pretrain', ...rest], {
      stdio: ['ignore', rank === 0 ? 'inherit' : 'ignore', 'inherit'],
      env: {
        ...process.env,
        RANK: String(rank),
        LOCAL_RANK: String(local),
        NODE_RANK: String(l.nodeRank),
        WORLD_SIZE: String(world),
        MASTER_ADDR: l.masterAddr,
        MASTER_PORT: String(port),
        T3D_NUM_THREADS: threads,
      },
    });
  });
  const codes = await Promise.all(
    children.map(
      (c) =>
        new Promise<number | null>((resolve) =>
          c.on('close', (code) => {
            if (code !== 0) children.forEach((o) => o.exitCode === null && o.kill('SIGTERM'));
            resolve(code);
          }),
        ),
    ),
  );
  const failed = codes.map((c, local) => ({ c, rank: l.nodeRank * l.nproc + local })).filter((x) => x.c !== 0);
  if (failed.length)
    throw new Error(
      `pretrain: rank ${failed[0]!.rank} of ${world} exited with ${failed[0]!.c}; the group was stopped (rerun with --resume to continue from the last checkpoint)`,
    );
}

/** The launcher's options, or undefined when this process is a rank (or the only process). */
function launchOptions(o: Record<string, unknown>): Launch | undefined {
  const int = (name: string, min: number, fallback: number) => {
    const v = (o[name] as number | undefined) ?? fallback;
    if (!(Number.isInteger(v) && v >= min))
      throw new UsageError(`pretrain: --${name} must be an integer ≥ ${min}, got ${v}`);
    return v;
  };
  const nproc = int('nproc-per-node', 1, 1);
  const nnodes = int('nnodes', 1, 1);
  const nodeRank = int('node-rank', 0, 0);
  if (nodeRank >= nnodes) throw new UsageError(`pretrain: --node-rank ${nodeRank} must be below --nnodes ${nnodes}`);
  const masterAddr = (o['master-addr'] as string | undefined) ?? process.env.MASTER_ADDR ?? '127.0.0.1';
  const port =
    o['master-port'] ??
    (process.env.MASTER_PORT !== undefined ? Number(process.env.MASTER_PORT) : undefined) ??
    (nnodes > 1 ? 29500 : undefined);
  if (port !== undefined && !(Number.isInteger(port) && (port as number) >= 1 && (port as number) <= 65535))
    throw new UsageError(`pretrain: --master-port must be 1..65535, got ${port}`);
  if (nnodes > 1 && o['master-addr'] === undefined && process.env.MASTER_ADDR === undefined)
    throw new UsageError('pretrain: --nnodes > 1 needs --master-addr, the address of node 0 that every node can reach');
  if ((nproc === 1 && nnodes === 1) || process.env.WORLD_SIZE !== undefined) return undefined;
  return { nproc, nnodes, nodeRank, masterAddr, masterPort: port as number | undefined };
}

export async function runPretrain(args: string[]): Promise<void> {
  const o = parseOptions(args, {
    config: 'string',
    out: 'string',
    resume: 'boolean',
    device: 'string',
    steps: 'number',
    set: 'list',
    'nproc-per-node': 'number',
    nnodes: 'number',
    'node-rank': 'number',
    'master-addr': 'string',
    'master-port': 'number',
  });
  const l = launchOptions(o);
  if (l) return launch(args, l);
  const group = torch.envGroupOptions();
  if (group && group.worldSize > 1)
    torch.distributed.init({ ...group, timeoutMs: 1000 * Number(process.env.T3D_DIST_TIMEOUT_S ?? 1800) });
  const sets = (o.set as string[] | undefined) ?? [];
  let cfg = applyOverrides(loadConfig((o.config as string | undefined) ?? 'cpu-96'), sets);
  if (o.steps !== undefined) cfg = applyOverrides(cfg, [`optim.steps=${o.steps}`]);
  validateConfig(cfg);
  const blas = torch.loadedBlas();
  if (blas.kind === 'reference' && (o.device ?? 'cpu') === 'cpu') {
    console.error(
      `t3d: warning: libtorch runs on the reference BLAS (${blas.path}), 13-40x slower per matrix product than OpenBLAS; install it (apt-get install libopenblas0-pthread, or bash scripts/setup.sh as root)`,
    );
  }
  // a text run folder (t3d pretrain-text) stands for its newest intact checkpoint; the config records which one
  if ('pretrained' in cfg.model.text)
    cfg = {
      ...cfg,
      model: {
        ...cfg.model,
        text: { ...cfg.model.text, pretrained: pretrainedTextDir(String(cfg.model.text.pretrained)) },
      },
    };
  // the restoration objective needs its decoder in the model, and in the saved config for loading it back
  if ((cfg.objective.restoration?.weight ?? 0) > 0) cfg = { ...cfg, model: { ...cfg.model, restoration: true } };
  const outDir = (o.out as string | undefined) ?? join('runs', 'pretrain', cfg.name);
  const device = (o.device as string | undefined) ?? 'cpu';
  if (device !== 'cpu' && !torch.cuda.isAvailable())
    throw new Error(`--device ${device}: this libtorch build has no usable CUDA (see \`t3d info\`)`);
  if (!o.resume && listCheckpoints(join(outDir, 'checkpoints')).length)
    throw new Error(`${outDir} already holds checkpoints: add --resume to continue, or choose another --out`);
  const world = torch.distributed.worldSize;
  if (cfg.data.batchSize % world !== 0)
    throw new Error(`data.batchSize ${cfg.data.batchSize} is the global batch and must divide into ${world} ranks`);
  // data-parallel: rank 0 writes the config and builds the cache and tokenizer; the others wait, then read them
  if (torch.distributed.rank === 0) {
    mkdirSync(outDir, { recursive: true });
    writeFileSync(join(outDir, 'config.json'), JSON.stringify(cfg, null, 2) + '\n');
    await ensureCache(cfg);
    prepareTokenizer(cfg, outDir);
  }
  if (world > 1) torch.distributed.barrier();
  const tokenizer = prepareTokenizer(cfg, outDir);
  const preset = loadPreset(cfg.data.preset);
  torch.manualSeed(cfg.train.seed);
  const model = buildT3dModel(cfg.model, globalShapeOf(preset), tokenizer.vocabSize);
  if (device !== 'cpu') model.to({ device });
  const labelNames = readCacheIndex(cfg.data.cache).labelNames;
  const loader = new Loader({
    cacheDir: cfg.data.cache,
    split: cfg.data.trainSplit,
    batchSize: cfg.data.batchSize / world,
    seed: cfg.train.seed,
    rank: torch.distributed.rank,
    worldSize: world,
    workers: cfg.data.workers,
    prefetch: cfg.data.prefetch,
    views: cfg.data.views,
  });
  if (torch.distributed.rank === 0)
    console.log(
      `pretrain ${cfg.name}: ${model.numParameters().toLocaleString()} parameters, ${loader.entries.length} training volumes, ${loader.length} batches/epoch, vocab ${tokenizer.vocabSize}, device ${device}${world > 1 ? `, ${world} ranks × ${cfg.data.batchSize / world} volumes per batch` : ''} → ${outDir}`,
    );
  const r = await pretrain({
    config: cfg,
    model,
    tokenizer,
    loader,
    outDir,
    device,
    resume: o.resume === true,
    onValidate: async () => {
      const e = await embedSplit(model, tokenizer, cfg.data.cache, cfg.data.valSplit, {
        device,
        maxTokens: cfg.data.maxTokens,
      });
      try {
        const z = evaluateEmbedded(model, tokenizer, e, labelNames, device);
        return {
          zeroShotAuroc: z.macroAuroc,
          labelsCounted: z.labelsCounted,
          r2vR1: z.recallReportToVolume[1] ?? NaN,
          r2vR5: z.recallReportToVolume[5] ?? NaN,
        };
      } finally {
        torch.dispose([e.volumes, e.reports]);
      }
    },
  });
  if (torch.distributed.rank === 0) console.log(`pretrain: finished at step ${r.step}; checkpoint ${r.checkpoint}`);
  if (world > 1) torch.distributed.destroy();
}
