// The evaluation tasks, in the order `t3d eval all` runs them (and records and reports list them). A new task is
// one file in tasks/ exporting an EvalTask, and its entry here.
import { type EvalTask } from './task.js';
import { zeroShotTask } from './tasks/zeroshot-task.js';
import { retrievalTask } from './tasks/retrieval-task.js';
import { finetuneTask, probeTask } from './tasks/transfer-tasks.js';
import { segmentationTask } from './tasks/segmentation-task.js';
import { reportGenTask } from './tasks/reportgen-task.js';

export const EVAL_TASKS: readonly EvalTask[] = [
  zeroShotTask,
  retrievalTask,
  probeTask,
  finetuneTask,
  segmentationTask,
  reportGenTask,
];

export const TASK_NAMES: readonly string[] = EVAL_TASKS.map((t) => t.name);
