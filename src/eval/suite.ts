// The evaluation harness: runs the chosen tasks of the registry, in its order, on one target. A task that cannot
// run here (no aligned text tower; one scale only under scale 'full') is skipped with one note per reason.
import { mkdirSync } from 'node:fs';
import { EVAL_TASKS } from './registry.js';
import { type EvalRecord, type EvalTask, type SuiteContext } from './task.js';

/** Why `task` does not run on this target and budget: a reason shared by the tasks it applies to. */
function skipReason(ctx: SuiteContext, task: EvalTask): 'text' | 'tokenizer' | 'scale' | undefined {
  if (task.needsText && !ctx.target.textAligned) return 'text';
  if (task.needsTokenizer && !ctx.target.loaded.tokenizer) return 'tokenizer';
  const scale = ctx.config.scale ?? 'global';
  if (task.oneScale && scale !== 'global') return 'scale';
  return undefined;
}

function skipNote(ctx: SuiteContext, reason: 'text' | 'tokenizer' | 'scale', tasks: EvalTask[]): string {
  const names = tasks.map((t) => t.name).join(', ');
  const reasons = tasks.map((t) => t.oneScale).join(', ');
  if (reason === 'scale') return `${names}: skipped under scale '${ctx.config.scale}' (${reasons})`;
  const imageOnly = !ctx.target.loaded.model.text;
  if (reason === 'tokenizer')
    return `${names}: skipped: this image-only model was imported without a tokenizer (its text tower is not loaded)`;
  const why = imageOnly
    ? 'this model was imported image-only (its text tower is not loaded), so it has no aligned text tower'
    : ctx.target.init === 'random'
      ? 'random weights have no aligned text tower'
      : 'this checkpoint was trained without the CLIP objective (vision-only), so it has no aligned text tower';
  return `${names}: skipped: ${why}`;
}

/** Runs the named tasks in registry order, whatever order they are given in. */
export async function runSuite(ctx: Omit<SuiteContext, 'shared'>, tasks: readonly string[]): Promise<EvalRecord[]> {
  mkdirSync(ctx.outDir, { recursive: true });
  const chosen = EVAL_TASKS.filter((t) => tasks.includes(t.name));
  const shared = new Map<string, { value: Promise<unknown>; dispose: (value: never) => void }>();
  const context: SuiteContext = {
    ...ctx,
    shared: <T>(key: string, make: () => Promise<T>, dispose: (value: T) => void) => {
      if (!shared.has(key)) shared.set(key, { value: make(), dispose });
      return shared.get(key)!.value as Promise<T>;
    },
  };
  const noted = new Set<string>();
  const out: EvalRecord[] = [];
  try {
    for (const task of chosen) {
      const reason = skipReason(context, task);
      if (!reason) {
        out.push(...(await task.run(context)));
      } else if (!noted.has(reason)) {
        noted.add(reason);
        ctx.log(
          skipNote(
            context,
            reason,
            chosen.filter((t) => skipReason(context, t) === reason),
          ),
        );
      }
    }
  } finally {
    for (const { value, dispose } of shared.values())
      await value.then(
        (v) => dispose(v as never),
        () => undefined,
      );
  }
  return out;
}
