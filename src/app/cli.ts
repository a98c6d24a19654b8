#!/usr/bin/env node
// The `t3d` command: one subcommand per capability.
import './host-memory.js'; // first: before anything loads the engine
import { runInfo } from './info.js';
import { UsageError } from './args.js';
import { summary, usage } from './help.js';
import { runSynth } from './synth.js';
import { runPreprocess } from './preprocess.js';
import { runConvert, runImport } from './convert.js';
import { runPretrain } from './pretrain.js';
import { runEmbed } from './embed.js';
import { runVocab } from './vocab.js';
import { runEval } from './eval.js';
import { runDemo } from './demo.js';
import { runAnalyze, runInspect } from './analyze.js';
import { runPretrainText } from './pretrain-text.js';
import { runServe } from './serve.js';
import { runIndex, runSearch, runSimilar } from './search.js';

/** Each command's summary and usage are in docs/cli/<command>.txt (app/help.ts). */
const COMMANDS: Record<string, (args: string[]) => void | Promise<void>> = {
  info: runInfo,
  synth: runSynth,
  convert: runConvert,
  preprocess: runPreprocess,
  'pretrain-text': runPretrainText,
  pretrain: runPretrain,
  vocab: runVocab,
  embed: runEmbed,
  import: runImport,
  eval: runEval,
  inspect: runInspect,
  analyze: runAnalyze,
  index: runIndex,
  search: runSearch,
  similar: runSimilar,
  serve: runServe,
  demo: runDemo,
};

function help(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length));
  const rows = Object.keys(COMMANDS).map((name) => `  ${name.padEnd(width)}  ${summary(name)}`);
  return (
    't3d — 3D medical vision-language pre-training\n\nUsage: t3d <command> [options]\n\n' +
    `Commands:\n${rows.join('\n')}\n\nRun \`t3d <command> --help\` for a command's options and examples.`
  );
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
    console.log(`${summary(name)}\n\nUsage: ${usage(name)}`);
    return 0;
  }
  await cmd(rest);
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
