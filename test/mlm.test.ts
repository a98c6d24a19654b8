// Masked-language-model pre-training of the report encoder: BertForMaskedLM equals HF's (logits and masked_lm_loss
// from scripts/fixtures/make_bert_fixtures.py), masking follows HF's collator, `pretrainText` learns, resumes exactly,
// and its checkpoints are HF folders that T3D pre-training loads as its text encoder.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../src/torch/index.js';
import { BertForMaskedLM, IGNORE_INDEX } from '../src/models/bert-mlm.js';
import { bertConfig, loadBertFromPretrained, readBertConfig } from '../src/models/bert.js';
import { maskTokens } from '../src/text/mlm.js';
import { WordPieceTokenizer } from '../src/text/wordpiece.js';
import { pretrainText, type TextPretrainOptions } from '../src/train/text-pretrain.js';
import { listCheckpoints } from '../src/train/checkpoint.js';
import { buildT3dModel, pretrainedTextDir } from '../src/train/factory.js';
import { applyOverrides, loadConfig } from '../src/train/config.js';
import { prepareTokenizer } from '../src/app/pretrain.js';
import { Rng } from '../src/util/rng.js';
import { assertClose, fixture } from './helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 't3d-mlm-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const expected = torch.loadSafetensors(fixture('bert', 'expected.safetensors')).tensors;
const exp = (name: string) => expected.get(name)!;
const hfDir = fixture('bert', 'tiny-mlm');

function loadHfMlm(): BertForMaskedLM {
  const m = new BertForMaskedLM(readBertConfig(join(hfDir, 'config.json')));
  const { tensors } = torch.loadSafetensors(join(hfDir, 'model.safetensors'));
  m.loadStateDict(tensors);
  torch.dispose([...tensors.values()]);
  return m.eval();
}

test("BertForMaskedLM: HF's keys exactly, strict load, logits and masked_lm_loss equal transformers'", () => {
  const m = loadHfMlm();
  const keys = torch
    .readSafetensorsHeader(join(hfDir, 'model.safetensors'))
    .entries.map((e) => e.name)
    .sort();
  assert.deepEqual([...m.stateDict().keys()].sort(), keys);
  assert.ok(keys.includes('cls.predictions.bias') && !keys.some((k) => k.includes('decoder') || k.includes('pooler')));
  torch.tidy(() => {
    const ids = exp('mlm.input_ids'),
      mask = exp('attention_mask'),
      labels = exp('mlm.labels');
    assertClose(m.logits(ids, mask), exp('mlm.logits'), { atol: 1e-4, rtol: 1e-4, what: 'logits' });
    assertClose(m.loss(ids, mask, labels).reshape(1), exp('mlm.loss'), {
      atol: 1e-5,
      rtol: 1e-5,
      what: 'masked_lm_loss',
    });
  });
  m.dispose();
});

test('the decoder is tied to the word embeddings: the loss gradient reaches them through both uses', () => {
  const m = loadHfMlm().train();
  const emb = m.bert.embeddings.word_embeddings.weight;
  const labels = exp('mlm.labels');
  // a label id that never occurs in the input reaches the embedding table only through the tied decoder
  const inputs = new Set(exp('mlm.input_ids').toArray().map(Number));
  const onlyLabel = labels
    .toArray()
    .map(Number)
    .find((l) => l >= 0 && !inputs.has(l));
  assert.ok(onlyLabel !== undefined, 'fixture has a label id absent from the inputs');
  torch.tidy(() => m.loss(exp('mlm.input_ids'), exp('attention_mask'), labels).backward());
  torch.tidy(() =>
    assert.ok(emb.grad!.select(0, onlyLabel).abs().sum().item() > 0, 'decoder gradient on its embedding row'),
  );
  m.dispose();
});

const special = new Set([0, 2, 3, 4]);
const mlmOpts = { maskProb: 0.15, maskId: 4, vocabSize: 700, specialIds: special };

test("maskTokens: HF collator's rates (15 %; of those 80 % [MASK], 10 % random, 10 % kept), specials never chosen", () => {
  const n = 200_000;
  const ids = Int32Array.from({ length: n }, (_, i) => (i % 10 === 0 ? 2 : 5 + (i % 600)));
  const { inputIds, labels } = maskTokens(ids, mlmOpts, new Rng(7));
  let chosen = 0,
    masked = 0,
    kept = 0,
    changed = 0;
  for (let i = 0; i < n; i++) {
    if (ids[i] === 2) {
      assert.equal(labels[i], IGNORE_INDEX);
      assert.equal(inputIds[i], 2);
      continue;
    }
    if (labels[i] === IGNORE_INDEX) {
      assert.equal(inputIds[i], ids[i]);
      continue;
    }
    assert.equal(labels[i], ids[i]);
    chosen++;
    if (inputIds[i] === 4) masked++;
    else if (inputIds[i] === ids[i]) kept++;
    else changed++;
  }
  const regular = n * 0.9;
  // binomial standard errors: 15 % of 180k ± 0.08 %; sub-rates of 27k ± 0.25 %; four-sigma bounds
  assert.ok(Math.abs(chosen / regular - 0.15) < 0.004, `chosen ${chosen / regular}`);
  assert.ok(Math.abs(masked / chosen - 0.8) < 0.01, `masked ${masked / chosen}`);
  assert.ok(Math.abs(kept / chosen - 0.1) < 0.01 + 1 / 700, `kept ${kept / chosen}`); // a random draw may equal the token
  assert.ok(Math.abs(changed / chosen - 0.1) < 0.01, `random ${changed / chosen}`);
  assert.deepEqual(maskTokens(ids, mlmOpts, new Rng(7)), { inputIds, labels }, 'same seed, same masks');
  assert.notDeepEqual(maskTokens(ids, mlmOpts, new Rng(8)).labels, labels);
  assert.throws(() => maskTokens(ids, { ...mlmOpts, maskProb: 0 }, new Rng(0)), /maskProb 0 must be in \(0, 1\)/);
});

// a tiny corpus with structure to learn: the finding and the side decide each other through the template
const findings = ['nodule', 'effusion', 'atelectasis', 'consolidation', 'emphysema', 'opacity'];
const sides = ['right', 'left'];
const corpus = (seed: number, n: number) => {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => {
    const f = rng.pick(findings),
      s = rng.pick(sides);
    return rng.bool()
      ? `There is a ${f} in the ${s} lung. Heart size is normal.`
      : `No ${f} is seen. The ${s} lung is clear.`;
  });
};
const tok = WordPieceTokenizer.fromVocabTxt(fixture('text', 'vocab.txt'));
const textConfig = bertConfig(
  {
    hidden_size: 32,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    intermediate_size: 64,
    max_position_embeddings: 64,
    vocab_size: tok.vocabSize,
  },
  'test',
);
const options: TextPretrainOptions = {
  steps: 200,
  batchSize: 8,
  lr: 1e-2,
  weightDecay: 0.01,
  warmupSteps: 5,
  maskProb: 0.15,
  maxTokens: 32,
  seed: 3,
  logEvery: 50,
  checkpointEvery: 100,
};
const runDir = join(tmp, 'run');
const quiet = () => {};
const checkpoints = (run: string) => listCheckpoints(join(run, 'checkpoints')).map((n) => join(run, 'checkpoints', n));

/** Entropy of the corpus's token frequencies and the most frequent token's share: what a context-blind guesser gets. */
function unigramBaseline(reports: string[]): { entropy: number; topShare: number } {
  const counts = new Map<number, number>();
  let total = 0;
  for (const r of reports)
    for (const id of tok.encode(r).inputIds) {
      if (id === tok.clsId || id === tok.sepId) continue;
      counts.set(id, (counts.get(id) ?? 0) + 1);
      total++;
    }
  const p = [...counts.values()].map((c) => c / total);
  return { entropy: -p.reduce((s, q) => s + q * Math.log(q), 0), topShare: Math.max(...p) };
}

test('pretrainText learns from context (held-out loss below the unigram entropy) without leaking tensors', () => {
  const before = torch.memory().numTensors;
  const lines: string[] = [];
  const r = pretrainText(textConfig, tok, corpus(1, 96), corpus(2, 48), runDir, options, (l) => lines.push(l));
  assert.equal(torch.memory().numTensors, before);
  assert.equal(r.step, 200);
  const base = unigramBaseline(corpus(1, 96)); // 3.17 nats, top token 12 %; measured: 1.86 nats, 41 %
  assert.ok(r.valLoss < base.entropy - 0.8, `held-out loss ${r.valLoss} vs unigram entropy ${base.entropy}`);
  assert.ok(
    r.valAccuracy > 2.5 * base.topShare,
    `held-out accuracy ${r.valAccuracy} vs most frequent token ${base.topShare}`,
  );
  assert.ok(
    lines.some((l) => /held-out masked-token loss [\d.]+, accuracy [\d.]+ %/.test(l)),
    lines.join('\n'),
  );
  assert.deepEqual(listCheckpoints(join(runDir, 'checkpoints')), ['step-00000100', 'step-00000200']);
});

test('a resumed run equals the uninterrupted one (≤ 1e-6); other settings in the same folder are refused', () => {
  const [mid, last] = checkpoints(runDir);
  const finalWeights = torch.loadSafetensors(join(last!, 'model.safetensors')).tensors;
  const resumedDir = join(tmp, 'resumed');
  pretrainText(textConfig, tok, corpus(1, 96), corpus(2, 48), resumedDir, { ...options, steps: 200 }, quiet);
  rmSync(checkpoints(resumedDir)[1]!, { recursive: true }); // as if killed after step 100
  assert.ok(mid!.endsWith('step-00000100'));
  const lines: string[] = [];
  pretrainText(textConfig, tok, corpus(1, 96), corpus(2, 48), resumedDir, options, (l) => lines.push(l));
  assert.ok(
    lines.some((l) => /resuming from .*step-00000100 \(step 100\)/.test(l)),
    lines.join('\n'),
  );
  const resumed = torch.loadSafetensors(join(checkpoints(resumedDir)[1]!, 'model.safetensors')).tensors;
  assert.deepEqual([...resumed.keys()].sort(), [...finalWeights.keys()].sort());
  for (const [k, v] of finalWeights) assertClose(resumed.get(k)!, v, { atol: 1e-6, what: k });
  torch.dispose([...finalWeights.values(), ...resumed.values()]);
  assert.throws(
    () => pretrainText(textConfig, tok, corpus(1, 96), corpus(2, 48), resumedDir, { ...options, lr: 1e-3 }, quiet),
    /written with other settings .* use another --out/,
  );
  assert.throws(
    () => pretrainText(textConfig, tok, corpus(1, 4), [], join(tmp, 'few'), options, quiet),
    /4 training reports, fewer than one batch of 8/,
  );
});

test('the text run warm-starts T3D: run folder → newest checkpoint, its tokenizer, its encoder weights', () => {
  const newest = checkpoints(runDir)[1]!;
  assert.equal(pretrainedTextDir(runDir), newest);
  assert.equal(pretrainedTextDir(hfDir), hfDir, 'a Hugging Face folder is taken as is');
  assert.throws(() => pretrainedTextDir(join(tmp, 'nothing')), /neither a model folder .* nor a pretrain-text run/);
  // transformers-style consumers read the checkpoint as a BertModel (cls.* unused, no pooler)
  const bert = loadBertFromPretrained(newest, { allowMissingPooler: true });
  const cfg = applyOverrides(loadConfig(fixture('pretrain', 'tiny.json')), [
    `data.preset=${fixture('pretrain', 'tiny-preset.json')}`,
  ]);
  const withText = { ...cfg, model: { ...cfg.model, text: { pretrained: newest } } };
  const t = prepareTokenizer(withText, join(tmp, 'unused'));
  assert.deepEqual(t.encode('no nodule in the right lung'), tok.encode('no nodule in the right lung'));
  const model = buildT3dModel(withText.model, [16, 16, 16], t.vocabSize);
  const emb = [...model.stateDict()].find(([k]) => k.endsWith('word_embeddings.weight'))![1];
  assertClose(emb, bert.embeddings.word_embeddings.weight, { atol: 0, what: 'word embeddings from the text run' });
  model.dispose();
  bert.dispose();
});
