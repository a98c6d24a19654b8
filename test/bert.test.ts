// BERT text encoder: Hugging Face checkpoints load strictly and give HF's outputs (fixtures made by transformers'
// BertModel, scripts/fixtures/make_bert_fixtures.py); masking, dropout, initialisation, gradients, errors, memory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../src/torch/index.js';
import { type Tensor } from '../src/torch/index.js';
import { BertModel, bertConfig, loadBertFromPretrained, readBertConfig } from '../src/models/bert.js';
import { WordPieceTokenizer, toBigInt64 } from '../src/text/wordpiece.js';
import { assertClose, fixture } from './helpers.js';

const dir = (name: string) => fixture('bert', name);
const expected = torch.loadSafetensors(fixture('bert', 'expected.safetensors')).tensors;
const exp = (name: string) => expected.get(name)!;
const { sentences } = JSON.parse(readFileSync(fixture('bert', 'expected.json'), 'utf8')) as { sentences: string[] };
const TOL = { atol: 1e-4, rtol: 1e-4 };

const tiny = loadBertFromPretrained(dir('tiny'));
const run = (m: BertModel, tokenTypes?: Tensor) => m.forward(exp('input_ids'), exp('attention_mask'), tokenTypes);

/** A scratch copy of a fixture folder, edited by `edit`, removed after `fn`. */
function withCopy(name: string, edit: (d: string) => void, fn: (d: string) => void): void {
  const d = mkdtempSync(join(tmpdir(), 'bert-'));
  try {
    for (const f of ['config.json', 'model.safetensors']) copyFileSync(join(dir(name), f), join(d, f));
    edit(d);
    fn(d);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
}
function editConfig(d: string, change: Record<string, unknown>): void {
  const cfg = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(d, 'config.json'), JSON.stringify({ ...cfg, ...change }));
}
function editWeights(d: string, change: (t: Map<string, Tensor>) => void): void {
  const { tensors } = torch.loadSafetensors(join(d, 'model.safetensors'));
  change(tensors);
  torch.saveSafetensors(join(d, 'model.safetensors'), tensors);
  torch.dispose([...tensors.values()]);
}

test('state-dict keys are exactly those of the HF model.safetensors; strict load; eval mode like from_pretrained', () => {
  const keys = torch.readSafetensorsHeader(join(dir('tiny'), 'model.safetensors')).entries.map((e) => e.name);
  assert.deepEqual([...tiny.stateDict().keys()].sort(), keys.sort());
  assert.equal(keys.length, 5 + 16 * 2 + 2);
  assert.ok(keys.includes('encoder.layer.1.attention.self.query.weight') && keys.includes('embeddings.LayerNorm.bias'));
  assert.equal(tiny.training, false);
  assert.equal(tiny.config.hidden_act, 'gelu');
  assert.equal(tiny.config.layer_norm_eps, 1e-12);
});

test("eval outputs equal HF's BertModel (padded batch, default and given token types)", () => {
  torch.tidy(() => {
    const out = run(tiny);
    assertClose(out.lastHiddenState, exp('last_hidden_state'), { ...TOL, what: 'last_hidden_state' });
    assertClose(out.pooled!, exp('pooler_output'), { ...TOL, what: 'pooler_output' });
    const pair = run(tiny, exp('pair.token_type_ids'));
    assertClose(pair.lastHiddenState, exp('pair.last_hidden_state'), { ...TOL, what: 'pair last_hidden_state' });
    assertClose(pair.pooled!, exp('pair.pooler_output'), { ...TOL, what: 'pair pooler_output' });
    assertClose(run(tiny, exp('token_type_ids')).lastHiddenState, out.lastHiddenState, {
      atol: 1e-6,
      what: 'explicit zero token types',
    });
  });
});

test("hidden_act 'gelu_new' (tanh GELU) model equals HF's", () => {
  const m = loadBertFromPretrained(dir('tiny-gelu-new'));
  assert.equal(m.config.hidden_act, 'gelu_new');
  torch.tidy(() => {
    const out = run(m);
    assertClose(out.lastHiddenState, exp('gelu_new.last_hidden_state'), { ...TOL, what: 'last_hidden_state' });
    assertClose(out.pooled!, exp('gelu_new.pooler_output'), { ...TOL, what: 'pooler_output' });
  });
  m.dispose();
});

test('BertForMaskedLM checkpoint: bert. prefix stripped, cls.* skipped, missing pooler only on request', () => {
  assert.throws(
    () => loadBertFromPretrained(dir('tiny-mlm')),
    /missing keys \[pooler\.dense\.weight, pooler\.dense\.bias\], unexpected keys \[\].*allowMissingPooler/,
  );
  const m = loadBertFromPretrained(dir('tiny-mlm'), { allowMissingPooler: true });
  torch.tidy(() =>
    assertClose(run(m).lastHiddenState, exp('last_hidden_state'), { ...TOL, what: 'last_hidden_state' }),
  );
  m.dispose();
});

test("older checkpoints' position_ids buffer is skipped; sharded model.safetensors.index.json loads", () => {
  withCopy(
    'tiny',
    (d) => editWeights(d, (t) => t.set('embeddings.position_ids', torch.arange(64).view(1, 64))),
    (d) => {
      const m = loadBertFromPretrained(d);
      torch.tidy(() => assertClose(run(m).pooled!, exp('pooler_output'), { ...TOL, what: 'pooled' }));
      m.dispose();
    },
  );
  withCopy(
    'tiny',
    (d) => {
      const { tensors } = torch.loadSafetensors(join(d, 'model.safetensors'));
      const shards = [new Map<string, Tensor>(), new Map<string, Tensor>()];
      const weightMap: Record<string, string> = {};
      for (const [name, t] of tensors) {
        const i = name.startsWith('encoder.layer.1.') || name.startsWith('pooler.') ? 1 : 0;
        shards[i]!.set(name, t);
        weightMap[name] = `model-0000${i + 1}-of-00002.safetensors`;
      }
      shards.forEach((s, i) => torch.saveSafetensors(join(d, `model-0000${i + 1}-of-00002.safetensors`), s));
      writeFileSync(join(d, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
      rmSync(join(d, 'model.safetensors'));
      torch.dispose([...tensors.values()]);
    },
    (d) => {
      const m = loadBertFromPretrained(d);
      torch.tidy(() => assertClose(run(m).pooled!, exp('pooler_output'), { ...TOL, what: 'pooled' }));
      m.dispose();
    },
  );
});

test('our WordPiece tokenizer gives the ids and mask HF recorded', () => {
  const tok = WordPieceTokenizer.fromVocabTxt(fixture('text', 'vocab.txt'));
  const batch = tok.encodeBatch(sentences);
  assert.deepEqual(batch.shape, exp('input_ids').shape);
  assert.deepEqual(Array.from(batch.inputIds), exp('input_ids').toArray());
  assert.deepEqual(Array.from(batch.attentionMask), exp('attention_mask').toArray());
  torch.tidy(() => {
    const ids = torch.tensor(toBigInt64(batch.inputIds), batch.shape);
    const mask = torch.tensor(toBigInt64(batch.attentionMask), batch.shape);
    assertClose(tiny.forward(ids, mask).lastHiddenState, exp('last_hidden_state'), {
      ...TOL,
      what: 'from our tokenizer',
    });
  });
});

test("padding does not change the real tokens' states", () => {
  const tok = WordPieceTokenizer.fromVocabTxt(fixture('text', 'vocab.txt'));
  torch.tidy(() => {
    const batched = run(tiny);
    sentences.forEach((s, i) => {
      const e = tok.encode(s);
      const n = e.inputIds.length;
      const alone = tiny.forward(
        torch.tensor(e.inputIds, [1, n], { dtype: 'int64' }),
        torch.ones([1, n], { dtype: 'int64' }),
      );
      assertClose(alone.lastHiddenState.select(0, 0), batched.lastHiddenState.select(0, i).narrow(0, 0, n), {
        atol: 1e-5,
        what: `sentence ${i}`,
      });
      assertClose(alone.pooled!.select(0, 0), batched.pooled!.select(0, i), { atol: 1e-5, what: `pooled ${i}` });
    });
  });
});

test('dropout only in train mode', () => {
  torch.tidy(() => {
    tiny.train();
    const a = run(tiny).lastHiddenState,
      b = run(tiny).lastHiddenState;
    tiny.eval();
    assert.ok(a.sub(b).abs().max().item() > 1e-3, 'two training passes differ');
    assert.equal(
      run(tiny).lastHiddenState.sub(run(tiny).lastHiddenState).abs().max().item(),
      0,
      'eval is deterministic',
    );
  });
});

test("initialisation follows HF's _init_weights", () => {
  const m = new BertModel(
    bertConfig({
      vocab_size: 500,
      hidden_size: 64,
      num_hidden_layers: 1,
      num_attention_heads: 4,
      intermediate_size: 128,
      pad_token_id: 3,
    }),
  );
  torch.tidy(() => {
    const sd = m.stateDict();
    for (const key of [
      'embeddings.word_embeddings.weight',
      'encoder.layer.0.intermediate.dense.weight',
      'pooler.dense.weight',
    ]) {
      const w = sd.get(key)!;
      assert.ok(Math.abs(w.std().item() - 0.02) < 0.002, `${key} std ${w.std().item()}`);
    }
    assert.equal(sd.get('embeddings.word_embeddings.weight')!.select(0, 3).abs().sum().item(), 0, 'padding row');
    for (const [key, t] of sd) {
      if (key.endsWith('.bias')) assert.equal(t.abs().sum().item(), 0, key);
      if (key.endsWith('LayerNorm.weight')) assert.equal(t.sub(1).abs().sum().item(), 0, key);
    }
  });
  m.dispose();
});

test('gradients reach the parameters (not the padding row); none when frozen or under noGrad', () => {
  const m = loadBertFromPretrained(dir('tiny')).train();
  const query = m.stateDict().get('encoder.layer.0.attention.self.query.weight')!;
  const words = m.stateDict().get('embeddings.word_embeddings.weight')!;
  torch.tidy(() => {
    const out = run(m);
    out.pooled!.sum().add(out.lastHiddenState.pow(2).mean()).backward();
    assert.ok(query.grad!.abs().sum().item() > 0, 'query weight has a gradient');
    assert.equal(words.grad!.select(0, 0).abs().sum().item(), 0, 'no gradient to the [PAD] row');
  });
  m.zeroGrad();
  m.freeze();
  torch.tidy(() => {
    const out = run(m);
    assert.equal(out.lastHiddenState.requiresGrad, false);
    assert.equal(out.pooled!.requiresGrad, false);
    assert.equal(query.grad, undefined);
  });
  m.freeze(false);
  torch.tidy(() => torch.noGrad(() => assert.equal(run(m).pooled!.requiresGrad, false)));
  m.dispose();
});

test('no tensor leaks over repeated forwards (eval, train + backward, noGrad)', () => {
  const before = torch.memory().numTensors;
  for (let i = 0; i < 5; i++) {
    torch.tidy(() => {
      run(tiny);
    });
    torch.noGrad(() =>
      torch.tidy(() => {
        run(tiny);
      }),
    );
    tiny.train();
    torch.tidy(() => run(tiny).pooled!.sum().backward());
    tiny.eval();
    tiny.zeroGrad();
    assert.equal(torch.memory().numTensors, before, `after round ${i}`);
  }
  const out = run(tiny); // outside any scope: the caller owns exactly the two outputs
  assert.equal(torch.memory().numTensors, before + 2);
  torch.dispose(out);
});

test('config errors are clear and name the file', () => {
  withCopy(
    'tiny',
    (d) => editConfig(d, { hidden_size: 30 }),
    (d) => {
      assert.throws(
        () => loadBertFromPretrained(d),
        (e: Error) =>
          e.message.startsWith(join(d, 'config.json')) &&
          /hidden_size 30 is not a multiple of num_attention_heads 4/.test(e.message),
      );
    },
  );
  withCopy(
    'tiny',
    (d) => writeFileSync(join(d, 'config.json'), '{"hidden_size": 32,'),
    (d) => {
      assert.throws(() => loadBertFromPretrained(d), /config\.json: not valid JSON/);
    },
  );
  withCopy(
    'tiny',
    (d) => rmSync(join(d, 'config.json')),
    (d) => {
      assert.throws(() => loadBertFromPretrained(d), /config\.json: cannot read BERT config \(ENOENT\)/);
    },
  );
  const path = join(dir('tiny'), 'config.json');
  assert.equal(readBertConfig(path).vocab_size, 700);
  assert.throws(
    () => bertConfig({ hidden_act: 'swish' }, path),
    /config\.json: "hidden_act" must be one of gelu, gelu_new, gelu_pytorch_tanh, got "swish"/,
  );
  assert.throws(() => bertConfig({ num_hidden_layers: 0 }), /"num_hidden_layers" must be an integer ≥ 1, got 0/);
  assert.throws(() => bertConfig({ hidden_dropout_prob: 1 }), /"hidden_dropout_prob" must be a number in \[0, 1\)/);
  assert.throws(() => bertConfig({ pad_token_id: 30522 }), /"pad_token_id" must be null or an integer/);
  assert.throws(
    () => bertConfig({ position_embedding_type: 'relative_key' }),
    /position_embedding_type "relative_key" is not supported/,
  );
  assert.throws(() => bertConfig({ is_decoder: true }), /decoder BERTs/);
  assert.equal(bertConfig({ initializer_range: null, pad_token_id: null }).initializer_range, 0.02);
});

test('weight errors: missing and unexpected keys, shape mismatch, no safetensors file', () => {
  withCopy(
    'tiny',
    (d) =>
      editWeights(d, (t) => {
        t.get('encoder.layer.1.output.dense.bias')!.dispose();
        t.delete('encoder.layer.1.output.dense.bias');
        t.set('encoder.layer.2.output.dense.bias', torch.zeros([32]));
      }),
    (d) => {
      assert.throws(
        () => loadBertFromPretrained(d),
        /weights do not match BertModel: missing keys \[encoder\.layer\.1\.output\.dense\.bias\], unexpected keys \[encoder\.layer\.2\.output\.dense\.bias\]/,
      );
    },
  );
  withCopy(
    'tiny',
    (d) => editConfig(d, { vocab_size: 800 }),
    (d) => {
      assert.throws(
        () => loadBertFromPretrained(d),
        /'embeddings\.word_embeddings\.weight' has shape \[700, 32\] but .* \[800, 32\]/,
      );
    },
  );
  withCopy(
    'tiny',
    (d) => {
      rmSync(join(d, 'model.safetensors'));
      writeFileSync(join(d, 'pytorch_model.bin'), '');
    },
    (d) => {
      assert.throws(() => loadBertFromPretrained(d), /no model\.safetensors; it has pytorch_model\.bin/);
    },
  );
});

test('input errors are clear', () => {
  torch.tidy(() => {
    const ids = torch.zeros([1, 65], { dtype: 'int64' });
    assert.throws(
      () => tiny.forward(ids, torch.onesLike(ids)),
      /sequence length 65 exceeds max_position_embeddings 64/,
    );
    const short = torch.zeros([2, 5], { dtype: 'int64' });
    assert.throws(
      () => tiny.forward(short, torch.ones([2, 4])),
      /attentionMask must have the shape of inputIds \[2, 5\], got \[2, 4\]/,
    );
    assert.throws(
      () => tiny.forward(torch.zeros([2, 5]), torch.ones([2, 5])),
      /inputIds must be a \(batch, length\) int64 tensor, got float32/,
    );
  });
});
