// The TMA diagnostics of the swapped-prediction formulations (src/objectives/tma/diagnostics.ts): each pair's
// cross-entropy beside its oracle bound (a predictor equal to the code view) and its chance bound (that predictor
// rolled by one in the batch), and the codes' row entropy. Constructed scores pin the definitions; one step of each
// formulation shows the stats it reports.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/torch/index.js';
import { applyOverrides, loadConfig } from '../src/train/config.js';
import { buildT3dModel } from '../src/train/factory.js';
import { t3dLoss, type ObjectiveConfig } from '../src/objectives/t3d.js';
import { tmaLoss } from '../src/objectives/tma/shared.js';
import { codeBounds, codeRowEntropy, pairDiagnostics, roll } from '../src/objectives/tma/diagnostics.js';
import { fixture } from './helpers.js';

const tau = 0.1;
const close = (a: number, b: number, what: string, atol = 1e-10) =>
  assert.ok(Math.abs(a - b) <= atol, `${what}: ${a} vs ${b}`);

/** The stats of tmaLoss on these scores, codes from 'text', the given views predicting them. */
function diagnose(scores: Map<string, torch.Tensor>) {
  const pairs = [...scores.keys()].filter((v) => v !== 'text').map((v): [string, string] => [v, 'text']);
  const out = tmaLoss(scores, ['text'], { temperature: tau, pairs });
  const stats = pairDiagnostics(out.pairs, out.codes, (w) => scores.get(w)!, ['text'], tau);
  return { ...out, stats };
}

test('a predictor equal to the code view scores the oracle bound; rolled by one in the batch, the chance bound', () => {
  torch.tidy(() => {
    const g = new torch.Generator(5);
    const text = torch.randn([6, 8], { dtype: 'float64', generator: g });
    const { loss, codes, pairs, stats } = diagnose(
      new Map([
        ['text', text],
        ['global', text.clone()],
        ['local0', roll(text)],
        ['local1', roll(text)],
      ]),
    );
    assert.deepEqual(
      pairs.map((p) => `${p.predictor}>${p.codeView}`),
      ['global>text', 'local0>text', 'local1>text'],
    );
    close(pairs.reduce((a, p) => a + p.ce, 0) / 3, loss.item(), 'the pairs average to the loss');
    const { oracle, chance } = codeBounds(codes.get('text')!, text, tau);
    close(stats['ce.global>text']!, oracle, 'equal scores: CE = oracle (gap 0)');
    close(stats['ce.global>text.oracle']!, oracle, 'the oracle stat');
    close(stats['ce.local>text']!, chance!, 'rows rolled by one: CE = chance (local views averaged)');
    close(stats['ce.local>text.chance']!, chance!, 'the chance stat');
    close(stats['ce.global>text.chance']!, chance!, 'the bounds depend on the code view only');
    assert.ok(chance! > oracle, `these codes are sharp enough to tell patients apart: ${chance} > ${oracle}`);
    close(stats.codeRowEntropy!, codeRowEntropy(codes.get('text')!), 'codeRowEntropy of the code view');
    assert.deepEqual(Object.keys(stats).sort(), [
      'ce.global>text',
      'ce.global>text.chance',
      'ce.global>text.oracle',
      'ce.local>text',
      'ce.local>text.chance',
      'ce.local>text.oracle',
      'codeRowEntropy',
    ]);
    torch.dispose([...codes.values()]);
  });
});

test('on random inputs the bounds are just computed: finite, the oracle never below the row entropy, no order assumed', () => {
  torch.tidy(() => {
    const g = new torch.Generator(6);
    const views = ['text', 'global', 'local0'];
    const { codes, stats } = diagnose(new Map(views.map((v) => [v, torch.randn([5, 7], { generator: g })])));
    for (const [k, v] of Object.entries(stats)) assert.ok(Number.isFinite(v), `${k} = ${v}`);
    // CE(q, p) = H(q) + KL(q ‖ p): the oracle is at least the codes' row entropy
    assert.ok(stats['ce.global>text.oracle']! >= stats.codeRowEntropy! - 1e-5);
    // one sample: no other patient to roll to, so no chance bound
    const one = codeBounds(codes.get('text')!.narrow(0, 0, 1), torch.randn([1, 7], { generator: g }), tau);
    assert.equal(one.chance, undefined);
    torch.dispose([...codes.values()]);
  });
});

test('codeRowEntropy: log K for uniform codes, near 0 for one-hot-like codes', () => {
  torch.tidy(() => {
    const K = 8;
    close(codeRowEntropy(torch.full([4, K], 1 / K)), Math.log(K), 'uniform', 1e-6);
    const oneHot = torch
      .eye(K)
      .mul(1 - 1e-6)
      .add(1e-6 / K);
    assert.ok(codeRowEntropy(oneHot) < 1e-4, `one-hot-like: ${codeRowEntropy(oneHot)}`);
  });
});

test('fused, swapped and teacher report each pair with its bounds and the row entropy (one step, tiny model)', () => {
  const config = applyOverrides(loadConfig(fixture('pretrain', 'tiny.json')), ['model.textPooling="mean"']);
  const expected: Record<string, string[]> = {
    fused: ['global>text', 'local>text'],
    swapped: ['global>text', 'local>text', 'text>global'],
    teacher: ['local>global'],
  };
  for (const [formulation, names] of Object.entries(expected)) {
    torch.manualSeed(1);
    const model = buildT3dModel(config.model, [4, 4, 4], 40);
    torch.manualSeed(2);
    const teacher = formulation === 'teacher' ? buildT3dModel(config.model, [4, 4, 4], 40) : undefined;
    const c = config.objective;
    const tma = {
      ...c.tma,
      formulation,
      weight: 1,
      warmupSteps: 0,
      queue: 0,
      codeViews: ['text'],
      teacherMomentum: formulation === 'teacher' ? 0.9 : 0,
    } as ObjectiveConfig['tma'];
    const g = new torch.Generator(3);
    const stats = torch.tidy(() => {
      const x = torch.randn([3, 1, 4, 4, 4], { generator: g });
      const locals = [0, 1].map(() => torch.randn([3, 1, 2, 2, 2], { generator: g }));
      const inputIds = torch.tensor(new BigInt64Array([2n, 7n, 9n, 3n, 2n, 11n, 3n, 0n, 2n, 5n, 8n, 3n]), [3, 4]);
      const attentionMask = torch.tensor(new BigInt64Array([1n, 1n, 1n, 1n, 1n, 1n, 1n, 0n, 1n, 1n, 1n, 1n]), [3, 4]);
      const objective = { ...c, clip: { weight: 0 }, tma };
      return t3dLoss(model, { global: x, locals, inputIds, attentionMask }, objective, 10, undefined, teacher).stats;
    });
    const got = Object.keys(stats)
      .filter((k) => k.startsWith('ce.') && !k.endsWith('.oracle') && !k.endsWith('.chance'))
      .map((k) => k.slice(3))
      .sort();
    assert.deepEqual(got, names, formulation);
    for (const n of names) {
      for (const k of [`ce.${n}`, `ce.${n}.oracle`, `ce.${n}.chance`]) assert.ok(Number.isFinite(stats[k]), k);
      const rowEntropy = stats[`codeRowEntropy.${n.split('>')[1]}`] ?? stats.codeRowEntropy!;
      assert.ok(stats[`ce.${n}.oracle`]! >= rowEntropy - 1e-4, `${formulation} ${n}: oracle ≥ row entropy`);
    }
    assert.ok(stats.codeRowEntropy! >= 0 && stats.codeRowEntropy! <= Math.log(config.model.prototypes) + 1e-5);
    model.dispose();
    teacher?.dispose();
  }
});
