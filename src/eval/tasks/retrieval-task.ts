// The cross-modal retrieval task on the test volumes (embedded once per suite run, shared with zero-shot).
import { record, variantOf, type EvalTask } from '../task.js';
import { retrievalReport } from './retrieval.js';
import { reportsOf } from '../../inference/embed.js';
import { rows } from './zeroshot.js';
import { testEmbeddings, textSetup } from './zeroshot-task.js';

export const retrievalTask: EvalTask = {
  name: 'retrieval',
  needsText: true,
  run: async (ctx) => {
    const s = textSetup(ctx);
    return [
      await record(ctx, 'retrieval', variantOf(ctx, ''), async () => {
        const t = await testEmbeddings(ctx, s);
        return { names: t.names, ...retrievalReport(rows(t.volumes), rows(reportsOf(t)), t.labels, s.bootstrap) };
      }),
    ];
  },
};
