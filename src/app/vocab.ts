// `t3d vocab`: trains a WordPiece vocabulary on the reports of a dataset (CT-RATE layout, manifest or cache).
import { reportsOf } from '../data/ensure-cache.js';
import { trainWordPiece } from '../text/wordpiece-trainer.js';
import { parseOptions } from './args.js';

export function runVocab(args: string[]): void {
  const o = parseOptions(args, { string: ['data', 'split', 'out'], number: ['size', 'min-frequency'] });
  if (!o.data || !o.out)
    throw new Error('vocab: --data <dataset|manifest|cache> and --out <tokenizer.json> are required');
  const { data, split } = o;
  const reports = reportsOf(data, split);
  if (reports.length === 0) throw new Error(`${data}: no reports${split ? ` in split '${split}'` : ''}`);
  const t0 = Date.now();
  const tok = trainWordPiece(reports, { vocabSize: o.size ?? 30000, minFrequency: o['min-frequency'] });
  tok.saveTokenizerJson(o.out);
  console.log(
    `vocab: ${tok.vocabSize} tokens from ${reports.length} reports in ${((Date.now() - t0) / 1000).toFixed(1)} s ` +
      `→ ${o.out}`,
  );
}
