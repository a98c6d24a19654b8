// Each command's summary (first line) and usage (after a blank line) live in docs/cli/<command>.txt, the
// command-line reference, readable without running anything; `t3d <command> --help` prints them with the built-in
// preset, config and task names filled in.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../util/paths.js';
import { presetNames } from '../data/presets.js';
import { configNames } from '../train/config.js';
import { TASK_NAMES } from '../eval/registry.js';

const NAMES: Record<string, () => string> = {
  presets: () => presetNames().join('|'),
  configs: () => configNames().join('|'),
  tasks: () => TASK_NAMES.join('|'),
};

const read = (command: string): string[] =>
  readFileSync(join(packageRoot(), 'docs', 'cli', `${command}.txt`), 'utf8')
    .trimEnd()
    .split('\n');

export const summary = (command: string): string => read(command)[0]!;

export function usage(command: string): string {
  const text = read(command).slice(2).join('\n');
  return text.replace(/\{(presets|configs|tasks)\}/g, (_, name: string) => NAMES[name]!());
}
