// `t3d demo`: the whole pipeline on the built-in synthetic set (service/demo.ts), sized for about 15 minutes on 2
// CPU cores; each pre-training run is this command in a child process, its lines prefixed with its name.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { runDemoPipeline } from '../service/demo.js';
import { parseOptions } from './args.js';

/**
 * Runs `t3d <args>` as a child process, each output line prefixed with `name`; resolves to its exit code.
 * The two pre-training runs go side by side with one libtorch thread each: at the demo's model size a second
 * intra-op thread gains nothing (7.0 vs 7.2 volumes/s for T3D alone), so two runs at once take the time of one.
 */
function runPrefixed(name: string, args: string[], env: Record<string, string>): Promise<number | null> {
  const child = spawn(process.execPath, [fileURLToPath(new URL('./cli.js', import.meta.url)), ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  for (const [stream, sink] of [
    [child.stdout, process.stdout],
    [child.stderr, process.stderr],
  ] as const) {
    createInterface({ input: stream }).on('line', (line) => sink.write(`[${name}] ${line}\n`));
  }
  return new Promise((resolve) => child.on('close', (code) => resolve(code)));
}

export async function runDemo(args: string[]): Promise<void> {
  const o = parseOptions(args, {
    string: ['out', 'config'],
    number: ['steps'],
    boolean: ['no-baseline'],
    list: ['set'],
  });
  const r = await runDemoPipeline({
    out: o.out ?? join('runs', 'demo'),
    configName: o.config ?? 'demo',
    sets: o.set ?? [],
    steps: o.steps,
    baseline: !o['no-baseline'],
    run: runPrefixed,
    print: (line) => console.log(line),
  });
  console.log([...r.lines, '', ...r.meaning, '', `report: ${r.report}`].map((l) => (l ? `  ${l}` : l)).join('\n'));
}
