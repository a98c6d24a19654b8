// Option parsing for every subcommand, by commander: each command declares its options' names by kind and gets
// them back under those names, typed. Unknown options, missing values, bad numbers and stray arguments are
// UsageErrors, which the CLI reports with exit code 2 (failures while running exit with 1).
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { type OperatingRule } from '../eval/metrics/operating-points.js';

export class UsageError extends Error {}

interface KindType {
  string: string;
  number: number;
  boolean: boolean;
  /** repeated: every value given, in order */
  list: string[];
}
export type OptionKind = keyof KindType;
/** A command's options: their names by kind. */
export type OptionSpec = { readonly [K in OptionKind]?: readonly string[] };
type Named<S extends OptionSpec, K extends OptionKind> = { [N in NonNullable<S[K]>[number]]?: KindType[K] };
/** The options a spec declares, each absent unless given. */
export type Options<S extends OptionSpec> = Named<S, 'string'> &
  Named<S, 'number'> &
  Named<S, 'boolean'> &
  Named<S, 'list'>;

/** Parses `args` (options only; a command takes its positional arguments off first). */
export function parseOptions<const S extends OptionSpec>(args: string[], spec: S): Options<S> {
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
  const declared = (['string', 'number', 'boolean', 'list'] as const).flatMap((kind) =>
    (spec[kind] ?? []).map((key) => [key, kind] as const),
  );
  const options = declared.map(([key, kind]) => {
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
    const allowed = declared.map(([k]) => `--${k}`).join(', ');
    throw new UsageError(
      `${e.message.replace(/^error: /, '')}${e.code === 'commander.unknownOption' ? ` (allowed: ${allowed})` : ''}`,
    );
  }
  const values = cmd.opts();
  const out: Record<string, unknown> = {};
  for (const { key, o } of options) {
    // commander keeps `--no-x` as x = false and camel-cases names: give each back under the name it was declared with
    const v = values[o.attributeName()] as string | number | boolean | string[] | undefined;
    if (o.negate) {
      if (v === false) out[key] = true;
    } else if (v !== undefined) out[key] = v;
  }
  return out as Options<S>;
}

/** `--specificity <s>`: call findings at a target specificity instead of Youden's J (the default). */
export function specificityRule(command: string, s: number | undefined): OperatingRule {
  if (s === undefined) return { kind: 'youden' };
  if (!(s > 0 && s < 1)) throw new UsageError(`${command}: --specificity must be between 0 and 1 (e.g. 0.9), got ${s}`);
  return { kind: 'specificity', target: s };
}
