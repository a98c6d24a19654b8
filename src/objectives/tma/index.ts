// The TMA term of the T3D objective (docs/ARCHITECTURE.md §4): the formulations by name. The rule: a predictor never
// sees the report; text may shape only the targets. 'fused' breaks it and is kept as the ablation that showed why.
// Each formulation lives in its own file, with its config variant, its needs, its validation and its term; adding
// one is a new file and a line in FORMULATIONS.
import { type T3dModel } from '../../models/t3d.js';
import {
  type EmbeddingQueue,
  type TmaFormulationSpec,
  type TmaInputs,
  type TmaOption,
  type TmaTerm,
} from './shared.js';
import { fused } from './fused.js';
import { swapped } from './swapped.js';
import { teacher } from './teacher.js';
import { local } from './local.js';
import { sentence } from './sentence.js';
import { cluster } from './cluster.js';

const FORMULATIONS = { fused, swapped, teacher, local, sentence, cluster };

export type TmaFormulation = keyof typeof FORMULATIONS;
export const TMA_FORMULATIONS = Object.keys(FORMULATIONS) as readonly TmaFormulation[];

type ConfigOf<S> = S extends TmaFormulationSpec<infer C> ? C : never;
/** objective.tma: a union keyed on `formulation` (absent means 'fused'), one variant per formulation. */
export type TmaConfig = ConfigOf<(typeof FORMULATIONS)[TmaFormulation]>;

/** The formulation a config names; an error for an unknown name. */
export function tmaFormulation(cfg: Pick<TmaConfig, 'formulation'>): TmaFormulationSpec<TmaConfig> {
  const name = cfg.formulation ?? 'fused';
  if (!Object.hasOwn(FORMULATIONS, name)) {
    throw new Error(`objective.tma.formulation: unknown '${name}' (known: ${TMA_FORMULATIONS.join(', ')})`);
  }
  return FORMULATIONS[name] as TmaFormulationSpec<TmaConfig>;
}

/** Computes the TMA term (inside the caller's tidy scope) and pushes the code views' embeddings to the queue. */
export function tmaTerm(model: T3dModel, x: TmaInputs, cfg: TmaConfig, queue?: EmbeddingQueue): TmaTerm {
  return tmaFormulation(cfg).term(model, x, cfg, queue);
}

const quoteList = (names: string[]) =>
  names
    .map((n) => `'${n}'`)
    .join(', ')
    .replace(/, ([^,]*)$/, ' and $1');

/** Problems with objective.tma (as read from JSON) that depend on the formulation: its own checks, the values of the
 * variant options, and options set that the formulation would ignore. */
export function tmaProblems(tma: Readonly<Record<string, unknown>>): string[] {
  const f = tma.formulation ?? 'fused';
  const known = (TMA_FORMULATIONS as readonly unknown[]).includes(f);
  const problems: string[] = [];
  if (!known) {
    problems.push(`objective.tma.formulation must be one of ${TMA_FORMULATIONS.join(', ')} (got ${JSON.stringify(f)})`);
  } else {
    problems.push(...FORMULATIONS[f as TmaFormulation].validate(tma));
  }
  const owners = new Map<string, { option: TmaOption; by: string[] }>();
  for (const [name, spec] of Object.entries(FORMULATIONS)) {
    for (const option of spec.options) {
      const entry = owners.get(option.key) ?? { option, by: [] };
      entry.by.push(name);
      owners.set(option.key, entry);
    }
  }
  for (const [key, { option, by }] of owners) {
    const value = tma[key];
    if (value === undefined) continue;
    problems.push(...option.check(value));
    if (option.inUse(value) && !by.includes(String(f))) {
      const formulations = `formulation${by.length > 1 ? 's' : ''}`;
      const owner = `the ${quoteList(by)} ${formulations}`;
      problems.push(`objective.tma.${key} applies to ${owner} (formulation is '${String(f)}')`);
    }
  }
  return problems;
}

export { type TmaBaseConfig, type TmaInputs, type TmaNeeds, type TmaTerm, type TmaFormulationSpec } from './shared.js';
export { type FusedTmaConfig } from './fused.js';
export { type SwappedTmaConfig } from './swapped.js';
export { type TeacherTmaConfig } from './teacher.js';
export { type LocalTmaConfig } from './local.js';
export { type SentenceTmaConfig } from './sentence.js';
export { type ClusterNeeds, type ClusterTargets, type ClusterTmaConfig } from './cluster.js';
