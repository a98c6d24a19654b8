// The report tokenizer of a pre-training run: given in the config, brought by a pre-trained text encoder, or
// trained on the run's training reports once and kept in the run folder.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { readCacheIndex } from '../data/cache.js';
import { WordPieceTokenizer } from '../text/wordpiece.js';
import { trainWordPiece } from '../text/wordpiece-trainer.js';
import { type PretrainConfig } from './config.js';

/** The tokenizer: given in the config, or trained on the training reports (and saved next to the run). */
export function prepareTokenizer(c: PretrainConfig, outDir: string): WordPieceTokenizer {
  if (c.model.tokenizer) {
    return c.model.tokenizer.endsWith('.json')
      ? WordPieceTokenizer.fromTokenizerJson(c.model.tokenizer)
      : WordPieceTokenizer.fromVocabTxt(c.model.tokenizer);
  }
  // a pre-trained text encoder brings its vocabulary: a tokenizer trained here would not match its embeddings
  if ('pretrained' in c.model.text) {
    const dir = String(c.model.text.pretrained);
    for (const f of ['tokenizer.json', 'vocab.txt']) {
      if (existsSync(join(dir, f)))
        return f === 'tokenizer.json'
          ? WordPieceTokenizer.fromTokenizerJson(join(dir, f))
          : WordPieceTokenizer.fromVocabTxt(join(dir, f));
    }
    throw new Error(
      `model.text.pretrained ${dir}: no tokenizer.json or vocab.txt there; give one with model.tokenizer`,
    );
  }
  const saved = join(outDir, 'tokenizer.json');
  if (existsSync(saved)) return WordPieceTokenizer.fromTokenizerJson(saved);
  const reports = readCacheIndex(c.data.cache)
    .entries.filter((e) => e.split === c.data.trainSplit)
    .map((e) => e.report);
  const tok = trainWordPiece(reports, { vocabSize: c.model.vocabSize });
  mkdirSync(outDir, { recursive: true });
  tok.saveTokenizerJson(saved);
  return tok;
}
