// The embedding index's two questions: which indexed cases match a text, and which look like a scan or an indexed
// case. Both load the checkpoint only to find its table and embed the query.
import { existsSync } from 'node:fs';
import * as torch from '../torch/index.js';
import { embedTexts } from '../inference/embed.js';
import { loadT3dCheckpoint } from '../train/factory.js';
import { openAnalyzer } from './analyzer.js';
import { checkpointId } from '../train/checkpoint.js';
import { VectorIndex, type Hit, type SearchFilter } from './vector-index.js';

export interface QueryOptions {
  checkpoint: string;
  db: string;
  filter: SearchFilter;
  log: (line: string) => void;
}

/** The checkpoint's table in `db`, or an error that says how to build it. */
async function openIndex(db: string, checkpointId: string, checkpointDir: string): Promise<VectorIndex> {
  if (!existsSync(db))
    throw new Error(`--db ${db}: no such index; build one with \`t3d index --checkpoint ${checkpointDir}\``);
  const index = await VectorIndex.open(db, checkpointId);
  if ((await index.count()) === 0) {
    const others = await VectorIndex.checkpoints(db);
    throw new Error(
      `--db ${db}: nothing indexed with checkpoint ` +
        `${index.checkpointId}${others.length ? ` (tables exist for ${others.join(', ')})` : ''}; run \`t3d index ` +
        `--checkpoint ${checkpointDir} --db ${db}\``,
    );
  }
  return index;
}

/** The indexed volumes nearest to a text (the checkpoint's report encoder embeds it). */
export async function searchText(text: string, o: QueryOptions): Promise<Hit[]> {
  const ckpt = loadT3dCheckpoint(o.checkpoint, o.log);
  try {
    const index = await openIndex(o.db, checkpointId(ckpt.dir), ckpt.dir);
    const { model, tokenizer, config } = ckpt;
    const vector = torch.tidy(() =>
      embedTexts(model, tokenizer, [text], config.data.maxTokens).to('float32').toArray(),
    );
    return await index.search(vector, o.filter);
  } finally {
    ckpt.model.dispose();
  }
}

/** The indexed volumes nearest to a scan on disk (embedded as `t3d analyze` does) or to an indexed id (left out). */
export async function searchSimilar(query: string, o: QueryOptions & { intercept?: number }): Promise<Hit[]> {
  if (existsSync(query)) {
    // a scan: one analyzer loads the checkpoint, names its table and embeds the scan
    const analyzer = await openAnalyzer({ checkpoint: o.checkpoint, log: o.log });
    try {
      const index = await openIndex(o.db, analyzer.checkpointId, analyzer.checkpoint);
      const vector = (await analyzer.analyze(query, { intercept: o.intercept })).embedding;
      return await index.search(vector, o.filter);
    } finally {
      analyzer.dispose();
    }
  }
  const ckpt = loadT3dCheckpoint(o.checkpoint, o.log);
  ckpt.model.dispose();
  const index = await openIndex(o.db, checkpointId(ckpt.dir), ckpt.dir);
  const vector = await index.vectorOf(query);
  if (!vector) throw new Error(`similar: '${query}' is neither a scan on disk nor an id in the index`);
  return index.search(vector, { ...o.filter, excludeId: query });
}
