// `t3d vocab`: trains a WordPiece vocabulary on the reports of a dataset (CT-RATE layout, manifest or cache).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readSource } from '../data/sources.js';
import { readCacheIndex } from '../data/cache.js';
import { trainWordPiece } from '../text/wordpiece-trainer.js';
import { parseOptions } from './args.js';

export function runVocab(args: string[]): void {
  const o = parseOptions(args, {
    data: 'string',
    size: 'number',
    split: 'string',
    out: 'string',
    'min-frequency': 'number',
  });
  if (!o.data || !o.out)
    throw new Error('vocab: --data <dataset|manifest|cache> and --out <tokenizer.json> are required');
  const data = o.data as string;
  const split = o.split as string | undefined;
  const reports = existsSync(join(data, 'cache.json'))
    ? readCacheIndex(data)
        .entries.filter((e) => !split || e.split === split)
        .map((e) => e.report)
    : readSource(data)
        .records.filter((r) => !split || r.split === split)
        .map((r) => r.report);
  if (reports.length === 0) throw new Error(`${data}: no reports${split ? ` in split '${split}'` : ''}`);
  const t0 = Date.now();
  const tok = trainWordPiece(reports, {
    vocabSize: (o.size as number | undefined) ?? 30000,
    minFrequency: o['min-frequency'] as number | undefined,
  });
  tok.saveTokenizerJson(o.out as string);
  console.log(
    `vocab: ${tok.vocabSize} tokens from ${reports.length} reports in ${((Date.now() - t0) / 1000).toFixed(1)} s → ${o.out}`,
  );
}
