// Sentence codes' NMI against the stated findings (src/eval/sentence-codes.ts) on a fixture: realistic synthetic
// reports embedded by a tiny random-init text encoder cluster by finding well above the shuffled-codes chance level;
// codes equal to the findings give NMI 1; shuffled codes give the chance level.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/torch/index.js';
import { applyOverrides, loadConfig } from '../src/train/config.js';
import { buildT3dModel } from '../src/train/factory.js';
import { generateReport } from '../src/data/synth/reports-realistic.js';
import { reportText, splitSentences } from '../src/text/report.js';
import { trainWordPiece } from '../src/text/wordpiece-trainer.js';
import { normalizedMutualInformation } from '../src/eval/metrics/clustering.js';
import {
  embedSentences,
  sentenceCodes,
  sentenceFindings,
  shuffledCopy,
  statedFindingNmi,
} from '../src/eval/sentence-codes.js';
import { fixture } from './helpers.js';

const reports = Array.from({ length: 120 }, (_, i) => reportText(generateReport(0, i, 'realistic').report));
const findings = sentenceFindings(reports.flatMap(splitSentences));

test('codes equal to the stated findings give NMI 1, shuffled ones about the chance level', () => {
  const { stated, findingOf } = findings;
  assert.ok(stated.length > 50 && new Set(stated.map(findingOf)).size > 5, 'the fixture states several findings');
  const codes: number[] = [];
  const ids = new Map<string, number>();
  for (const i of stated) codes[i] = ids.get(findingOf(i)) ?? ids.set(findingOf(i), ids.size).get(findingOf(i))!;
  const r = statedFindingNmi(codes, findings, 0);
  assert.equal(r.sentences, stated.length);
  assert.ok(Math.abs(r.nmi - 1) < 1e-12, `NMI of the findings themselves: ${r.nmi}`);
  // the chance level is NMI of the findings shuffled: low, and the mean over shuffles is about the same
  const truth = stated.map(findingOf);
  const own = stated.map((i) => codes[i]!);
  const shuffles = Array.from({ length: 20 }, (_, s) => normalizedMutualInformation(shuffledCopy(own, s + 1), truth));
  const mean = shuffles.reduce((a, b) => a + b, 0) / shuffles.length;
  const sd = Math.sqrt(shuffles.reduce((a, b) => a + (b - mean) ** 2, 0) / (shuffles.length - 1));
  assert.ok(r.chance < 0.5, `chance ${r.chance}`);
  assert.ok(Math.abs(r.chance - mean) < 4 * sd + 1e-9, `chance ${r.chance} against ${mean} ± ${sd} over shuffles`);
  // a shuffle keeps the codes, only their sentences change
  assert.deepEqual([...shuffledCopy(own, 3)].sort(), [...own].sort());
});

test('a random-init text encoder codes sentences by finding, above the shuffled chance level', () => {
  torch.manualSeed(0);
  const cfg = applyOverrides(loadConfig(fixture('pretrain', 'tiny.json')), [
    'model.prototypes=16',
    'model.text.max_position_embeddings=512',
  ]);
  const tokenizer = trainWordPiece(reports, { vocabSize: cfg.model.vocabSize });
  const model = buildT3dModel(cfg.model, [8, 8, 8], tokenizer.vocabSize);
  after(() => model.dispose());
  model.eval();
  const { texts, emb } = embedSentences(model, tokenizer, reports, 512);
  const codes = sentenceCodes(model, emb);
  emb.dispose();
  assert.equal(codes.length, texts.length);
  const fromTexts = sentenceFindings(texts);
  const r = statedFindingNmi(codes, fromTexts, 0);
  const truth = fromTexts.stated.map(fromTexts.findingOf);
  const own = fromTexts.stated.map((i) => codes[i]!);
  const shuffles = Array.from({ length: 20 }, (_, s) => normalizedMutualInformation(shuffledCopy(own, s + 1), truth));
  // measured (120 reports, K 16, torch seed 0): 1,299 sentences, 433 stating one finding, NMI 0.201 against 0.125
  // for the seed-0 shuffle and 0.098–0.125 over shuffles 1–4; torch seeds 1 and 2 gave 0.183 and 0.184 against
  // 0.104–0.118. So: above every shuffle, and by 0.05 at least above the reported chance level.
  assert.ok(r.nmi > Math.max(...shuffles), `NMI ${r.nmi} against shuffles up to ${Math.max(...shuffles)}`);
  assert.ok(r.nmi > r.chance + 0.05, `NMI ${r.nmi} against chance ${r.chance}`);
  assert.ok(r.sentences > 300, `${r.sentences} sentences stating one finding`);
});
