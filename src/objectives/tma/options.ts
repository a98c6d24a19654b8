// The reference-fidelity options of the prototype formulations (docs/ARCHITECTURE.md §4): switches that bring a
// formulation closer to the reference it follows (SwAV, DINO, MGCA). Each is off by default, so that a config without
// them trains exactly as before; the registry (index.ts) reports one set on a formulation that does not read it.
import { type TmaNeeds, type TmaOption } from './shared.js';

const nonNegativeInteger = (key: string): TmaOption => ({
  key,
  inUse: (v) => ((v as number | undefined) ?? 0) > 0,
  check: (v) =>
    Number.isInteger(v) && (v as number) >= 0
      ? []
      : [`objective.tma.${key} must be an integer ≥ 0 (got ${JSON.stringify(v)})`],
});
const flag = (key: string): TmaOption => ({
  key,
  inUse: (v) => v === true,
  check: (v) =>
    typeof v === 'boolean' ? [] : [`objective.tma.${key} must be true or false (got ${JSON.stringify(v)})`],
});
/** The options read by every formulation with prototypes and a queue (fused, swapped, teacher, sentence). */
export const prototypeOptions: readonly TmaOption[] = [
  nonNegativeInteger('freezePrototypesSteps'),
  nonNegativeInteger('queueStartStep'),
  flag('queueWhenFull'),
];
/** SwAV's averaging ('swapped'): each code view's predictors averaged first, then the code views, instead of the mean
 * over (predictor, code view) pairs, in which the code view with more predictors weighs more. */
export const averageByCodeViewOption = flag('averageByCodeView');

const choice = (key: string, values: string[]): TmaOption => ({
  key,
  inUse: (v) => v !== undefined && v !== values[0],
  check: (v) =>
    values.includes(v as string)
      ? []
      : [`objective.tma.${key} must be ${values.map((x) => `'${x}'`).join(' or ')} (got ${JSON.stringify(v)})`],
});
/** The EMA teacher's momentum schedule ('cosine': DINO's, from teacherMomentum to 1 over the run) and its BatchNorm
 * mode ('train': batch statistics, as DINO's teacher, which is never put in eval mode); defaults as before. */
export const teacherScheduleOptions: readonly TmaOption[] = [
  choice('teacherMomentumSchedule', ['constant', 'cosine']),
  choice('teacherBatchNorm', ['eval', 'train']),
];
/** The teacher's part of a formulation's needs. */
export function teacherNeeds(cfg: {
  teacherMomentum?: number;
  teacherMomentumSchedule?: string;
  teacherBatchNorm?: string;
}): Pick<TmaNeeds, 'teacherMomentum' | 'teacherSchedule' | 'teacherBatchNorm'> {
  return {
    teacherMomentum: cfg.teacherMomentum ?? 0,
    ...(cfg.teacherMomentumSchedule === 'cosine' ? { teacherSchedule: 'cosine' as const } : {}),
    ...(cfg.teacherBatchNorm === 'train' ? { teacherBatchNorm: 'train' as const } : {}),
  };
}
/** 'swapped' with text: the local views also predict the global view's codes (the vision-only multi-crop pairs kept
 * beside the text's). */
export const localToGlobalOption = flag('localToGlobal');

/** 'sentence's negative control: each volume's target is built from another volume's sentences (a derangement of the
 * batch drawn from the step), everything else unchanged. */
export const shufflePairsOption = flag('shufflePairs');

/** The config fields of teacherScheduleOptions. */
export interface TeacherScheduleConfig {
  teacherMomentumSchedule?: 'constant' | 'cosine';
  teacherBatchNorm?: 'eval' | 'train';
}
