// Minimal option parsing shared by subcommands: --name value, --flag; unknown options are errors.
export function parseOptions(args: string[], spec: Record<string, 'string' | 'number' | 'boolean'>): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('--')) throw new Error(`unexpected argument '${arg}'`);
    const [key, inline] = arg.slice(2).split('=', 2) as [string, string | undefined];
    const kind = spec[key];
    if (!kind) throw new Error(`unknown option --${key} (allowed: ${Object.keys(spec).map((k) => `--${k}`).join(', ')})`);
    if (kind === 'boolean') { out[key] = inline === undefined ? true : inline !== 'false'; continue; }
    const value = inline ?? args[++i];
    if (value === undefined) throw new Error(`option --${key} needs a value`);
    if (kind === 'number') {
      const n = Number(value);
      if (!Number.isFinite(n)) throw new Error(`option --${key} must be a number, got '${value}'`);
      out[key] = n;
    } else out[key] = value;
  }
  return out;
}

/** Takes the repeatable `--set key.path=value` pairs out of `args`; the rest goes to parseOptions. */
export function takeSets(args: string[]): { sets: string[]; rest: string[] } {
  const sets: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] !== '--set') { rest.push(args[i]!); continue; }
    const v = args[++i];
    if (!v) throw new Error('--set needs key.path=value');
    sets.push(v);
  }
  return { sets, rest };
}
