// The arms of the TMA study (RESULTS.md, "The TMA study that can win: the plan"): each a pre-training config and the
// `--set` overrides that make it, so that every arm gets the same data, views, steps, seeds and evaluation. The study
// runner (`npm run experiment:evaluate` with ARMS) trains them, and the arm table (arm-table.ts) reads them back.
import { CT_RATE_LABELS } from '../../domain/ct-rate.js';
import { LOCAL_FINDING_LABELS } from '../../domain/local-findings.js';
import { type LabelSubset } from './headlines.js';

export interface StudyArm {
  /** the run folders' prefix (<arm>-s<seed>) */
  name: string;
  /** the plan's name for it */
  title: string;
  config: string;
  sets: string[];
}

// The crops pass through the encoder in training mode (updating BatchNorm) with a nil gradient, so that an arm
// without a local term pays for the crops as the crops control does: the control's own way (a TMA term at 1e-9)
// where TMA is off, SimCLR at 1e-9 where the arm's own TMA term does not read the crops.
const cropsForward = ['objective.tma.weight=1e-9'];
const cropsBySsl = ['objective.ssl.weight=1e-9'];
const noTma = ['objective.tma.weight=0'];
const sentence = (pool: string) => ['objective.tma.formulation="sentence"', `objective.tma.pool="${pool}"`];
const labels = 'objective.labels={"weight":1}';

/** Arms 1–9, in the plan's order; arm 10 is `combinedArm` of the best of P1 and P2 on the validation cache. */
export const STUDY_ARMS: readonly StudyArm[] = [
  { name: 'clip-only', title: 'CLIP-only', config: 'cpu-mr-v2', sets: [...noTma, 'data.views.numLocal=0'] },
  { name: 'clip-only-crops', title: 'crops control', config: 'cpu-mr-v2', sets: cropsForward },
  { name: 'clip-crops', title: 'crop-CLIP', config: 'cpu-mr-v2', sets: [...noTma, 'objective.clip.localWeight=1'] },
  {
    name: 'sentence-clip',
    title: 'sentence-level CLIP',
    config: 'cpu-mr-v2',
    sets: [...cropsForward, 'objective.sentenceClip={"weight":1}'],
  },
  { name: 'clip-labels', title: 'CLIP + extracted labels', config: 'cpu-mr-v2', sets: [...cropsForward, labels] },
  { name: 'p1-global', title: 'P1 global-only', config: 'cpu-mr-v2', sets: [...sentence('global'), ...cropsBySsl] },
  { name: 'p1-pooled', title: 'P1 pooled over views', config: 'cpu-mr-v2', sets: sentence('logsumexp') },
  // P1 pooled and one flag (configs/pretrain/cpu-mr-v2-p1-shuffled.json is the same arm as a preset)
  {
    name: 'p1-shuffled',
    title: 'P1 pooled, pairing shuffled (negative control)',
    config: 'cpu-mr-v2',
    sets: [...sentence('logsumexp'), 'objective.tma.shufflePairs=true'],
  },
  // cpu-mr-p2's objective on cpu-mr-v2's data and views
  {
    name: 'p2',
    title: 'P2 (report clusters, heads 8/16/32)',
    config: 'cpu-mr-v2',
    sets: [
      'objective.tma.formulation="cluster"',
      'objective.tma.queue=0',
      'objective.tma.clusterHeads=[8,16,32]',
      'objective.tma.kmeansIterations=10',
      'objective.tma.kmeansRestarts=3',
    ],
  },
];

/**
 * The arms whose best on the validation cache is combined with extracted labels (arm 10): the TMA variants, not the
 * negative control (a shuffled pairing that won would say TMA's text adds nothing, not give a method to build on).
 */
export const TMA_ARMS = ['p1-global', 'p1-pooled', 'p2'] as const;
/** The baselines every arm is compared with (the decision rule). */
export const BASELINES = ['clip-only', 'clip-only-crops', 'sentence-clip'] as const;
/** Arm 10's run-folder prefix. */
export const COMBINED = 'best-labels';

/** Arm 10: the chosen arm with extracted labels on top. */
export function combinedArm(best: string): StudyArm {
  const arm = STUDY_ARMS.find((a) => a.name === best);
  if (!arm || !(TMA_ARMS as readonly string[]).includes(best))
    throw new Error(`arm 10 combines one of ${TMA_ARMS.join(', ')} with extracted labels (got '${best}')`);
  return { name: COMBINED, title: `${arm.title} + extracted labels`, config: arm.config, sets: [...arm.sets, labels] };
}

/** The labels of the endpoints' subsets. */
export const ENDPOINT_SUBSETS: Record<'ctRate' | 'clipFailures' | 'localFindings', LabelSubset> = {
  ctRate: { name: 'ct-rate-18', labels: [...CT_RATE_LABELS] },
  clipFailures: {
    name: 'clip-failures',
    labels: ['Hiatal hernia', 'Medical material', 'Emphysema', 'Cardiomegaly', 'Pleural effusion'],
  },
  localFindings: { name: 'local-v2', labels: [...LOCAL_FINDING_LABELS] },
};

/** One evaluation of a study run: an eval config and the tasks to run with it. */
export interface EvalStep {
  config: string;
  tasks: string;
}

/**
 * EVAL_CONFIG of `experiment:evaluate`: a comma list of eval configs, each optionally with its own tasks after a
 * colon, joined by '+' ('tma-study:zeroshot+retrieval+probe'); a config without tasks runs `defaultTasks`.
 */
export function parseEvalPlan(spec: string, defaultTasks: string, known: readonly string[]): EvalStep[] {
  return spec.split(',').map((part) => {
    const [config, tasks, ...rest] = part.trim().split(':');
    if (!config || rest.length || tasks === '')
      throw new Error(`EVAL_CONFIG: '${part}' is not <config> or <config>:<task>+<task>...`);
    const list = tasks?.split('+') ?? [];
    const unknown = list.filter((t) => !known.includes(t));
    if (unknown.length)
      throw new Error(`EVAL_CONFIG: '${part}' names unknown tasks ${unknown.join(', ')} (known: ${known.join(', ')})`);
    return { config, tasks: tasks ? list.join(',') : defaultTasks };
  });
}

/** The study's evaluations: its endpoints' tasks at the global view and at crop scale. */
export const STUDY_EVAL_PLAN = 'tma-study:zeroshot+retrieval+probe,tma-study-crop:zeroshot+retrieval+probe';
