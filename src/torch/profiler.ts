// A per-op profile of the engine: while recording, every call into the addon is timed by op name. Addon calls are
// synchronous, so a call's wall time is its op's time; `backward` is the whole backward pass, which libtorch runs
// in one call. Recording swaps timing wrappers into the binding object and swaps the originals back afterwards,
// so there is no cost when it is off.
import { native, type NativeFn } from './native.js';

export interface ProfileRow {
  op: string;
  calls: number;
  ms: number;
  share: number;
}

let originals: Map<string, NativeFn> | undefined;
let totals = new Map<string, { calls: number; ms: number }>();

export const profiler = {
  start(): void {
    if (originals) throw new Error('profiler: already recording');
    originals = new Map();
    totals = new Map();
    for (const [name, fn] of Object.entries(native)) {
      if (typeof fn !== 'function') continue;
      originals.set(name, fn);
      native[name] = (...args: unknown[]) => {
        const t0 = performance.now();
        try {
          return fn(...args);
        } finally {
          const t = totals.get(name) ?? { calls: 0, ms: 0 };
          t.calls += 1;
          t.ms += performance.now() - t0;
          totals.set(name, t);
        }
      };
    }
  },

  /** Stops recording; the ops by total time, largest first, with their share of all recorded op time. */
  stop(): ProfileRow[] {
    if (!originals) throw new Error('profiler: not recording');
    for (const [name, fn] of originals) native[name] = fn;
    originals = undefined;
    const all = [...totals.values()].reduce((s, t) => s + t.ms, 0);
    return [...totals]
      .map(([op, t]) => ({ op, calls: t.calls, ms: t.ms, share: t.ms / all }))
      .sort((a, b) => b.ms - a.ms);
  },

  /** The first `top` rows as a Markdown table, times per `per` (e.g. per step). */
  table(rows: ProfileRow[], o: { top?: number; per?: number } = {}): string {
    const per = o.per ?? 1;
    const shown = rows.slice(0, o.top ?? 20);
    const rest = rows.slice(shown.length);
    const line = (op: string, calls: number, ms: number, share: number) =>
      `| ${op} | ${(calls / per).toFixed(1)} | ${(ms / per).toFixed(1)} ms | ${(100 * share).toFixed(1)} % |`;
    return [
      '| op | calls | time | share |',
      '|---|---|---|---|',
      ...shown.map((r) => line(r.op, r.calls, r.ms, r.share)),
      ...(rest.length
        ? [
            line(
              `${rest.length} other ops`,
              rest.reduce((s, r) => s + r.calls, 0),
              rest.reduce((s, r) => s + r.ms, 0),
              rest.reduce((s, r) => s + r.share, 0),
            ),
          ]
        : []),
    ].join('\n');
  },
};
