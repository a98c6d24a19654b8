// Worker thread: generates one case and writes its volume and mask; returns the CSV fields.
import { serveTasks } from '../../util/pool.js';
import { generateCaseFiles, type CaseTask, type WorkerInit } from './dataset.js';

serveTasks<CaseTask, unknown>((task, init) => generateCaseFiles(task, init as WorkerInit));
