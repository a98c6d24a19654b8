// Option parsing for every subcommand, by commander: each command declares its options (name → kind) and gets
// them back under those names. Unknown options, missing values, bad numbers and stray arguments are UsageErrors,
// which the CLI reports with exit code 2 (failures while running exit with 1).
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';

export class UsageError extends Error {}

export type OptionKind = 'string' | 'number' | 'boolean' | 'list';
export type Options = Record<string, string | number | boolean | string[]>;

/** Parses `args` (options only; a command takes its positional arguments off first). 'list' options repeat. */
export function parseOptions(args: string[], spec: Record<string, OptionKind>): Options {
  const cmd = new Command()
    .exitOverride()
    .helpOption(false)
    .allowExcessArguments(false)
    .configureOutput({ writeErr: () => {}, writeOut: () => {} });
  const number = (v: string) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError('must be a number.');
    return n;
  };
  const options = Object.entries(spec).map(([key, kind]) => {
    const o = new Option(kind === 'boolean' ? `--${key}` : `--${key} <value>`);
    if (kind === 'number') o.argParser(number);
    if (kind === 'list') o.argParser((v: string, prev: string[] | undefined) => [...(prev ?? []), v]);
    cmd.addOption(o);
    return { key, o };
  });
  try {
    cmd.parse(args, { from: 'user' });
  } catch (e) {
    if (!(e instanceof CommanderError)) throw e;
    const allowed = Object.keys(spec)
      .map((k) => `--${k}`)
      .join(', ');
    throw new UsageError(
      `${e.message.replace(/^error: /, '')}${e.code === 'commander.unknownOption' ? ` (allowed: ${allowed})` : ''}`,
    );
  }
  const values = cmd.opts();
  const out: Options = {};
  for (const { key, o } of options) {
    // commander keeps `--no-x` as x = false and camel-cases names: give each back under the name it was declared with
    const v = values[o.attributeName()] as string | number | boolean | string[] | undefined;
    if (o.negate) {
      if (v === false) out[key] = true;
    } else if (v !== undefined) out[key] = v;
  }
  return out;
}
