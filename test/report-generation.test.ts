// Report generation: the decoder's gradients vs finite differences, causal masking and padding, incremental decoding
// vs the full pass, beam search (beam 1 = greedy; a constructed case where it beats greedy), memorising a few reports
// over a tiny encoder, flat live-tensor counts, clinical efficacy by hand, and an end-to-end run with resume.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../src/torch/index.js';
import { optim, type Tensor } from '../src/torch/index.js';
import { ResNet3d } from '../src/models/resnet3d.js';
import { ReportDecoder, beamSearchCore, type ReportDecoderConfig } from '../src/models/report-decoder.js';
import { trainWordPiece } from '../src/text/wordpiece-trainer.js';
import { type WordPieceTokenizer } from '../src/text/wordpiece.js';
import { EXTRACTED_LABELS } from '../src/text/label-extractor.js';
import { runReportGeneration } from '../src/eval/tasks/report-generation.js';
import { detokenize, encodeTargets, teacherForcingLoss } from '../src/eval/tasks/report-text.js';
import { clinicalEfficacy } from '../src/eval/tasks/clinical-efficacy.js';
import { applyOverrides, loadConfig } from '../src/train/config.js';
import { ensureCache } from '../src/data/synth-cache.js';
import { readCacheIndex } from '../src/data/cache.js';
import { assertClose, fixture } from './helpers.js';

// Models here are tiny: one intra-op thread is faster than two that synchronise on every small op.
torch.setNumThreads(1);
const tmp = mkdtempSync(join(tmpdir(), 't3d-reportgen-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const REPORTS = [
  'No pleural effusion. Heart size is normal.',
  'Mild cardiomegaly is present.',
  'A nodule is seen in the right upper lobe.',
];
const tokenizer: WordPieceTokenizer = trainWordPiece(REPORTS, { vocabSize: 120, minFrequency: 1 });

function decoderConfig(over: Partial<ReportDecoderConfig> = {}): ReportDecoderConfig {
  return {
    vocabSize: tokenizer.vocabSize,
    dModel: 16,
    heads: 2,
    layers: 2,
    ffn: 32,
    dropout: 0,
    maxLength: 24,
    visualDim: 8,
    numVisualTokens: 4,
    bosId: tokenizer.clsId,
    eosId: tokenizer.sepId,
    padId: tokenizer.padId,
    ...over,
  };
}
const ids = (rows: number[][]): Tensor =>
  torch.tensor(BigInt64Array.from(rows.flat(), BigInt), [rows.length, rows[0]!.length]);

/** Σ log p(tokens, EOS | BOS, visual) under teacher forcing. */
function sequenceLogProb(decoder: ReportDecoder, visual: Tensor, tokens: number[]): number {
  return torch.noGrad(() =>
    torch.tidy(() => {
      const c = decoder.config;
      const seq = [c.bosId, ...tokens, c.eosId];
      const lp = decoder
        .forward(visual, ids([seq.slice(0, -1)]))
        .logSoftmax(-1)
        .squeeze(0)
        .to('float64');
      const next = torch.tensor(BigInt64Array.from(seq.slice(1), BigInt), [seq.length - 1, 1]);
      return lp.gather(1, next).sum().item();
    }),
  );
}

test('decoder state-dict names follow nn.TransformerDecoderLayer; bad configurations are refused', () => {
  torch.manualSeed(0);
  const d = new ReportDecoder(decoderConfig());
  const keys = [...d.stateDict().keys()];
  for (const k of [
    'layers.0.self_attn.in_proj_weight',
    'layers.0.self_attn.out_proj.weight',
    'layers.1.multihead_attn.in_proj_bias',
    'layers.0.linear1.weight',
    'layers.0.linear2.bias',
    'layers.0.norm1.weight',
    'layers.0.norm2.bias',
    'layers.1.norm3.weight',
    'visual_proj.weight',
    'visual_pos',
    'token_embedding.weight',
    'position_embedding.weight',
    'lm_head.weight',
  ]) {
    assert.ok(keys.includes(k), `missing ${k}`);
  }
  assert.ok(!keys.some((k) => k.includes('dropout')), 'dropout layers hold no state');
  d.dispose();
  assert.throws(() => new ReportDecoder(decoderConfig({ dModel: 15 })), /dModel 15 is not divisible by heads 2/);
  assert.throws(() => new ReportDecoder(decoderConfig({ eosId: 10_000 })), /eosId 10000 is outside the vocabulary/);
});

test('float64 gradients of the teacher-forcing loss match finite differences (visual tokens and parameters)', () => {
  torch.manualSeed(1);
  const d = new ReportDecoder(
    decoderConfig({ dModel: 8, ffn: 16, layers: 2, maxLength: 8, numVisualTokens: 3, visualDim: 4 }),
  ).to({ dtype: 'float64' });
  d.eval();
  const visual = torch.randn([2, 3, 4], { dtype: 'float64' }).keep();
  const { input, target } = encodeTargets(tokenizer, ['Mild cardiomegaly.', 'No pleural effusion is seen.'], 8);
  input.keep();
  target.keep();
  const res = torch.gradcheck((v) => teacherForcingLoss(d, v, input, target), [visual], { atol: 1e-6, rtol: 1e-4 });
  assert.ok(res.ok, res.worst);

  // parameters: autograd's .grad against central differences, a few entries of every kind of weight
  torch.tidy(() => teacherForcingLoss(d, visual, input, target).backward());
  const params = new Map(d.namedParameters());
  const loss = () => torch.noGrad(() => torch.tidy(() => teacherForcingLoss(d, visual, input, target).item()));
  const eps = 1e-6;
  const checked = [
    'layers.0.self_attn.in_proj_weight',
    'layers.0.multihead_attn.in_proj_weight',
    'layers.1.self_attn.out_proj.weight',
    'layers.0.linear1.weight',
    'layers.1.linear2.bias',
    'layers.0.norm1.weight',
    'layers.1.norm3.bias',
    'visual_proj.weight',
    'visual_pos',
    'position_embedding.weight',
    'lm_head.weight',
  ];
  for (const name of checked) {
    const p = params.get(name)!;
    const g = p.grad!;
    const grad = g.toArray();
    g.dispose();
    const flat = p.view(-1);
    for (const j of [0, 5, p.numel - 1]) {
      const entry = flat.narrow(0, j, 1);
      torch.noGrad(() => entry.add_(eps));
      const up = loss();
      torch.noGrad(() => entry.add_(-2 * eps));
      const down = loss();
      torch.noGrad(() => entry.add_(eps));
      entry.dispose();
      const numeric = (up - down) / (2 * eps);
      assert.ok(
        Math.abs(numeric - grad[j]!) <= 1e-6 + 1e-4 * Math.abs(numeric),
        `${name}[${j}]: autograd ${grad[j]} vs numeric ${numeric}`,
      );
    }
    flat.dispose();
  }
  torch.dispose([visual, input, target]);
  d.dispose();
});

test('causal mask: a later token never changes earlier logits; padding does not change the real positions', () => {
  torch.manualSeed(2);
  const d = new ReportDecoder(decoderConfig()).eval();
  const visual = torch.randn([1, 4, 8]).keep();
  const base = [tokenizer.clsId, 7, 8, 9, 10, 11];
  torch.tidy(() => {
    const a = d.forward(visual, ids([base]));
    for (const k of [1, 3, 5]) {
      const changed = [...base];
      changed[k] = 12;
      const b = d.forward(visual, ids([changed]));
      assertClose(b.narrow(1, 0, k), a.narrow(1, 0, k), { atol: 1e-6, what: `positions before ${k}` });
      assert.ok(
        b
          .narrow(1, k, 1)
          .sub(a.narrow(1, k, 1))
          .abs()
          .max()
          .item() > 1e-4,
        `position ${k} sees its own token`,
      );
    }
    // right padding (masked as keys) leaves the real positions' logits alone, batched with an unpadded row
    const padded = d.forward(
      visual.expand(2, 4, 8),
      ids([[...base.slice(0, 4), tokenizer.padId, tokenizer.padId], base]),
    );
    assertClose(padded.select(0, 0).narrow(0, 0, 4), a.select(0, 0).narrow(0, 0, 4), {
      atol: 1e-5,
      what: 'padded row',
    });
    assertClose(padded.select(0, 1), a.select(0, 0), { atol: 1e-5, what: 'unpadded row' });
  });
  visual.dispose();
  d.dispose();
});

test('incremental decoding agrees with the full pass; beam 1 equals greedy; beam search never scores below greedy', () => {
  torch.manualSeed(3);
  const d = new ReportDecoder(decoderConfig({ maxLength: 12 })).eval();
  const visual = torch.randn([4, 4, 8]).mul(3).keep();
  const greedy = d.greedy(visual, 11);
  assert.deepEqual(d.beamSearch(visual, { beams: 1, maxLen: 11 }), greedy);
  assert.deepEqual(d.beamSearch(visual, { beams: 1, maxLen: 11, lengthPenalty: 0 }), greedy);
  torch.tidy(() => {
    for (let b = 0; b < 4; b++) {
      const seq = [tokenizer.clsId, ...greedy[b]!];
      const full = d
        .forward(visual.narrow(0, b, 1), ids([seq]))
        .argmax(-1)
        .squeeze(0)
        .toArray();
      const expected = greedy[b]!.length < 11 ? [...greedy[b]!, tokenizer.sepId] : greedy[b]!;
      assert.deepEqual(full.slice(0, expected.length), expected, `sample ${b}: argmax of the full pass`);
    }
  });
  const beams = d.beamSearch(visual, { beams: 4, maxLen: 11, lengthPenalty: 0 });
  for (let b = 0; b < 4; b++) {
    const v = visual.narrow(0, b, 1);
    const gain = sequenceLogProb(d, v, beams[b]!) - sequenceLogProb(d, v, greedy[b]!);
    assert.ok(gain >= -1e-4, `sample ${b}: beam log-prob below greedy by ${-gain}`);
    v.dispose();
  }
  visual.dispose();
  d.dispose();
});

test('beam search finds the better sequence greedy misses (constructed model), with HF length normalisation', () => {
  const BOS = 0,
    EOS = 1,
    A = 2,
    B = 3;
  const table: Record<string, number[]> = {
    // next-token probabilities after a prefix (last token)
    [BOS]: [0, 0.001, 0.55, 0.449],
    [A]: [0, 0.5, 0.25, 0.25],
    [B]: [0, 0.9, 0.05, 0.05],
  };
  const step = (prefixes: number[][]) => (parents: number[], tokens: number[]) => {
    const next = parents.map((p, i) => [...(prefixes[p] ?? []), tokens[i]!]);
    prefixes.splice(0, prefixes.length, ...next);
    return next.map((pre) => table[pre[pre.length - 1]!]!.map((p) => Math.log(Math.max(p, 1e-12))));
  };
  const run = (beams: number, lengthPenalty: number) =>
    beamSearchCore(step([]), { beams, maxLen: 4, lengthPenalty, bosId: BOS, eosId: EOS });
  assert.deepEqual(run(1, 0).tokens, [A]); // greedy: 0.55 · 0.5 = 0.275
  const best = run(2, 0);
  assert.deepEqual(best.tokens, [B]); // 0.449 · 0.9 = 0.404
  assert.ok(Math.abs(best.sumLogProb - Math.log(0.449 * 0.9)) < 1e-9);
  assert.ok(Math.abs(best.score - Math.log(0.449 * 0.9)) < 1e-9);
  // α = 1: the score divides by the generated length, EOS included (2 here)
  assert.ok(Math.abs(run(2, 1).score - Math.log(0.449 * 0.9) / 2) < 1e-9);
});

test('a tiny encoder + decoder memorise three reports: greedy decoding reproduces each exactly', () => {
  torch.manualSeed(4);
  const encoder = new ResNet3d({ depth: 10, widenFactor: 0.125, conv1Kernel: 3, noMaxPool: true });
  encoder.eval();
  const volumes = torch.randn([3, 1, 16, 16, 16]).keep();
  const visual = torch.noGrad(() => ReportDecoder.visualTokens(encoder.encode(volumes).featureMap)).keep();
  const d = new ReportDecoder(
    decoderConfig({ dModel: 32, ffn: 64, visualDim: visual.size(2), numVisualTokens: visual.size(1) }),
  );
  const { input, target } = encodeTargets(tokenizer, REPORTS, 24);
  input.keep();
  target.keep();
  const opt = new optim.AdamW(d.parameters(), { lr: 3e-3, weightDecay: 0 });
  let last = Infinity,
    steps = 0;
  for (; steps < 150 && last > 0.01; steps++) {
    last = torch.tidy(() => {
      const loss = teacherForcingLoss(d, visual, input, target);
      loss.backward();
      return loss.item();
    });
    opt.step();
    opt.zeroGrad();
  }
  d.eval();
  const expected = REPORTS.map((r) => tokenizer.encode(r, { addSpecialTokens: false }).inputIds);
  assert.deepEqual(d.greedy(visual, 23), expected, `final loss ${last} after ${steps} steps`);
  assert.deepEqual(d.beamSearch(visual, { beams: 3, maxLen: 23 }), expected);
  assert.deepEqual(
    d.greedy(visual, 23).map((g) => detokenize(tokenizer, g)),
    REPORTS.map((r) => r.toLowerCase()),
  );
  torch.dispose([volumes, visual, input, target]);
  d.dispose();
  encoder.dispose();
});

test('live tensors stay flat over training steps and decoding (frozen and fine-tuned encoder)', () => {
  torch.manualSeed(5);
  const encoder = new ResNet3d({ depth: 10, widenFactor: 0.125, conv1Kernel: 3, noMaxPool: true });
  const volumes = torch.randn([2, 1, 16, 16, 16]).keep();
  const N = torch.noGrad(() =>
    torch.tidy(() => ReportDecoder.visualTokens(encoder.eval().encode(volumes).featureMap).size(1)),
  );
  const d = new ReportDecoder(decoderConfig({ visualDim: encoder.outChannels, numVisualTokens: N, dropout: 0.1 }));
  const params = [...d.parameters(), ...encoder.parameters()];
  const opt = new optim.AdamW([
    { params: d.parameters(), lr: 1e-3 },
    { params: encoder.parameters(), lr: 1e-4 },
  ]);
  const counts: number[] = [];
  for (let s = 0; s < 6; s++) {
    const frozen = s % 2 === 0;
    if (frozen) encoder.eval();
    else encoder.train();
    d.train();
    torch.tidy(() => {
      const fm = frozen ? torch.noGrad(() => encoder.encode(volumes).featureMap) : encoder.encode(volumes).featureMap;
      const { input, target } = encodeTargets(tokenizer, REPORTS.slice(0, 2), 24);
      teacherForcingLoss(d, ReportDecoder.visualTokens(fm), input, target).backward();
    });
    optim.clipGradNorm(params, 1);
    opt.step();
    opt.zeroGrad();
    d.eval();
    torch.tidy(() => {
      const v = torch.noGrad(() => ReportDecoder.visualTokens(encoder.eval().encode(volumes).featureMap));
      d.greedy(v, 10);
      d.beamSearch(v, { beams: 2, maxLen: 10 });
    });
    counts.push(torch.memory().numTensors);
  }
  // the optimizer's state appears in the first two steps (decoder, then encoder); flat afterwards
  assert.deepEqual(counts.slice(2), Array(4).fill(counts[2]), `live tensors per step: ${counts.join(', ')}`);
  volumes.dispose();
  d.dispose();
  encoder.dispose();
});

test('clinical efficacy: micro / macro precision, recall, F1 as computed by hand (zero_division = 0)', () => {
  const row = (...pos: number[]) => EXTRACTED_LABELS.map((_, i) => (pos.includes(i) ? 1 : 0));
  // reference vs generated over two reports: label 0 TP+TP, label 1 FN, label 2 FP, label 3 TP+FP
  const ref = [row(0, 1, 3), row(0)];
  const gen = [row(0, 2, 3), row(0, 3)];
  const ce = clinicalEfficacy(ref, gen);
  // micro: TP 3, FP 2, FN 1 → P 3/5, R 3/4, F1 6/9
  assert.ok(Math.abs(ce.microPrecision - 0.6) < 1e-12);
  assert.ok(Math.abs(ce.microRecall - 0.75) < 1e-12);
  assert.ok(Math.abs(ce.microF1 - 2 / 3) < 1e-12);
  // per label: 0 → (1, 1, 1); 1 → (0, 0, 0); 2 → (0, 0, 0); 3 → (1/2, 1, 2/3); the other 14 → 0 (no support, none predicted)
  assert.deepEqual(
    ce.perLabel.slice(0, 4).map((p) => [p.precision, p.recall, p.f1]),
    [
      [1, 1, 1],
      [0, 0, 0],
      [0, 0, 0],
      [0.5, 1, 2 / 3],
    ],
  );
  assert.ok(Math.abs(ce.macroPrecision - 1.5 / 18) < 1e-12);
  assert.ok(Math.abs(ce.macroRecall - 2 / 18) < 1e-12);
  assert.ok(Math.abs(ce.macroF1 - 5 / 3 / 18) < 1e-12);
  assert.equal(ce.perLabel[3]!.label, EXTRACTED_LABELS[3]);
  assert.throws(() => clinicalEfficacy([row(0)], []), /1 reference rows but 0 generated rows/);
});

test('end to end on a tiny synthetic cache: trains, generates, scores, and resumes from its checkpoint', async () => {
  const cache = join(tmp, 'cache');
  await ensureCache(
    applyOverrides(loadConfig(fixture('pretrain', 'tiny.json')), [
      `data.cache=${cache}`,
      `data.preset=${fixture('pretrain', 'tiny-preset.json')}`,
    ]),
  );
  const tok = trainWordPiece(
    readCacheIndex(cache).entries.map((e) => e.report),
    { vocabSize: 300 },
  );
  const out = join(tmp, 'run');
  const options = {
    cacheDir: cache,
    epochs: 1,
    batchSize: 4,
    lr: 2e-3,
    freezeEncoder: true,
    maxLength: 40,
    beams: 2,
    seed: 0,
    limitTest: 2,
    outDir: out,
    decoder: { dModel: 32, layers: 1, heads: 2, ffn: 64, dropout: 0.1 },
  };
  const messages: string[] = [];
  const encoder = new ResNet3d({ depth: 10, widenFactor: 0.125, conv1Kernel: 3, noMaxPool: true });
  const before = torch.memory().numTensors;
  const first = await runReportGeneration(encoder, tok, { ...options, onProgress: (m) => messages.push(m) });
  assert.equal(first.trainLoss.length, 1);
  assert.equal(first.samples.length, 2);
  assert.equal(first.decoding.startsWith('beam search (2 beams'), true);
  for (const k of ['bleu1', 'bleu2', 'bleu3', 'bleu4', 'rougeL', 'meteor'] as const)
    assert.ok(first[k] >= 0 && first[k] <= 1, `${k} ${first[k]}`);
  assert.ok(first.clinical.microF1 >= 0 && first.clinical.microF1 <= 1);
  assert.equal(first.clinical.perLabel.length, 18);
  assert.equal(first.extractorAgreementOnReferences, 1);
  assert.equal(torch.memory().numTensors, before, 'no tensors left behind');

  // resume: a second run with more epochs continues from epoch 1
  messages.length = 0;
  const second = await runReportGeneration(encoder, tok, {
    ...options,
    epochs: 2,
    onProgress: (m) => messages.push(m),
  });
  assert.ok(
    messages.some((m) => /resumed from .*epoch 1/.test(m)),
    messages.join('\n'),
  );
  assert.equal(second.trainLoss.length, 2);
  assert.equal(second.trainLoss[0], first.trainLoss[0]);
  await assert.rejects(
    runReportGeneration(encoder, tok, { ...options, lr: 1e-3 }),
    /checkpoint made with other settings/,
  );
  encoder.dispose();
});
