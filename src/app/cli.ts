#!/usr/bin/env node
// The `t3d` command: one subcommand per capability.
import { runInfo } from './info.js';
import { UsageError } from './args.js';
import { usage } from './help.js';
import { runSynth } from './synth.js';
import { runPreprocess } from './preprocess.js';
import { runConvert } from './convert.js';
import { runPretrain } from './pretrain.js';
import { runEmbed } from './embed.js';
import { runVocab } from './vocab.js';
import { runEval } from './eval.js';
import { runDemo } from './demo.js';
import { runAnalyze } from './analyze.js';
import { runPretrainText } from './pretrain-text.js';
import { runServe } from './serve.js';
import { runIndex, runSearch, runSimilar } from './search.js';

interface Command {
  summary: string;
  run(args: string[]): void | Promise<void>;
}

const COMMANDS: Record<string, Command> = {
  info: {
    summary: 'print the engine build facts (libtorch version, BLAS, oneDNN, threads, CUDA)',
    run: runInfo,
  },
  synth: {
    summary: 'write the synthetic CT-RATE-like dataset (volumes, reports, metadata, labels, organ masks)',
    run: runSynth,
  },
  convert: {
    summary: 'convert DICOM series (a folder, searched recursively) to NIfTI, HU as int16 when exact',
    run: runConvert,
  },
  preprocess: {
    summary: 'build the preprocessed cache (HU, canonical orientation, clip, resample, crop/pad) for a preset',
    run: runPreprocess,
  },
  'pretrain-text': {
    summary: 'masked-language-model pre-training of the report encoder (warm start for pretrain)',
    run: runPretrainText,
  },
  pretrain: {
    summary: 'T3D pre-training (CLIP + text-informed multi-view alignment) from a config preset',
    run: runPretrain,
  },
  vocab: {
    summary: 'train a WordPiece vocabulary (tokenizer.json) on the reports of a dataset or cache',
    run: runVocab,
  },
  embed: {
    summary: 'embed volumes (a cache split) or reports (one per line) with a trained checkpoint',
    run: runEmbed,
  },
  eval: {
    summary:
      'downstream evaluation: zero-shot, retrieval, linear probe, fine-tuning, segmentation, report generation; study tables',
    run: runEval,
  },
  analyze: {
    summary: "one scan (NIfTI or DICOM folder) → embedding and each finding's probability at the validated threshold",
    run: runAnalyze,
  },
  index: {
    summary: "embed a cache's volumes into the LanceDB embedding index (one table per checkpoint; incremental)",
    run: runIndex,
  },
  search: {
    summary: 'text → the indexed volumes nearest to it (with label and split filters)',
    run: runSearch,
  },
  similar: {
    summary: 'a scan or an indexed id → the most similar indexed volumes',
    run: runSimilar,
  },
  serve: {
    summary: 'a local web app: cases, uploads, slice viewer, findings, text search and similar cases',
    run: runServe,
  },
  demo: {
    summary:
      'the demo: synthetic CT set → preprocessing → T3D and CLIP-only pre-training → zero-shot and retrieval evaluation → HTML report',
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
    console.log(`${cmd.summary}\n\nUsage: ${usage(name)}`);
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
    const wrongUse = err instanceof UsageError;
    console.error(`t3d: ${err.message}${wrongUse ? `\n(see \`t3d ${process.argv[2]} --help\`)` : ''}`);
    process.exitCode = wrongUse ? 2 : 1;
  },
);
