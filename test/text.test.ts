// Text layer: CSV, report sections/cleaning/sentences/augmentation, WordPiece against Hugging Face goldens
// (scripts/fixtures/make_text_fixtures.py), vocabulary training, and the errors bad inputs give.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../src/util/paths.js';
import { Rng } from '../src/util/rng.js';
import { CsvParser, csvRows, parseCsv, readCsvRows, toCsv } from '../src/text/csv.js';
import { augmentReport, cleanReport, reportSections, reportText, splitSentences } from '../src/text/report.js';
import { toBigInt64, WordPieceTokenizer, type WordPieceOptions } from '../src/text/wordpiece.js';
import { trainWordPiece } from '../src/text/wordpiece-trainer.js';
import { samplePatient } from '../src/data/synth/findings.js';
import { writeReport } from '../src/data/synth/reports.js';

const FIXTURES = join(packageRoot(), 'test', 'fixtures', 'text');
const VOCAB = join(FIXTURES, 'vocab.txt');

interface Expected {
  tokens: string[];
  ids: number[];
  decode: string;
  decodeWithSpecials: string;
}
interface Row {
  text?: string;
  ids: number[];
  attentionMask: number[];
  tokenTypeIds: number[];
  tokens?: string[];
}
interface Golden {
  configs: Record<string, WordPieceOptions>;
  cases: { text: string; expected: Record<string, Expected> }[];
  truncation: { maxLength: number; rows: Row[] };
  batchLongest: { texts: string[]; rows: Row[] };
  hfOnOurs: Record<string, number[][]>;
}
const golden = JSON.parse(readFileSync(join(FIXTURES, 'wordpiece_golden.json'), 'utf8')) as Golden;

function withTempDir(fn: (dir: string) => void | Promise<void>): Promise<void> | void {
  const dir = mkdtempSync(join(tmpdir(), 't3d-text-'));
  const done = () => rmSync(dir, { recursive: true, force: true });
  try {
    const r = fn(dir);
    if (r instanceof Promise) return r.finally(done);
    done();
  } catch (e) {
    done();
    throw e;
  }
}

// ---- WordPiece vs Hugging Face ----------------------------------------------------------------------------------

/** Every golden case of one configuration, collected so that one failure report lists all mismatches. */
function checkGolden(tok: WordPieceTokenizer, config: string): void {
  const bad: string[] = [];
  for (const c of golden.cases) {
    const want = c.expected[config]!;
    const got = tok.encode(c.text);
    const label = JSON.stringify(c.text).slice(0, 60);
    if (JSON.stringify(got.inputIds) !== JSON.stringify(want.ids))
      bad.push(`${label}: ids ${JSON.stringify(got.tokens)} ≠ HF ${JSON.stringify(want.tokens)}`);
    if (JSON.stringify(got.tokens) !== JSON.stringify(want.tokens)) bad.push(`${label}: tokens`);
    if (tok.decode(want.ids) !== want.decode)
      bad.push(`${label}: decode ${JSON.stringify(tok.decode(want.ids))} ≠ ${JSON.stringify(want.decode)}`);
    if (tok.decode(want.ids, { skipSpecialTokens: false }) !== want.decodeWithSpecials)
      bad.push(`${label}: decode with specials`);
  }
  assert.deepEqual(bad, [], `${config}: ${bad.length} mismatches with Hugging Face`);
}

test('golden: vocab.txt encodes and decodes as HF in every normaliser configuration', () => {
  assert.ok(golden.cases.length >= 40);
  for (const [config, options] of Object.entries(golden.configs)) {
    checkGolden(WordPieceTokenizer.fromVocabTxt(VOCAB, options), config);
  }
});

test('golden: tokenizer.json written by HF loads with its settings and encodes the same', () => {
  const tok = WordPieceTokenizer.fromTokenizerJson(join(FIXTURES, 'tokenizer.json'));
  assert.equal(tok.vocabSize, readFileSync(VOCAB, 'utf8').trimEnd().split('\n').length);
  assert.deepEqual(tok.normalizer, { cleanText: true, handleChineseChars: true, stripAccents: null, lowercase: true });
  assert.equal(tok.maxInputCharsPerWord, 100);
  checkGolden(tok, 'uncased');
});

test('golden: HF loads our tokenizer.json as the same tokenizer', () => {
  const ours = WordPieceTokenizer.fromVocabTxt(VOCAB, golden.configs.uncased);
  // Same structure as the file HF encoded (any format change needs the fixture script rerun).
  assert.deepEqual(ours.toTokenizerJson(), JSON.parse(readFileSync(join(FIXTURES, 'ours_tokenizer.json'), 'utf8')));
  for (const [config, options] of Object.entries(golden.configs)) {
    const tok = WordPieceTokenizer.fromVocabTxt(VOCAB, options);
    const roundTrip = WordPieceTokenizer.fromTokenizerJson({
      text: JSON.stringify(tok.toTokenizerJson()),
      source: config,
    });
    golden.hfOnOurs[config]!.forEach((ids, i) => {
      const text = golden.cases[i]!.text;
      assert.deepEqual(tok.encode(text).inputIds, ids, `${config}: ${JSON.stringify(text)}`);
      assert.deepEqual(roundTrip.encode(text).inputIds, ids, `${config} reloaded: ${JSON.stringify(text)}`);
    });
  }
});

test('golden: truncation and max_length padding match HF', () => {
  const tok = WordPieceTokenizer.fromVocabTxt(VOCAB);
  const { maxLength, rows } = golden.truncation;
  for (const r of rows) {
    const e = tok.encode(r.text!, { maxLength, padding: 'max_length', truncation: true });
    assert.deepEqual(
      [e.inputIds, e.attentionMask, e.tokenTypeIds, e.tokens],
      [r.ids, r.attentionMask, r.tokenTypeIds, r.tokens],
    );
  }
  const batch = tok.encodeBatch(
    rows.map((r) => r.text!),
    { maxLength, padding: 'max_length' },
  );
  assert.deepEqual(batch.shape, [rows.length, maxLength]);
  assert.deepEqual(
    [...batch.inputIds],
    rows.flatMap((r) => r.ids),
  );
  assert.deepEqual(
    [...batch.attentionMask],
    rows.flatMap((r) => r.attentionMask),
  );
  assert.deepEqual(
    batch.tokens,
    rows.map((r) => r.tokens),
  );
});

test('golden: a batch padded to its longest row matches HF; int64 copy', () => {
  const tok = WordPieceTokenizer.fromVocabTxt(VOCAB);
  const { texts, rows } = golden.batchLongest;
  const b = tok.encodeBatch(texts);
  assert.deepEqual(b.shape, [rows.length, rows[0]!.ids.length]);
  assert.deepEqual(
    [...b.inputIds],
    rows.flatMap((r) => r.ids),
  );
  assert.deepEqual(
    [...b.attentionMask],
    rows.flatMap((r) => r.attentionMask),
  );
  assert.deepEqual(
    [...b.tokenTypeIds],
    rows.flatMap((r) => r.tokenTypeIds),
  );
  assert.deepEqual(
    toBigInt64(b.inputIds),
    BigInt64Array.from(
      rows.flatMap((r) => r.ids),
      BigInt,
    ),
  );
  assert.deepEqual(tok.encodeBatch([]).shape, [0, 0]);
});

test('wordpiece: default truncation to modelMaxLength, no truncation on request, vocab.txt round trip', () =>
  withTempDir((dir) => {
    const tok = WordPieceTokenizer.fromVocabTxt(VOCAB, { modelMaxLength: 8 });
    const long = 'the lungs are clear and the heart is normal in size';
    assert.equal(tok.encode(long).inputIds.length, 8);
    assert.ok(tok.encode(long, { truncation: false }).inputIds.length > 8);
    assert.deepEqual(
      tok.encode(long, { addSpecialTokens: false, maxLength: 3 }).tokens,
      tok.tokenize(long).slice(0, 3),
    );
    assert.throws(
      () => tok.encodeBatch([long], { truncation: false, padding: 'max_length' }),
      /text 0 has \d+ tokens, more than maxLength 8/,
    );
    assert.throws(() => tok.encode('x', { maxLength: 1 }), /maxLength 1 leaves no room/);
    const path = join(dir, 'vocab.txt');
    tok.saveVocabTxt(path);
    assert.equal(readFileSync(path, 'utf8'), readFileSync(VOCAB, 'utf8'));
  }));

// ---- errors naming the input and the reason -----------------------------------------------------------------------

test('errors: missing vocab file, vocabulary without [UNK], bad ids', () =>
  withTempDir((dir) => {
    const missing = join(dir, 'missing.txt');
    assert.throws(() => WordPieceTokenizer.fromVocabTxt(missing), {
      message: `${missing}: cannot read vocabulary (ENOENT)`,
    });
    const noUnk = join(dir, 'no-unk.txt');
    writeFileSync(noUnk, '[PAD]\n[CLS]\n[SEP]\nlung\n');
    assert.throws(() => WordPieceTokenizer.fromVocabTxt(noUnk), {
      message: `${noUnk}: vocabulary has no unknown token "[UNK]"`,
    });
    const empty = join(dir, 'empty.txt');
    writeFileSync(empty, '');
    assert.throws(() => WordPieceTokenizer.fromVocabTxt(empty), { message: `${empty}: vocabulary is empty` });
    const tok = WordPieceTokenizer.fromVocabTxt(VOCAB);
    assert.throws(() => tok.decode([tok.vocabSize]), /decode: id \d+ is outside the vocabulary/);
  }));

test('errors: malformed tokenizer.json files are named with the reason', () =>
  withTempDir((dir) => {
    const good = JSON.parse(readFileSync(join(FIXTURES, 'tokenizer.json'), 'utf8')) as Record<string, any>;
    const write = (name: string, content: string) => {
      const p = join(dir, name);
      writeFileSync(p, content);
      return p;
    };
    const cases: [string, string, RegExp][] = [
      ['truncated.json', '{"model": {"type": "WordPiece"', /truncated\.json: not valid JSON/],
      [
        'bpe.json',
        JSON.stringify({ ...good, model: { ...good.model, type: 'BPE' } }),
        /bpe\.json: model\.type is "BPE"; only "WordPiece" is supported/,
      ],
      ['no-model.json', JSON.stringify({ version: '1.0' }), /no-model\.json: no "model" object/],
      [
        'gap.json',
        JSON.stringify({ ...good, model: { ...good.model, vocab: { '[UNK]': 0, '[CLS]': 1, '[SEP]': 3 } } }),
        /gap\.json: model\.vocab\["\[SEP\]"\] = 3; ids must be the integers 0\.\.2/,
      ],
      [
        'norm.json',
        JSON.stringify({ ...good, normalizer: { type: 'NFKC' } }),
        /norm\.json: normalizer "NFKC" is not supported/,
      ],
      [
        'pre.json',
        JSON.stringify({ ...good, pre_tokenizer: { type: 'Metaspace' } }),
        /pre\.json: pre_tokenizer "Metaspace" is not supported/,
      ],
      [
        'no-unk.json',
        JSON.stringify({ ...good, model: { ...good.model, unk_token: '<unk>' } }),
        /no-unk\.json: vocabulary has no unknown token "<unk>"/,
      ],
    ];
    for (const [name, content, message] of cases) {
      assert.throws(() => WordPieceTokenizer.fromTokenizerJson(write(name, content)), message);
    }
    const absent = join(dir, 'absent.json');
    assert.throws(() => WordPieceTokenizer.fromTokenizerJson(absent), {
      message: `${absent}: cannot read tokenizer.json (ENOENT)`,
    });
  }));

// ---- trainer -------------------------------------------------------------------------------------------------------

const TRAIN = [
  'Findings: Bilateral pleural effusion, more prominent on the right. A 3.5 mm nodule in the right upper lobe.',
  'No mediastinal lymphadenopathy. Heart size is normal. Ground-glass opacities in both lungs.',
  'Centrilobular emphysema in both upper lobes; bronchiectasis in the right middle lobe (approx. 12 mm).',
  'Impressions: Pneumonia? Consolidation with air bronchograms. Ödem, café, 肺.',
];

test('trainer: special tokens first, training words round-trip without [UNK], deterministic', () => {
  const tok = trainWordPiece(TRAIN, { vocabSize: 150, minFrequency: 1 });
  assert.deepEqual(tok.vocab.slice(0, 5), ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']);
  assert.ok(tok.vocabSize <= 150 && tok.vocabSize > 100, `vocab size ${tok.vocabSize}`);
  assert.equal(new Set(tok.vocab).size, tok.vocabSize, 'no duplicate tokens');
  for (const text of TRAIN) {
    const ids = tok.encode(text).inputIds;
    assert.ok(!ids.includes(tok.unkId), `[UNK] in ${text}`);
    // Uncased: lowercase, accents stripped; decode rejoins pieces and glues , . ? to the preceding word.
    const words = text
      .toLowerCase()
      .normalize('NFD')
      .replace(/\p{Mn}/gu, '')
      .match(/[\p{L}\p{N}]+|[^\s\p{L}\p{N}]/gu)!;
    assert.deepEqual(
      tok
        .decode(ids)
        .split(/[\s,.?]+/)
        .filter(Boolean),
      words.filter((w) => !/^[,.?]$/.test(w)),
    );
  }
  assert.deepEqual(trainWordPiece(TRAIN, { vocabSize: 150, minFrequency: 1 }).vocab, tok.vocab);
  // Frequent words become whole tokens.
  assert.deepEqual(tok.tokenize('lobe'), ['lobe']);
});

test('trainer: minFrequency stops merging; cased training keeps case; written vocab reloads', () =>
  withTempDir((dir) => {
    const base = trainWordPiece(TRAIN, { minFrequency: 1000 });
    assert.ok(
      base.vocab.slice(5).every((t) => [...t.replace(/^##/, '')].length === 1),
      'only characters when no pair is frequent enough',
    );
    const cased = trainWordPiece(TRAIN, { vocabSize: 200, minFrequency: 1, lowercase: false });
    assert.ok(cased.vocab.includes('F') && cased.tokenize('Findings').every((t) => t !== '[UNK]'));
    assert.deepEqual(
      cased.tokenize('Ödem'),
      cased.tokenize('Ödem').filter((t) => t !== '[UNK]'),
    );
    const path = join(dir, 'vocab.txt');
    cased.saveVocabTxt(path);
    const reloaded = WordPieceTokenizer.fromVocabTxt(path, { lowercase: false });
    assert.deepEqual(reloaded.encode(TRAIN[0]!).inputIds, cased.encode(TRAIN[0]!).inputIds);
    assert.throws(
      () => trainWordPiece(TRAIN, { specialTokens: ['[CLS]', '[SEP]', '[PAD]'] }),
      /trainWordPiece: vocabulary has no unknown token "\[UNK\]"/,
    );
  }));

// ---- CSV -----------------------------------------------------------------------------------------------------------

const TRICKY_CSV =
  '\ufeffVolumeName,Findings_EN,Impressions_EN\r\n' +
  'train_1_a_1.nii.gz,"Effusion, right; ""small"".\r\nSecond line.",Not given.\r\n' +
  '\r\n' +
  'train_2_a_1.nii.gz,,""\n' +
  'train_3_a_1.nii.gz,5" tube,"x"\r' +
  'train_4_a_1.nii.gz,last,no newline';

test('csv: quotes, escaped quotes, commas and newlines in fields, CRLF/LF/CR, BOM, blank lines', () => {
  assert.deepEqual(parseCsv(TRICKY_CSV), [
    ['VolumeName', 'Findings_EN', 'Impressions_EN'],
    ['train_1_a_1.nii.gz', 'Effusion, right; "small".\r\nSecond line.', 'Not given.'],
    ['train_2_a_1.nii.gz', '', ''],
    ['train_3_a_1.nii.gz', '5" tube', 'x'],
    ['train_4_a_1.nii.gz', 'last', 'no newline'],
  ]);
  assert.deepEqual(parseCsv('""\n'), [['']]);
  assert.deepEqual(parseCsv('a,\n'), [['a', '']]);
  assert.deepEqual(parseCsv(''), []);
});

test('csv: chunked parsing gives the same records whatever the chunk boundaries', () => {
  const whole = new CsvParser('x').push(TRICKY_CSV);
  for (const size of [1, 2, 3, 5, 7, 64]) {
    const p = new CsvParser('x');
    const got = [];
    for (let i = 0; i < TRICKY_CSV.length; i += size) got.push(...p.push(TRICKY_CSV.slice(i, i + size)));
    got.push(...p.end());
    assert.deepEqual(
      got.map((r) => r.fields),
      parseCsv(TRICKY_CSV),
      `chunk size ${size}`,
    );
    assert.deepEqual(
      got.map((r) => r.line),
      [1, 2, 5, 6, 7],
      `line numbers, chunk size ${size}`,
    );
  }
  assert.equal(whole.length, 4); // the last record is completed only by end()
});

test('csv: errors name the source and line', () => {
  assert.throws(() => parseCsv('a,b\n1,"open\n\nstill open', 'reports.csv'), {
    message: 'reports.csv: unterminated quoted field starting at line 2',
  });
  assert.throws(() => parseCsv('a,b\n"x"y,2\n', 'r.csv'), {
    message: 'r.csv: line 2: unexpected "y" after a closing quote',
  });
  assert.throws(() => csvRows('a,b\n1,2\n3\n', 'r.csv'), { message: 'r.csv: line 3 has 1 fields, the header has 2' });
  assert.throws(() => csvRows('a,a\n1,2\n', 'r.csv'), { message: 'r.csv: header names column "a" twice' });
});

test('csv: rows by header, toCsv round trip, streaming from a file', () =>
  withTempDir(async (dir) => {
    const rows = csvRows(TRICKY_CSV);
    assert.equal(rows.length, 4);
    assert.equal(rows[0]!.Findings_EN, 'Effusion, right; "small".\r\nSecond line.');
    const header = ['VolumeName', 'Findings_EN', 'Impressions_EN'];
    const text = toCsv(rows, header);
    assert.deepEqual(csvRows(text), rows);
    assert.equal(toCsv([{ a: 1, b: null }, { a: 'x,y' }], ['a', 'b'], '\r\n'), 'a,b\r\n1,\r\n"x,y",\r\n');
    const path = join(dir, 'reports.csv');
    writeFileSync(path, TRICKY_CSV);
    const streamed = [];
    for await (const row of readCsvRows(path)) streamed.push(row);
    assert.deepEqual(streamed, rows);
  }));

// ---- reports -------------------------------------------------------------------------------------------------------

test('report: sections map "Not given." / NaN / empty to \'\' and reject other tables', () => {
  assert.deepEqual(reportSections({ VolumeName: 'v', Findings_EN: 'Lungs clear.', Impressions_EN: 'Not given.' }), {
    findings: 'Lungs clear.',
    impressions: '',
  });
  assert.deepEqual(reportSections({ Findings_EN: ' nan ', Impressions_EN: 'NaN' }), { findings: '', impressions: '' });
  assert.deepEqual(reportSections({ Findings_EN: '', Impressions_EN: 'Not given' }), { findings: '', impressions: '' });
  assert.deepEqual(reportSections({ Findings_EN: 'None seen.' }), { findings: 'None seen.', impressions: '' });
  assert.throws(() => reportSections({ VolumeName: 'train_1_a_1.nii.gz', ZSpacing: '1.5' }), {
    message: 'train_1_a_1.nii.gz: no Findings_EN or Impressions_EN column (columns: VolumeName, ZSpacing)',
  });
});

test('report: cleaning normalises whitespace, quotes, dashes and list markers, keeps numbers and case', () => {
  assert.equal(
    cleanReport('  The  lesion\tmeasures 3.2 cm\u00a0 and 5 mm .  '),
    'The lesion measures 3.2 cm and 5 mm.',
  );
  assert.equal(
    cleanReport('\u201cGGO\u201d \u2018noted\u2019; range 3\u20135 mm \u2014 stable'),
    '"GGO" \'noted\'; range 3-5 mm - stable',
  );
  assert.equal(
    cleanReport('1. Bilateral pleural effusion. 2. Cardiomegaly. 3) Atelectasis.'),
    'Bilateral pleural effusion. Cardiomegaly. Atelectasis.',
  );
  assert.equal(
    cleanReport('Impression:\n1. Effusion\n2. Atelectasis\n- Nodule'),
    'Impression: Effusion. Atelectasis. Nodule',
  );
  assert.equal(
    cleanReport('Nodule of 1. 5 cm? no: 3.5 mm. Segment 6. 2 nodules.'),
    'Nodule of 1. 5 cm? no: 3.5 mm. Segment 6. 2 nodules.',
  );
  assert.equal(cleanReport('Zero\u200bwidth\u0000 gone'), 'Zerowidth gone');
  assert.equal(cleanReport(''), '');
});

test('report: training text from sections', () => {
  const s = { findings: '1. Lungs clear. ', impressions: 'Normal  study.' };
  assert.equal(reportText(s), 'Findings: Lungs clear. Impressions: Normal study.');
  assert.equal(reportText(s, { use: 'findings' }), 'Lungs clear.');
  assert.equal(reportText(s, { use: 'impressions' }), 'Normal study.');
  assert.equal(reportText({ findings: '', impressions: 'Normal.' }), 'Impressions: Normal.');
  assert.equal(reportText({ findings: '', impressions: '' }), '');
});

test('report: sentence splitting survives abbreviations, decimals and numbered stations', () => {
  assert.deepEqual(
    splitSentences(
      'A 3.5 mm nodule, approx. 2 cm from the pleura, e.g. in segment 6. No effusion. Dr. Smith reviewed it vs. the prior exam.',
    ),
    [
      'A 3.5 mm nodule, approx. 2 cm from the pleura, e.g. in segment 6.',
      'No effusion.',
      'Dr. Smith reviewed it vs. the prior exam.',
    ],
  );
  assert.deepEqual(
    splitSentences('Lymph node No. 4R measures 12 mm. No. Nodules, cysts, etc. Stable (i.e. unchanged). Done!'),
    ['Lymph node No. 4R measures 12 mm.', 'No.', 'Nodules, cysts, etc.', 'Stable (i.e. unchanged).', 'Done!'],
  );
  assert.deepEqual(
    splitSentences('Is it pneumonia? "Possibly." Follow-up in 3 mo. recommended. As in Smith et al. 2019.'),
    ['Is it pneumonia?', '"Possibly."', 'Follow-up in 3 mo. recommended.', 'As in Smith et al. 2019.'],
  );
  assert.deepEqual(splitSentences('lowercase text. still splits. approx. 5 mm.'), [
    'lowercase text.',
    'still splits.',
    'approx. 5 mm.',
  ]);
  assert.deepEqual(splitSentences('Heading\n\nBody text'), ['Heading', 'Body text']);
  assert.deepEqual(splitSentences('  '), []);
});

test("wordpiece: each token's sentence number follows splitSentences (decimals stay inside), -1 for specials and padding", () => {
  const tok = WordPieceTokenizer.fromVocabTxt(VOCAB);
  const texts = ['A 3.5 mm nodule is seen. No pleural effusion.', 'Heart size is normal.'];
  const enc = tok.encodeBatch(texts, { padding: 'longest' });
  const idx = tok.sentenceIndex(texts, enc);
  const [, L] = enc.shape;
  const pieces = (t: string) => tok.encode(t, { addSpecialTokens: false }).inputIds.length;
  const first = pieces('A 3.5 mm nodule is seen.'),
    second = pieces('No pleural effusion.'),
    third = pieces('Heart size is normal.');
  assert.deepEqual([...idx.subarray(0, L)], [-1, ...Array(first).fill(0), ...Array(second).fill(1), -1]);
  assert.deepEqual([...idx.subarray(L)], [-1, ...Array(third).fill(0), -1, ...Array(L - third - 2).fill(-1)]);
  const short = tok.encodeBatch(texts, { maxLength: 6, padding: 'longest' });
  assert.deepEqual(
    [...tok.sentenceIndex(texts, short).subarray(0, 6)],
    [-1, 0, 0, 0, 0, -1],
    'truncated: [SEP] stays special',
  );
  const rng = new Rng(5);
  const reports = Array.from({ length: 200 }, () => {
    const r = writeReport(samplePatient(rng), rng, 1.5);
    return `${r.findings} ${r.impressions}`;
  });
  const all = tok.encodeBatch(reports, { maxLength: 4096, padding: 'longest' });
  const rows = tok.sentenceIndex(reports, all);
  reports.forEach((r, b) =>
    assert.equal(Math.max(...rows.subarray(b * all.shape[1], (b + 1) * all.shape[1])) + 1, splitSentences(r).length, r),
  );
  assert.throws(() => tok.sentenceIndex(['one'], enc), /1 texts for a batch of 2/);
});

test('report: augmentation is deterministic per Rng stream and keeps minSentences', () => {
  const text = 'Findings: One. Two. Three. Four. Five. Impressions: Six. Seven.';
  const a = augmentReport(text, new Rng(7, 1, 42), { shuffleProb: 0.5, dropProb: 0.3 });
  assert.equal(augmentReport(text, new Rng(7, 1, 42), { shuffleProb: 0.5, dropProb: 0.3 }), a);
  const outputs = new Set(
    Array.from({ length: 20 }, (_, i) => augmentReport(text, new Rng(7, 1, i), { shuffleProb: 0.5, dropProb: 0.3 })),
  );
  assert.ok(outputs.size > 10, `${outputs.size} distinct augmentations of 20`);
  for (const out of outputs) {
    assert.match(out, /^Findings: .* Impressions: /);
    const [findings, impressions] = out.split(' Impressions: ');
    const kept = [...splitSentences(findings!.slice('Findings: '.length)), ...splitSentences(impressions!)];
    assert.ok(kept.every((s) => text.includes(s)) && new Set(kept).size === kept.length, out);
    assert.ok(splitSentences(impressions!).length >= 1, out);
  }
  for (let i = 0; i < 10; i++) {
    const out = augmentReport('One. Two. Three. Four.', new Rng(3, i), { dropProb: 1, minSentences: 2 });
    assert.equal(splitSentences(out).length, 2, out);
  }
  assert.equal(augmentReport('One. Two.', new Rng(1), { dropProb: 1, minSentences: 5, shuffleProb: 0 }), 'One. Two.');
  assert.equal(augmentReport('One. Two. Three.', new Rng(1), { dropProb: 0, shuffleProb: 0 }), 'One. Two. Three.');
  assert.throws(() => augmentReport('x', new Rng(1), { dropProb: 2 }), /augmentReport: dropProb 2 must be in \[0, 1\]/);
});
