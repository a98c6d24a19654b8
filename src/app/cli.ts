#!/usr/bin/env node
// The `t3d` command: one subcommand per capability.
import { runInfo } from './info.js';
import { UsageError } from './args.js';
import { presetNames } from '../data/presets.js';
import { configNames } from '../train/config.js';
import { runSynth } from './synth.js';
import { runPreprocess } from './preprocess.js';
import { CONVERT_SUMMARY, CONVERT_USAGE, runConvert } from './convert.js';
import { runPretrain } from './pretrain.js';
import { runEmbed } from './embed.js';
import { runVocab } from './vocab.js';
import { EVAL_SUMMARY, EVAL_USAGE, runEval } from './eval.js';
import { DEMO_USAGE, runDemo } from './demo.js';
import { ANALYZE_USAGE, runAnalyze } from './analyze.js';
import { PRETRAIN_TEXT_USAGE, runPretrainText } from './pretrain-text.js';
import { SERVE_USAGE, runServe } from './serve.js';
import { INDEX_USAGE, SEARCH_USAGE, SIMILAR_USAGE, runIndex, runSearch, runSimilar } from './search.js';

interface Command {
  summary: string;
  usage: string;
  run(args: string[]): void | Promise<void>;
}

const COMMANDS: Record<string, Command> = {
  info: {
    summary: 'print the engine build facts (libtorch version, BLAS, oneDNN, threads, CUDA)',
    usage: 't3d info [--json]\n\nExamples:\n  t3d info\n  t3d info --json > engine.json',
    run: runInfo,
  },
  synth: {
    summary: 'write the synthetic CT-RATE-like dataset (volumes, reports, metadata, labels, organ masks)',
    usage:
      `t3d synth --out <dir> [--count N] [--seed S] [--preset ${presetNames().join('|')}] [--storage raw|hu] [--dicom] [--workers N] [--valid-fraction F]\n\n` +
      '--dicom also writes each volume as a CT DICOM series under <out>/dicom/<name>/. Rerunning with the same --out resumes: finished cases are kept.\n\nExamples:\n  t3d synth --out data/synth --count 1000\n  t3d synth --out data/synth-224 --count 200 --preset t3d-224 --seed 7',
    run: runSynth,
  },
  convert: { summary: CONVERT_SUMMARY, usage: CONVERT_USAGE, run: runConvert },
  preprocess: {
    summary: 'build the preprocessed cache (HU, canonical orientation, clip, resample, crop/pad) for a preset',
    usage:
      `t3d preprocess --data <dataset-dir|manifest.csv|manifest.jsonl> --out <cache-dir> [--preset ${presetNames().join('|')}|file.json] [--readers N] [--prefetch N]\n\n` +
      'Rerunning skips volumes whose source is unchanged; unreadable inputs are listed in <cache-dir>/quarantine.jsonl.\n' +
      '--readers: worker threads that read and inflate source files ahead of resampling (default: half the cores, at least 1);\n' +
      '--prefetch: volumes read ahead (default: readers + 1). Resampling uses the cores left (T3D_NUM_THREADS overrides).\n' +
      'Several processes, on one machine or on machines sharing the folder, can build the same --out at once: each\n' +
      'volume is claimed by one of them, and the last to finish writes the complete index.\n\n' +
      'Examples:\n  t3d preprocess --data data/synth --out data/cache-96\n  t3d preprocess --data manifest.csv --preset t3d-224 --out data/cache-224',
    run: runPreprocess,
  },
  'pretrain-text': {
    summary: 'masked-language-model pre-training of the report encoder (warm start for pretrain)',
    usage: PRETRAIN_TEXT_USAGE,
    run: runPretrainText,
  },
  pretrain: {
    summary: 'T3D pre-training (CLIP + text-informed multi-view alignment) from a config preset',
    usage:
      `t3d pretrain [--config ${configNames().join('|')}|file.json] [--set key.path=value ...] [--steps N] [--out dir] [--resume] [--device cpu|cuda]\n    [--nproc-per-node N] [--nnodes N --node-rank R --master-addr HOST] [--master-port P]\n\n` +
      'Without a preprocessed cache the configured synthetic set is generated first. Checkpoints go to <out>/checkpoints,\n' +
      'metrics to <out>/metrics.jsonl. Baselines by switches: --set objective.tma.weight=0 (CLIP-only),\n' +
      '--set objective.tma.useText=false (TMA without text fusion), --set objective.clip.weight=0 --set objective.ssl.weight=1 --set objective.tma.weight=0 (vision-only SSL);\n' +
      'objective.restoration.weight=1 adds masked restoration (useText=false and the other weights 0: restoration alone).\n' +
      'objective.tma.teacherMomentum=0.99 takes TMA codes from an EMA teacher; optim.amp=bf16|fp16 turns on mixed precision (fp16: CUDA).\n' +
      '--nproc-per-node N trains data-parallel in N processes (c10d, Gloo; data.batchSize stays the global batch). On several machines,\n' +
      "run the same command on each with --nnodes, its own --node-rank and node 0's --master-addr (port 29500 unless --master-port);\n" +
      'GLOO_SOCKET_IFNAME picks the network interface. Under another launcher (Slurm, Kubernetes, torchrun), one process per rank\n' +
      'with RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT set does the same.\n\n' +
      'Examples:\n  t3d pretrain\n  t3d pretrain --config cpu-96 --set optim.steps=1000 --out runs/t3d-a\n  t3d pretrain --out runs/t3d-a --resume\n  t3d pretrain --config cpu-96 --nproc-per-node 2 --out runs/t3d-ddp\n' +
      '  t3d pretrain --config ct-rate-480 --nproc-per-node 8 --nnodes 4 --node-rank 0 --master-addr 10.0.0.1 --out /shared/runs/t3d',
    run: runPretrain,
  },
  vocab: {
    summary: 'train a WordPiece vocabulary (tokenizer.json) on the reports of a dataset or cache',
    usage:
      't3d vocab --data <dataset-dir|manifest|cache-dir> --out tokenizer.json [--size 30000] [--split train] [--min-frequency 2]\n\n' +
      'Examples:\n  t3d vocab --data data/synth --split train --size 8000 --out tokenizer.json',
    run: runVocab,
  },
  embed: {
    summary: 'embed volumes (a cache split) or reports (one per line) with a trained checkpoint',
    usage:
      't3d embed --checkpoint <checkpoint-or-run-dir> (--cache <dir> [--split valid] | --reports <file.txt>) --out <emb.safetensors> [--device cpu|cuda]\n\n' +
      'Examples:\n  t3d embed --checkpoint runs/demo --cache runs/data/cache-demo --split valid --out valid-volumes.safetensors\n  t3d embed --checkpoint runs/demo --reports reports.txt --out reports.safetensors',
    run: runEmbed,
  },
  eval: { summary: EVAL_SUMMARY, usage: EVAL_USAGE, run: runEval },
  analyze: {
    summary: "one scan (NIfTI or DICOM folder) → embedding and each finding's probability at the validated threshold",
    usage: ANALYZE_USAGE,
    run: runAnalyze,
  },
  index: {
    summary: "embed a cache's volumes into the LanceDB embedding index (one table per checkpoint; incremental)",
    usage: INDEX_USAGE,
    run: runIndex,
  },
  search: {
    summary: 'text → the indexed volumes nearest to it (with label and split filters)',
    usage: SEARCH_USAGE,
    run: runSearch,
  },
  similar: {
    summary: 'a scan or an indexed id → the most similar indexed volumes',
    usage: SIMILAR_USAGE,
    run: runSimilar,
  },
  serve: {
    summary: 'a local web app: cases, uploads, slice viewer, findings, text search and similar cases',
    usage: SERVE_USAGE,
    run: runServe,
  },
  demo: {
    summary:
      'the demo: synthetic CT set → preprocessing → T3D and CLIP-only pre-training → zero-shot and retrieval evaluation → HTML report',
    usage: DEMO_USAGE,
    run: runDemo,
  },
};

function help(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length));
  const rows = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return `t3d — 3D medical vision-language pre-training\n\nUsage: t3d <command> [options]\n\nCommands:\n${rows.join('\n')}\n\nRun \`t3d <command> --help\` for a command's options and examples.`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(help());
    return 0;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    console.error(`t3d: unknown command '${name}'\n\n${help()}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(`${cmd.summary}\n\nUsage: ${cmd.usage}`);
    return 0;
  }
  await cmd.run(rest);
  return 0;
}

// exit codes: 0 done, 1 failed while running, 2 the command line is wrong (unknown command or option, bad value)
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: Error) => {
    const usage = err instanceof UsageError;
    console.error(`t3d: ${err.message}${usage ? `\n(see \`t3d ${process.argv[2]} --help\`)` : ''}`);
    process.exitCode = usage ? 2 : 1;
  },
);
