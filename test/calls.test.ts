// Calls a first user can read: operating points chosen on validation volumes and described on test volumes, and a
// case list in natural order.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeThresholds, ruleThresholds, specificityThreshold } from '../src/eval/metrics/operating-points.js';
import { youdenThreshold } from '../src/eval/metrics/classification.js';
import { VectorIndex } from '../src/service/vector-index.js';
import { Rng } from '../src/util/rng.js';

const tmp = mkdtempSync(join(tmpdir(), 't3d-calls-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** Brute force: of all cuts at a score (and "never"), the lowest whose specificity reaches the target. */
function bruteForce(scores: number[], labels: number[], target: number): number {
  const neg = scores.filter((_, i) => !labels[i]);
  const cuts = [...new Set(scores), Infinity].sort((a, b) => a - b);
  for (const t of cuts) if (neg.filter((s) => s < t).length / neg.length >= target) return t;
  return Infinity;
}

test('specificityThreshold is the most sensitive cut whose validation specificity reaches the target', () => {
  const r = new Rng(7);
  const rng = () => r.next();
  for (let trial = 0; trial < 200; trial++) {
    const n = 5 + Math.floor(rng() * 40);
    // coarse scores so that ties between negatives, positives and both happen
    const scores = Array.from({ length: n }, () => Math.round(rng() * 12) / 12);
    const labels = Array.from({ length: n }, () => (rng() < 0.35 ? 1 : 0));
    if (!labels.some((y) => !y)) continue;
    for (const target of [0.5, 0.8, 0.9, 0.95, 1]) {
      const t = specificityThreshold(scores, labels, target);
      assert.equal(t, bruteForce(scores, labels, target), `trial ${trial}, target ${target}`);
    }
  }
  assert.throws(() => specificityThreshold([0.1, 0.2], [0, 1], 1.5), /target must be in \(0, 1\]/);
  assert.throws(() => specificityThreshold([0.1, 0.2], [1, 1], 0.9), /no negative volumes/);
});

test('operating points: thresholds from validation, rates and calls per volume on test', () => {
  // label 0 separates perfectly on validation at 0.6; label 1 has only negatives in validation (no threshold)
  const val = {
    scores: [
      [0.9, 0.1],
      [0.7, 0.2],
      [0.5, 0.3],
      [0.2, 0.4],
    ],
    labels: [
      [1, 0],
      [1, 0],
      [0, 0],
      [0, 0],
    ],
  };
  const test_ = {
    scores: [
      [0.8, 0.9],
      [0.65, 0.1],
      [0.75, 0.2],
      [0.1, 0.3],
    ],
    labels: [
      [1, 1],
      [0, 0],
      [1, 0],
      [0, 1],
    ],
  };
  const youden = ruleThresholds(val, { kind: 'youden' });
  assert.deepEqual(youden, [youdenThreshold([0.9, 0.7, 0.5, 0.2], [1, 1, 0, 0]), null]);
  assert.equal(youden[0], 0.7);
  const spec = ruleThresholds(val, { kind: 'specificity', target: 1 });
  assert.equal(spec[0], 0.7); // both validation negatives (0.5, 0.2) must fall below it
  const d = describeThresholds(test_, [0.7, null], 'rule');
  // test label 0 at 0.7: volumes 0 and 2 called (both positive), volume 1 (0.65) not: sens 1, spec 1, PPV 1
  assert.deepEqual(d.perLabel[0], { threshold: 0.7, sensitivity: 1, specificity: 1, ppv: 1 });
  assert.equal(d.perLabel[1], null);
  // a label without positives among the test volumes still has a specificity, and no sensitivity
  const noPositives = describeThresholds({ scores: [[0.2], [0.9]], labels: [[0], [0]] }, [0.5], 'rule').perLabel[0]!;
  assert.deepEqual(noPositives, { threshold: 0.5, sensitivity: NaN, specificity: 0.5, ppv: 0 });
  assert.equal(d.callsPerVolume, 2 / 4);
  assert.equal(d.labelsPerVolume, 4 / 4);
  const low = describeThresholds(test_, [0.6, null], 'rule').perLabel[0]!;
  // at 0.6 volume 1 (negative, 0.65) is called too: specificity 1/2, PPV 2/3
  assert.deepEqual(low, { threshold: 0.6, sensitivity: 1, specificity: 0.5, ppv: 2 / 3 });
});

test('the case list is in natural id order (valid_2 before valid_10), page by page', async () => {
  const index = await VectorIndex.open(join(tmp, 'db'), 'abcdef0123456789');
  const ids = ['valid_10', 'valid_2', 'valid_100', 'valid_1', 'train_3', 'valid_20'];
  await index.add(
    ids.map((id, i) => ({
      id,
      source: `${id}.nii.gz`,
      split: id.split('_')[0]!,
      report: '',
      labels: i % 2 ? ['Emphysema'] : [],
      findings: { Emphysema: i / 10 },
      checkpointId: 'abcdef0123456789',
      vector: [1, i, 0, 0],
    })),
  );
  const page = async (offset: number, limit: number, label?: string) =>
    (await index.list({ offset, limit, label })).map((c) => c.id);
  assert.deepEqual(await page(0, 3), ['train_3', 'valid_1', 'valid_2']);
  assert.deepEqual(await page(3, 3), ['valid_10', 'valid_20', 'valid_100']);
  assert.deepEqual(await page(6, 3), []);
  assert.deepEqual(await page(0, 10, 'Emphysema'), ['valid_1', 'valid_2', 'valid_20']);
});
