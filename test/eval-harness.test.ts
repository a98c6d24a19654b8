// The evaluation harness: classification report (thresholds from validation, macro over defined labels,
// bootstrap CIs), retrieval report, the study table's pooled and paired bootstraps, and `t3d eval all`
// end to end on a tiny pre-trained run (every record, summary.md, the HTML report, resume).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { classificationReport } from '../src/eval/metrics/classification-report.js';
import { retrievalReport } from '../src/eval/tasks/retrieval.js';
import { collectStudy, noiseVerdict, studyMarkdown, studyTable } from '../src/eval/report/compare.js';
import { headlines } from '../src/eval/report/headlines.js';
import { type EvalRecord } from '../src/eval/task.js';
import { Rng } from '../src/util/rng.js';
import { packageRoot } from '../src/util/paths.js';
import { fixture } from './helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 't3d-eval-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** n volumes × 3 labels: label 0 separable, label 1 noisy, label 2 never positive. */
function scored(n: number, seed: number, noise: number): { scores: number[][]; labels: number[][] } {
  const rng = new Rng(seed);
  const labels = Array.from({ length: n }, (_, i) => [i % 2, rng.bool(0.4) ? 1 : 0, 0]);
  const scores = labels.map((y) => [
    0.2 + 0.6 * y[0]! + rng.uniform(-0.1, 0.1),
    y[1]! * 0.2 + rng.uniform(0, noise),
    rng.next(),
  ]);
  return { scores, labels };
}

test('classification report: thresholds from validation, macro over labels with both classes, CIs around the estimate', () => {
  const r = classificationReport(['sep', 'noisy', 'absent'], scored(120, 1, 1), scored(60, 2, 1), {
    resamples: 300,
    seed: 3,
  });
  assert.equal(r.labelsCounted, 2);
  assert.equal(r.perLabel[0]!.auroc, 1);
  assert.equal(
    r.perLabel[0]!.f1,
    1,
    'a validation threshold between the classes classifies the separable test label perfectly',
  );
  assert.ok(r.perLabel[0]!.threshold > 0.3 && r.perLabel[0]!.threshold < 0.9);
  assert.ok(Number.isNaN(r.perLabel[2]!.auroc));
  assert.ok(Math.abs(r.macro.auroc - (r.perLabel[0]!.auroc + r.perLabel[1]!.auroc) / 2) < 1e-12);
  for (const m of ['auroc', 'f1', 'accuracy', 'ap'] as const) {
    const [lo, hi] = r.macroCi[m];
    assert.ok(lo <= r.macro[m] + 1e-9 && r.macro[m] <= hi + 1e-9, `${m}: ${r.macro[m]} within [${lo}, ${hi}]`);
    assert.ok(hi - lo > 0 && hi - lo < 0.4, `${m}: CI width ${hi - lo}`);
  }
  assert.equal(r.roc[2]!.fpr.length, 0);
  assert.deepEqual(
    classificationReport(['sep', 'noisy', 'absent'], scored(120, 1, 1), scored(60, 2, 1), { resamples: 300, seed: 3 })
      .macroCi,
    r.macroCi,
    'seeded',
  );
  assert.throws(
    () => classificationReport(['a'], { scores: [[1], [0]], labels: [[1]] }, { scores: [], labels: [] }),
    /test has 2 score rows but 1 label rows/,
  );
});

test('retrieval report: identical embeddings give perfect recall; reversed ones the worst rank', () => {
  const n = 12;
  const emb = Array.from({ length: n }, (_, i) => Array.from({ length: n }, (__, j) => (i === j ? 1 : 0)));
  const labels = Array.from({ length: n }, (_, i) => [i % 2, i % 3 === 0 ? 1 : 0]);
  const r = retrievalReport(emb, emb, labels, { resamples: 200 });
  assert.equal(r.reportToVolume.recall['R@1'], 1);
  assert.equal(r.volumeToReport.medianRank, 1);
  assert.deepEqual(r.reportToVolume.recallCi['R@1'], [1, 1]);
  assert.equal(r.curve.reportToVolume[0], 1);
  const shifted = emb.map((_, i) => emb[(i + 1) % n]!);
  const w = retrievalReport(emb, shifted, labels, { resamples: 200 });
  assert.equal(w.reportToVolume.recall['R@1'], 0);
  assert.ok(w.reportToVolume.recall['R@10']! < 1);
  // the crop-scale record's headlines are its own, not the global view's under the same key
  const meta = (variant: string) => ({ task: 'retrieval', variant }) as EvalRecord['meta'];
  const keys = (variant: string, rep: typeof r) =>
    headlines({ meta: meta(variant), result: { ...rep, names: [] } }).map((h) => [h.key, h.value]);
  const [globalKeys, cropKeys] = [keys('', r), keys('crop', w)];
  assert.ok(globalKeys.some(([k, v]) => k === 'retrieval/r2v R@1' && v === 1));
  assert.ok(cropKeys.some(([k, v]) => k === 'retrieval-crop/r2v R@1' && v === 0));
  assert.ok(!cropKeys.some(([k]) => String(k).startsWith('retrieval/')));
});

function writeStudy(root: string, methods: Record<string, number>): void {
  for (const [method, noise] of Object.entries(methods)) {
    for (const seed of [0, 1, 2]) {
      const test = scored(150, 100 + seed, noise);
      // label 1 anti-correlated in validation: its Youden threshold is +Infinity, which JSON stores as null
      const val = scored(60, 200 + seed, noise);
      val.scores = val.scores.map((r) => [r[0]!, -r[1]! - 1, r[2]!]);
      const rep = classificationReport(['sep', 'noisy', 'absent'], test, val, { resamples: 100 });
      assert.equal(rep.perLabel[1]!.threshold, Infinity);
      const dir = join(root, `${method}-s${seed}`, 'eval');
      mkdirSync(dir, { recursive: true });
      const names = test.labels.map((_, i) => `valid_${i}`);
      writeFileSync(
        join(dir, 'zeroshot.json'),
        JSON.stringify({ meta: { task: 'zeroshot', variant: '' }, result: { ...rep, test: { names, ...test } } }),
      );
    }
  }
}

test('study table: mean ± sd over seeds, pooled CI, and a paired difference that exceeds noise only when real', () => {
  const clear = join(tmp, 'study-clear');
  writeStudy(clear, { 'clip-only': 1, t3d: 0.15 });
  const methods = collectStudy(clear);
  for (const h of methods[1]!.runs[0]!.headlines.values()) {
    if (h.resample)
      assert.ok(
        Math.abs(h.resample(Int32Array.from(h.names!, (_, i) => i)) - h.value) < 1e-12,
        `${h.key}: recomputed on all test volumes = the recorded value`,
      );
  }
  const t = studyTable(methods, { resamples: 300 });
  const d = t.diffs.find((x) => x.key === 'zeroshot/auroc')!;
  assert.ok(d.diff > 0.1 && d.exceedsNoise, `clear gain: ${JSON.stringify(d)}`);
  assert.equal(noiseVerdict(d), 'better');
  assert.equal(noiseVerdict({ ...d, key: 'retrieval/r2v median rank' }), 'worse', 'a higher rank is worse');
  assert.equal(noiseVerdict({ ...d, diff: -d.diff, ci: [-d.ci[1], -d.ci[0]] }), 'worse');
  assert.match(
    studyMarkdown(methods, t, 'x'),
    /\| zeroshot\/auroc \| 0\.\d{3} \| \[0\.\d{3}, 0\.\d{3}\] \| yes: t3d better \|/,
  );
  const row = t.rows.find((r) => r.key === 'zeroshot/auroc' && r.method === 't3d')!;
  assert.equal(row.perSeed.length, 3);
  assert.ok(row.ci && row.ci[0] <= row.mean && row.mean <= row.ci[1]);
  const same = join(tmp, 'study-same');
  writeStudy(same, { 'clip-only': 1, t3d: 1 });
  const d0 = studyTable(collectStudy(same), { resamples: 300 }).diffs.find((x) => x.key === 'zeroshot/auroc')!;
  assert.equal(d0.diff, 0);
  assert.equal(d0.exceedsNoise, false);
});

test('a label subset gets its own macro AUROC (per-volume, resampled, in the paired table); unknown labels add nothing', () => {
  const clear = join(tmp, 'study-clear');
  const rec = JSON.parse(readFileSync(join(clear, 't3d-s0', 'eval', 'zeroshot.json'), 'utf8')) as {
    result: { perLabel: { auroc: number }[] };
  };
  const noisy = collectStudy(clear, 'eval', { name: 'fine', labels: ['noisy'] });
  const h = noisy.find((m) => m.name === 't3d')!.runs[0]!.headlines.get('zeroshot/auroc fine')!;
  assert.ok(
    Math.abs(h.value - rec.result.perLabel[1]!.auroc) < 1e-12,
    `${h.value} = the label's own AUROC ${rec.result.perLabel[1]!.auroc}`,
  );
  assert.ok(Math.abs(h.resample!(Int32Array.from(h.names!, (_, i) => i)) - h.value) < 1e-12);
  const both = collectStudy(clear, 'eval', { name: 'fine', labels: ['sep', 'absent'] })
    .find((m) => m.name === 't3d')!
    .runs[0]!.headlines.get('zeroshot/auroc fine')!;
  assert.equal(both.value, 1, "'absent' has no positives: only the separable label counts");
  assert.ok(studyTable(noisy, { resamples: 100 }).diffs.some((d) => d.key === 'zeroshot/auroc fine'));
  assert.equal(
    collectStudy(clear, 'eval', { name: 'fine', labels: ['unknown'] })[0]!.runs[0]!.headlines.has(
      'zeroshot/auroc fine',
    ),
    false,
  );
});

test('t3d eval all on a tiny pre-trained run: every record, summary.md, the HTML report, and a rerun resumes', () => {
  const cli = join(packageRoot(), 'dist', 'src', 'app', 'cli.js');
  const cache = join(tmp, 'cache'),
    run = join(tmp, 'run');
  const pre = spawnSync(
    'node',
    [
      cli,
      'pretrain',
      '--config',
      fixture('pretrain', 'tiny.json'),
      '--set',
      `data.cache=${cache}`,
      '--set',
      `data.preset=${fixture('pretrain', 'tiny-preset.json')}`,
      '--set',
      'data.synth={"count":30,"seed":0,"validFraction":0.3}',
      '--steps',
      '2',
      '--out',
      run,
    ],
    { encoding: 'utf8' },
  );
  assert.equal(pre.status, 0, pre.stderr);
  const evalArgs = [cli, 'eval', 'all', '--checkpoint', run, '--config', fixture('eval', 'tiny-eval.json')];
  const r = spawnSync('node', evalArgs, { encoding: 'utf8' });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  const out = join(run, 'eval');
  const files = readdirSync(out)
    .filter((f) => f.endsWith('.json'))
    .sort();
  assert.deepEqual(files, [
    'finetune-100pct.json',
    'probe-100pct.json',
    'reportgen.json',
    'retrieval.json',
    'segmentation-frozen-100pct.json',
    'zeroshot.json',
  ]);
  const zs = JSON.parse(readFileSync(join(out, 'zeroshot.json'), 'utf8')) as {
    meta: Record<string, unknown>;
    result: { labelsCounted: number; macro: { auroc: number } };
  };
  for (const k of ['evalSeed', 'pretrainSeed', 'checkpointId', 'configHash', 'evalConfigHash'])
    assert.ok(zs.meta[k] !== undefined, `meta.${k}`);
  assert.ok(zs.result.labelsCounted > 0 && zs.result.macro.auroc >= 0 && zs.result.macro.auroc <= 1);
  const md = readFileSync(join(out, 'summary.md'), 'utf8');
  assert.match(md, /zeroshot\/auroc \| \d\.\d{3} \[/);
  assert.match(md, /reportgen\/BLEU-1/);
  const html = readFileSync(join(out, 'report.html'), 'utf8');
  assert.match(html, /<svg/);
  assert.match(html, /data:image\/png;base64,/);
  assert.doesNotMatch(html, /<script|https?:\/\/(?!www\.w3\.org)/, 'self-contained: no scripts, no external resources');
  const mtime = statSync(join(out, 'zeroshot.json')).mtimeMs;
  const again = spawnSync('node', evalArgs, { encoding: 'utf8' });
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stdout, /zeroshot: already done/);
  assert.equal(statSync(join(out, 'zeroshot.json')).mtimeMs, mtime);
  const two = join(tmp, 'two-labels');
  const sub = spawnSync(
    'node',
    [
      cli,
      'eval',
      'zeroshot',
      '--checkpoint',
      run,
      '--config',
      fixture('eval', 'tiny-eval.json'),
      '--labels',
      'Cardiomegaly,Lung nodule',
      '--out',
      two,
    ],
    { encoding: 'utf8' },
  );
  assert.equal(sub.status, 0, sub.stderr);
  const subRec = JSON.parse(readFileSync(join(two, 'zeroshot.json'), 'utf8')) as {
    result: { labelNames: string[]; test: { labels: number[][] } };
  };
  assert.deepEqual(subRec.result.labelNames, ['Cardiomegaly', 'Lung nodule']);
  assert.equal(subRec.result.test.labels[0]!.length, 2);
  const unknown = spawnSync(
    'node',
    [cli, 'eval', 'zeroshot', '--checkpoint', run, '--labels', 'Cardiomegaly,Gout', '--out', two],
    { encoding: 'utf8' },
  );
  assert.equal(unknown.status, 1);
  assert.match(unknown.stderr, /'Gout' not among the cache's labels/);
  const bad = spawnSync('node', [cli, 'eval', 'nonsense', '--checkpoint', run], { encoding: 'utf8' });
  assert.equal(bad.status, 2, 'a wrong command line exits with 2');
  assert.match(bad.stderr, /first argument must be one of zeroshot, retrieval, probe/);
});

test('t3d demo runs the whole pipeline (T3D and CLIP-only pre-training, zero-shot and retrieval, one report) and resumes', () => {
  const cli = join(packageRoot(), 'dist', 'src', 'app', 'cli.js');
  const out = join(tmp, 'demo');
  const args = [
    cli,
    'demo',
    '--config',
    fixture('pretrain', 'tiny.json'),
    '--set',
    `data.cache=${join(tmp, 'cache')}`,
    '--set',
    `data.preset=${fixture('pretrain', 'tiny-preset.json')}`,
    '--set',
    'data.synth={"count":30,"seed":0,"validFraction":0.3}',
    '--steps',
    '2',
    '--out',
    out,
  ];
  const r = spawnSync('node', args, { encoding: 'utf8' });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  for (const name of ['t3d', 'clip-only']) {
    assert.match(
      r.stdout,
      new RegExp(
        `^  ${name} +zero-shot macro-AUROC \\d\\.\\d{3} \\[95 % CI \\d\\.\\d{3}, \\d\\.\\d{3}\\] · report→volume R@1 \\d\\.\\d{3} R@5`,
        'm',
      ),
    );
    assert.ok(existsSync(join(out, `${name}-s0`, 'eval', 'zeroshot.json')));
  }
  const clipCfg = JSON.parse(readFileSync(join(out, 'clip-only-s0', 'config.json'), 'utf8')) as {
    objective: { tma: { weight: number } };
    data: { views: { numLocal: number } };
  };
  assert.equal(clipCfg.objective.tma.weight, 0);
  assert.equal(clipCfg.data.views.numLocal, 0);
  const html = readFileSync(join(out, 'report.html'), 'utf8');
  for (const h of [
    'Side by side: clip-only, t3d',
    't3d − clip-only, paired',
    'Pre-training',
    'Zero-shot classification',
    'Cross-modal retrieval',
  ])
    assert.ok(html.includes(`<h2>${h}</h2>`), h);
  assert.match(html, /Chance is a macro-AUROC of 0\.5/);
  const again = spawnSync('node', args, { encoding: 'utf8' });
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stdout, /resumed from .*t3d-s0.*step-00000002/);
  assert.match(again.stdout, /zeroshot: already done/);
});

test('t3d analyze: a NIfTI file and the same case as a DICOM series give the probabilities the zero-shot evaluation computed from the cache', () => {
  const cli = join(packageRoot(), 'dist', 'src', 'app', 'cli.js');
  const run = join(tmp, 'demo', 't3d-s0');
  const rec = JSON.parse(readFileSync(join(run, 'eval', 'zeroshot.json'), 'utf8')) as {
    result: {
      labelNames: string[];
      perLabel: { threshold: number | null }[];
      test: { names: string[]; scores: number[][] };
    };
  };
  const name = rec.result.test.names[0]!;
  const nifti = join(
    tmp,
    'cache-source',
    'dataset',
    'valid',
    name.split('_').slice(0, 2).join('_'),
    name.split('_').slice(0, 3).join('_'),
    `${name}.nii.gz`,
  );
  const outFile = join(tmp, 'analysis.json');
  const r = spawnSync('node', [cli, 'analyze', nifti, '--checkpoint', run, '--intercept', '-1024', '--out', outFile], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /finding +prob\. +thresh\. +sens\. +spec\. +PPV +call/);
  assert.match(r.stdout, /thresholds: Youden's J on validation volumes/);
  type Analysis = {
    findings: { label: string; probability: number; threshold: number | string | null; positive: boolean }[];
    embedding: number[];
  };
  const a = JSON.parse(readFileSync(outFile, 'utf8')) as Analysis;
  assert.deepEqual(
    a.findings.map((f) => f.label),
    rec.result.labelNames,
  );
  const expected = rec.result.test.scores[0]!;
  a.findings.forEach((f, l) => {
    assert.ok(
      Math.abs(f.probability - expected[l]!) < 1e-5,
      `${f.label}: ${f.probability} vs the evaluation's ${expected[l]}`,
    );
    const t = rec.result.perLabel[l]!.threshold;
    assert.equal(f.threshold, t === null ? 'Infinity' : t);
    assert.equal(f.positive, t !== null && f.probability >= t);
  });
  assert.ok(Math.abs(Math.hypot(...a.embedding) - 1) < 1e-5, 'unit-norm embedding');
  assert.match(r.stdout, /zero-shot screening signals/);
  assert.match(r.stdout, /they call \d+\.\d findings per volume against \d+\.\d reference labels/);
  // --specificity 0.9: per label the lowest threshold with validation specificity ≥ 0.9, rated on the test volumes
  const strict = spawnSync(
    'node',
    [cli, 'analyze', nifti, '--checkpoint', run, '--intercept', '-1024', '--specificity', '0.9', '--json'],
    { encoding: 'utf8' },
  );
  assert.equal(strict.status, 0, strict.stderr);
  type Rated = { threshold: number | string | null; sensitivity: number | null; specificity: number | null };
  const sa = JSON.parse(strict.stdout) as { findings: Rated[]; operatingPoint: { rule: string } };
  assert.match(sa.operatingPoint.rule, /specificity ≥ 0\.9/);
  const full = rec.result as unknown as {
    validation: { scores: number[][]; labels: number[][] };
    test: { scores: number[][]; labels: number[][] };
  };
  sa.findings.forEach((f, l) => {
    const vy = full.validation.labels.map((y) => y[l]!);
    if (!vy.some(Boolean) || vy.every(Boolean)) return assert.equal(f.threshold, null);
    const t = f.threshold === 'Infinity' ? Infinity : (f.threshold as number);
    const vs = full.validation.scores.map((s) => s[l]!);
    const negs = vs.filter((_, i) => !vy[i]);
    assert.ok(negs.filter((v) => v < t).length / negs.length >= 0.9, `${l}: validation specificity below 0.9`);
    // nothing lower reaches it: the next lower validation score would call one negative too many
    const lower = vs.filter((v) => v < t);
    if (lower.length) {
      const next = Math.max(...lower);
      assert.ok(negs.filter((v) => v < next).length / negs.length < 0.9, `${l}: threshold not the lowest`);
    }
    const ty = full.test.labels.map((y) => y[l]!);
    const called = full.test.scores.map((s) => s[l]! >= t);
    const tn = ty.filter((y, i) => !y && !called[i]).length;
    if (ty.some((y) => !y)) assert.equal(f.specificity, tn / ty.filter((y) => !y).length);
  });
  const bad = spawnSync('node', [cli, 'analyze', nifti, '--checkpoint', run, '--specificity', '1.5'], {
    encoding: 'utf8',
  });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--specificity must be between 0 and 1/);
  // the same case written as a DICOM series (same generator, seed and preset)
  const dicomSrc = join(tmp, 'dicom-source');
  const s = spawnSync(
    'node',
    [
      cli,
      'synth',
      '--out',
      dicomSrc,
      '--count',
      '30',
      '--seed',
      '0',
      '--valid-fraction',
      '0.3',
      '--preset',
      fixture('pretrain', 'tiny-preset.json'),
      '--dicom',
    ],
    { encoding: 'utf8' },
  );
  assert.equal(s.status, 0, s.stderr);
  const d = spawnSync('node', [cli, 'analyze', join(dicomSrc, 'dicom', name), '--checkpoint', run, '--json'], {
    encoding: 'utf8',
  });
  assert.equal(d.status, 0, d.stderr);
  const fromDicom = JSON.parse(d.stdout) as Analysis;
  fromDicom.findings.forEach((f, l) =>
    assert.ok(Math.abs(f.probability - expected[l]!) < 1e-5, `DICOM ${f.label}: ${f.probability} vs ${expected[l]}`),
  );
  const missing = spawnSync('node', [cli, 'analyze', join(tmp, 'nope.nii.gz'), '--checkpoint', run], {
    encoding: 'utf8',
  });
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /nope\.nii\.gz: no such file or folder/);
  const notCt = spawnSync('node', [cli, 'analyze', outFile, '--checkpoint', run], { encoding: 'utf8' });
  assert.equal(notCt.status, 1);
  assert.match(notCt.stderr, /analysis\.json: .*not a NIfTI file/);
});
