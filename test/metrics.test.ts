// Metrics against scikit-learn (fixture by scripts/fixtures/make_eval_fixtures.py).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { auroc, binaryStats, macroAuroc, recallAtK, youdenThreshold } from '../src/eval/metrics.js';
import { fixture } from './helpers.js';

const cases = JSON.parse(readFileSync(fixture('eval', 'metrics.json'), 'utf8')) as { scores: number[]; labels: number[]; auroc: number; youden: number }[];

test('AUROC (with ties) and Youden threshold equal sklearn', () => {
  for (const c of cases) {
    assert.ok(Math.abs(auroc(c.scores, c.labels) - c.auroc) < 1e-12, `auroc ${auroc(c.scores, c.labels)} vs ${c.auroc}`);
    assert.equal(youdenThreshold(c.scores, c.labels), c.youden);
  }
});

test('macro AUROC skips labels with one class and says how many counted; stats; recall@K', () => {
  const m = macroAuroc([[0.9, 0.1], [0.2, 0.3], [0.8, 0.5]], [[1, 0], [0, 0], [1, 0]]);
  assert.equal(m.labelsCounted, 1);
  assert.equal(m.value, 1);
  assert.ok(Number.isNaN(m.perLabel[1]!));
  assert.deepEqual(binaryStats([0.9, 0.2, 0.6, 0.1], [1, 0, 0, 1], 0.5), { f1: 0.5, accuracy: 0.5, sensitivity: 0.5, specificity: 0.5 });
  const sim = [[0.9, 0.1, 0.2], [0.8, 0.5, 0.1], [0.1, 0.2, 0.3]];
  assert.deepEqual(recallAtK(sim, [1, 2]), { 1: 2 / 3, 2: 1 });
  assert.throws(() => auroc([1, 2], [1]), /2 scores but 1 labels/);
});
