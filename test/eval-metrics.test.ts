// Report-generation metrics against nltk (fixture by scripts/fixtures/make_nlg_fixtures.py) and segmentation
// metrics against MONAI's definitions on scipy (fixture by scripts/fixtures/make_seg_fixtures.py).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { inflateSync } from 'node:zlib';
import { corpusBleu, meteor, porterStem, rougeL, tokenizeForNlg } from '../src/eval/metrics/nlg.js';
import { diceScore, hausdorff95 } from '../src/eval/metrics/segmentation.js';
import { fixture } from './helpers.js';

const load = <T>(name: string): T =>
  JSON.parse(
    readFileSync(fixture('eval', name), 'utf8'),
    (_k, v) => (v === 'NaN' ? NaN : v === 'Infinity' ? Infinity : v) as unknown,
  ) as T;

/**
 * Relative tolerance: the scores are the same formulas as the references evaluated in another order (nltk sums
 * log precisions with math.fsum, numpy means pairwise, scipy adds the squared axis distances in another order),
 * so they agree to a few ulps. Relative, because BLEU with a zero n-gram precision is ≈1e-77.
 */
function close(actual: number, expected: number, what: string, rtol = 1e-12): void {
  if (Number.isNaN(expected)) return assert.ok(Number.isNaN(actual), `${what}: ${actual}, expected NaN`);
  if (!Number.isFinite(expected)) return assert.equal(actual, expected, what);
  assert.ok(Math.abs(actual - expected) <= rtol * Math.abs(expected), `${what}: ${actual}, expected ${expected}`);
}

type Scores = { bleu1: number; bleu2: number; bleu3: number; bleu4: number; rougeL: number; meteor: number };
interface NlgFixture {
  sentences: { text: string; tokens: string[] }[];
  corpora: Record<string, Scores & { refs: string[][][]; hyps: string[][] }>;
  pairs: (Scores & { refs: string[][]; hyp: string[] })[];
  stems: Record<string, string>;
}
const nlg = load<NlgFixture>('nlg.json');

function checkScores(refs: string[][][], hyps: string[][], e: Scores, what: string): void {
  const b = corpusBleu(refs, hyps);
  for (const k of ['bleu1', 'bleu2', 'bleu3', 'bleu4'] as const) close(b[k], e[k], `${what} ${k}`);
  close(rougeL(refs, hyps), e.rougeL, `${what} ROUGE-L`);
  close(meteor(refs, hyps), e.meteor, `${what} METEOR`);
}

test('tokenizer: lower-case words and numbers, decimals whole, punctuation dropped', () => {
  for (const s of nlg.sentences) assert.deepEqual(tokenizeForNlg(s.text), s.tokens, s.text);
  assert.deepEqual(tokenizeForNlg('Ground-glass opacity, 1.5 cm (T12).'), [
    'ground',
    'glass',
    'opacity',
    '1.5',
    'cm',
    't12',
  ]);
  assert.deepEqual(tokenizeForNlg(' .,; '), []);
});

test('Porter stems equal nltk PorterStemmer (NLTK_EXTENSIONS)', () => {
  const wrong = Object.entries(nlg.stems)
    .filter(([w, s]) => porterStem(w) !== s)
    .map(([w, s]) => `${w}: ${porterStem(w)} ≠ ${s}`);
  assert.deepEqual(wrong, []);
  assert.ok(Object.keys(nlg.stems).length > 500);
});

test('corpus BLEU-1..4, ROUGE-L and METEOR equal nltk / pycocoevalcap on corpora and single pairs', () => {
  for (const [name, c] of Object.entries(nlg.corpora)) checkScores(c.refs, c.hyps, c, name);
  nlg.pairs.forEach((p, i) => checkScores([p.refs], [p.hyp], p, `pair ${i}`));
  const zeroOrder = nlg.corpora.random!;
  assert.ok(
    zeroOrder.bleu4 > 0 && zeroOrder.bleu4 < 1e-70,
    'fixture covers a zero 4-gram precision (nltk: ≈1e-77, not 0)',
  );
  assert.equal(corpusBleu([[['a']]], [[]]).bleu1, 0);
  assert.throws(() => corpusBleu([[['a']]], []), /0 hypotheses but 1 reference lists/);
  assert.throws(() => rougeL([[]], [['a']]), /hypothesis 0 has no reference/);
  assert.throws(() => meteor([], []), /no hypotheses/);
});

interface SegCase {
  name: string;
  shape: [number, number, number];
  spacing: [number, number, number];
  pred: string;
  target: string;
  classes: number[];
  dice: number[];
  hd95: number[];
}
const seg = load<SegCase[]>('seg.json');
const decode = (b64: string) => new Uint8Array(inflateSync(Buffer.from(b64, 'base64')));

test("Dice and HD95 equal MONAI's definitions: anisotropic spacing, empty prediction/target/both, border masks", (t) => {
  for (const c of seg) {
    const pred = decode(c.pred),
      target = decode(c.target);
    c.classes.forEach((cls, i) => {
      close(diceScore(pred, target, cls), c.dice[i]!, `${c.name} class ${cls} Dice`);
      const t0 = performance.now();
      close(hausdorff95(pred, target, c.shape, c.spacing, cls), c.hd95[i]!, `${c.name} class ${cls} HD95`);
      if (c.name === 'cpu96')
        t.diagnostic(`HD95 ${c.shape.join('×')} class ${cls}: ${(performance.now() - t0).toFixed(0)} ms`);
    });
  }
  const undefinedCases = seg.find((c) => c.name === 'empty_masks')!;
  assert.deepEqual(
    undefinedCases.hd95.slice(1),
    [Infinity, Infinity, NaN],
    'fixture covers empty prediction, target, both',
  );
});

test('HD95 is fast enough for 64×96×96 volumes, and checks its arguments', () => {
  const c = seg.find((s) => s.name === 'cpu96')!;
  const pred = decode(c.pred),
    target = decode(c.target);
  const cpu0 = process.cpuUsage();
  for (const cls of c.classes) hausdorff95(pred, target, c.shape, c.spacing, cls);
  const used = process.cpuUsage(cpu0),
    perClass = (used.user + used.system) / 1000 / c.classes.length;
  // CPU time, not wall time, so that other processes on the machine do not count; ~0.1 s, bound loose
  assert.ok(perClass < 1000, `${perClass.toFixed(0)} ms CPU per class`);
  const v = new Uint8Array(8);
  assert.throws(() => hausdorff95(v, v, [2, 2, 3], [1, 1, 1], 1), /masks have 8 voxels but shape \[2, 2, 3\] needs 12/);
  assert.throws(() => hausdorff95(v, v, [2, 2, 2], [1, 0, 1], 1), /spacing must be three positive finite numbers/);
  assert.throws(() => diceScore(v, new Uint8Array(4), 1), /pred has 8 voxels but target has 4/);
  assert.throws(() => diceScore(v, v, 1.5), /cls must be an integer class index/);
});
