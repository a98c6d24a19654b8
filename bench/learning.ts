// `npm run experiment:learning`: T3D vs CLIP-only vs random init on a synthetic benchmark (CONFIG, cpu-96 by
// default; cpu-mr for the multi-resolution study), several seeds, zero-shot macro-AUROC and retrieval on the held-out
// split. Runs the CLI per setting and reads each run's validations from metrics.jsonl; prints the final ones' mean ±
// sd and each run's curve (VALIDATE_EVERY < STEPS), and writes both to <out>/summary.json.
// Env: CONFIG (cpu-96), COUNT (1000 volumes, VALID_FRACTION 0.4 held out), SEEDS (0,1,2), STEPS (300), VARIANTS
// (random-init,clip-only,t3d; simclr, restoration and ablations below), VALIDATE_EVERY (STEPS), OUT (runs/learning),
// REPORT_STYLE (templated; realistic for the text arms, in a cache of its own).
// The data cache lives under runs/learning (cache for cpu-96, cache-<config> otherwise), so every study of a config
// evaluates on the same held-out volumes; the synthetic source volumes are deleted once it is built.
// `*-warm` variants start from a text encoder pre-trained by `t3d pretrain-text` on the same training reports
// (<OUT>/text, TEXT_STEPS 1000, seed 0, shared by every seed and variant) with the text tower at 0.1× the lr.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { packageRoot } from '../src/util/paths.js';

const root = packageRoot();
const out = resolve(root, process.env.OUT ?? join('runs', 'learning'));
const seeds = (process.env.SEEDS ?? '0,1,2').split(',').map(Number);
const steps = Number(process.env.STEPS ?? 300);
const validateEvery = Number(process.env.VALIDATE_EVERY ?? steps);
const config = process.env.CONFIG ?? 'cpu-96';
// REPORT_STYLE=realistic: reports an extractor reads imperfectly (the text arms' study), in a cache of their own
const reportStyle = process.env.REPORT_STYLE ?? 'templated';
const cacheName =
  (config === 'cpu-96' ? 'cache' : `cache-${config}`) + (reportStyle === 'templated' ? '' : `-${reportStyle}`);
const cache = join(root, 'runs', 'learning', cacheName);
const synth = {
  count: Number(process.env.COUNT ?? 1000),
  seed: 0,
  validFraction: Number(process.env.VALID_FRACTION ?? 0.4),
  keepSource: false,
  ...(reportStyle === 'templated' ? {} : { reportStyle }),
};
const common = [
  '--config',
  config,
  '--set',
  `data.cache=${cache}`,
  '--set',
  `data.synth=${JSON.stringify(synth)}`,
  '--set',
  `train.validateEvery=${validateEvery}`,
  '--set',
  `train.checkpointEvery=${validateEvery}`,
  '--set',
  'train.logEvery=50',
];
const warm = ['--set', `model.text.pretrained=${join(out, 'text')}`, '--set', 'optim.textLrScale=0.1'];
const coarse = [
  '--set',
  'objective.tma.formulation=fused',
  '--set',
  'objective.tma.useText=false',
  '--set',
  'model.prototypes=8',
  '--set',
  'objective.tma.queue=128',
];
const allVariants: Record<string, string[]> = {
  'random-init': ['--steps', '1', '--set', 'optim.lr=1e-12', '--set', 'objective.tma.weight=0'],
  'clip-only': ['--steps', String(steps), '--set', 'objective.tma.weight=0', '--set', 'data.views.numLocal=0'],
  t3d: ['--steps', String(steps)],
  // vision-only baselines (no text): evaluated by probes, fine-tuning and segmentation, not zero-shot
  simclr: [
    '--steps',
    String(steps),
    '--set',
    'objective.clip.weight=0',
    '--set',
    'objective.tma.weight=0',
    '--set',
    'objective.ssl.weight=1',
  ],
  restoration: [
    '--steps',
    String(steps),
    '--set',
    'objective.clip.weight=0',
    '--set',
    'objective.tma.weight=0',
    '--set',
    'objective.restoration.weight=1',
    '--set',
    'objective.restoration.useText=false',
    '--set',
    'data.views.numLocal=0',
  ],
  // TMA ablations (run only when named in VARIANTS)
  // control: CLIP-only whose four local crops per volume still pass through the encoder in training mode (TMA at a
  // weight of 1e-9: its gradient is nil, but the crops' forward passes update BatchNorm's running statistics, the one
  // thing every TMA variant adds to CLIP-only besides a term that stays at chance)
  'clip-only-crops': ['--steps', String(steps), '--set', 'objective.tma.weight=1e-9'],
  // the crop-CLIP control: the same crops, each aligned with its volume's report by plain InfoNCE, no TMA
  'clip-crops': ['--steps', String(steps), '--set', 'objective.tma.weight=0', '--set', 'objective.clip.localWeight=1'],
  'clip-only-warm': [
    '--steps',
    String(steps),
    '--set',
    'objective.tma.weight=0',
    '--set',
    'data.views.numLocal=0',
    ...warm,
  ],
  't3d-warm': ['--steps', String(steps), ...warm],
  't3d-swapped': ['--steps', String(steps), '--set', 'objective.tma.formulation=swapped'],
  't3d-swapped-warm': ['--steps', String(steps), '--set', 'objective.tma.formulation=swapped', ...warm],
  't3d-teacher': [
    '--steps',
    String(steps),
    '--set',
    'objective.tma.formulation=teacher',
    '--set',
    'objective.tma.teacherMomentum=0.99',
  ],
  // the teacher's codes from its CLIP-space embeddings (global view + report) with ε relative to their spread
  't3d-teacher-emb': [
    '--steps',
    String(steps),
    '--set',
    'objective.tma.formulation=teacher',
    '--set',
    'objective.tma.teacherMomentum=0.99',
    '--set',
    'objective.tma.teacherCodes=embedding',
    '--set',
    'objective.tma.relativeEpsilon=true',
    '--set',
    'objective.tma.epsilon=0.25',
  ],
  't3d-local': ['--steps', String(steps), '--set', 'objective.tma.formulation=local'],
  // local crops centred on organ voxels (the synthetic masks), so a crop holds the anatomy a sentence describes
  't3d-local-anchored': [
    '--steps',
    String(steps),
    '--set',
    'objective.tma.formulation=local',
    '--set',
    'data.views.localAnchor="foreground"',
  ],
  't3d-fused': ['--steps', String(steps), '--set', 'objective.tma.formulation=fused'],
  // what each part of the (multi-resolution, swapped) default buys
  't3d-no-text': ['--steps', String(steps), '--set', 'objective.tma.useText=false'],
  't3d-no-local': ['--steps', String(steps), '--set', 'data.views.numLocal=0'],
  't3d-single-res': ['--steps', String(steps), '--set', 'data.views.localSource=global'],
  // RESULTS' first ablation table: the fused formulation (then the default) with views that do not read the report
  't3d-no-fusion': [
    '--steps',
    String(steps),
    '--set',
    'objective.tma.formulation=fused',
    '--set',
    'objective.tma.useText=false',
  ],
  't3d-groupnorm': ['--steps', String(steps), '--set', 'model.vision.norm=group'],
  // RESULTS' first ablation table: the fused formulation without fusion, 8 prototypes over batch + a 128-sample
  // queue: codes are coarse report clusters, not instances
  't3d-coarse': ['--steps', String(steps), ...coarse],
  't3d-coarse-teacher': [
    '--steps',
    String(steps),
    ...coarse,
    '--set',
    'objective.tma.teacherMomentum=0.99',
    '--set',
    'objective.tma.codeViews=["text","global"]',
  ],
  // the default (swapped) switched on at step 600, once CLIP has spread the embeddings (mean cosine ≈ 0.8)
  't3d-late': ['--steps', String(steps), '--set', 'objective.tma.startStep=600'],
  // the text arms (REPORT_STYLE=realistic): CLIP-only plus labels extracted from the reports (the field's recipe), and
  // CLIP plus sentence-level CLIP (text granularity alone); `*-labels` adds the extracted labels to a TMA arm
  'clip-labels': [
    '--steps',
    String(steps),
    '--set',
    'objective.tma.weight=0',
    '--set',
    'data.views.numLocal=0',
    '--set',
    'objective.labels={"weight":1}',
  ],
  'sentence-clip': [
    '--steps',
    String(steps),
    '--set',
    'objective.tma.weight=0',
    '--set',
    'data.views.numLocal=0',
    '--set',
    'objective.sentenceClip={"weight":1}',
  ],
  't3d-sentence-labels': [
    '--steps',
    String(steps),
    '--set',
    'objective.tma.formulation=sentence',
    '--set',
    'objective.labels={"weight":1}',
  ],
  // the default (swapped) with coarse codes: 8 prototypes over batch + a 128-sample queue
  't3d-swapped-coarse': ['--steps', String(steps), '--set', 'model.prototypes=8', '--set', 'objective.tma.queue=128'],
};
const chosen = process.env.VARIANTS?.split(',') ?? ['random-init', 'clip-only', 't3d'];
for (const v of chosen)
  if (!allVariants[v])
    throw new Error(`VARIANTS: unknown variant '${v}' (known: ${Object.keys(allVariants).join(', ')})`);
const variants = Object.fromEntries(chosen.map((v) => [v, allVariants[v]!]));

interface Row {
  variant: string;
  seed: number;
  auroc: number;
  r5: number;
  seconds: number;
  curve: { step: number; auroc: number; r5: number }[];
}
const rows: Row[] = [];
mkdirSync(out, { recursive: true });
if (chosen.some((v) => v.endsWith('-warm'))) {
  const r = spawnSync(
    'node',
    [
      join(root, 'dist', 'src', 'app', 'cli.js'),
      'pretrain-text',
      ...common,
      '--set',
      'train.seed=0',
      '--steps',
      process.env.TEXT_STEPS ?? '1000',
      '--out',
      join(out, 'text'),
    ],
    { stdio: 'inherit' },
  );
  if (r.status !== 0) throw new Error('pretrain-text failed');
}
for (const seed of seeds) {
  for (const [variant, args] of Object.entries(variants)) {
    const dir = join(out, `${variant}-s${seed}`);
    const t0 = Date.now();
    // done = validated at its last step (a run stopped midway has earlier validations and resumes)
    const lastStep = Number(args[args.indexOf('--steps') + 1]);
    if (
      !existsSync(join(dir, 'metrics.jsonl')) ||
      !readFileSync(join(dir, 'metrics.jsonl'), 'utf8').includes(`{"step":${lastStep},"validation"`)
    ) {
      const r = spawnSync(
        'node',
        [
          join(root, 'dist', 'src', 'app', 'cli.js'),
          'pretrain',
          ...common,
          ...args,
          '--set',
          `train.seed=${seed}`,
          '--out',
          dir,
          '--resume',
        ],
        { stdio: 'inherit' },
      );
      if (r.status !== 0) throw new Error(`${variant} seed ${seed} failed`);
    }
    // every validation of the run: the curve that shows whether a method has plateaued at this budget
    const curve = readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { step: number; validation?: Record<string, number> })
      .filter((l) => l.validation)
      .map((l) => ({ step: l.step, auroc: l.validation!.zeroShotAuroc!, r5: l.validation!.r2vR5! }));
    const last = curve[curve.length - 1]!;
    rows.push({ variant, seed, auroc: last.auroc, r5: last.r5, seconds: (Date.now() - t0) / 1000, curve });
    console.log(
      `${variant} seed ${seed}: zero-shot macro-AUROC ${last.auroc.toFixed(3)}, report→volume R@5 ${last.r5.toFixed(3)}`,
    );
    if (curve.length > 1)
      console.log(`  curve (step: zero-shot AUROC) ${curve.map((c) => `${c.step}: ${c.auroc.toFixed(3)}`).join(', ')}`);
  }
}
const stats = (xs: number[]) => {
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  return { mean: m, sd: Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / Math.max(1, xs.length - 1)) };
};
const summary = Object.keys(variants).map((v) => ({
  variant: v,
  auroc: stats(rows.filter((r) => r.variant === v).map((r) => r.auroc)),
  r5: stats(rows.filter((r) => r.variant === v).map((r) => r.r5)),
}));
for (const s of summary)
  console.log(
    `${s.variant.padEnd(12)} AUROC ${s.auroc.mean.toFixed(3)} ± ${s.auroc.sd.toFixed(3)}   R@5 ${s.r5.mean.toFixed(3)} ± ${s.r5.sd.toFixed(3)}`,
  );
writeFileSync(join(out, 'summary.json'), JSON.stringify({ steps, seeds, rows, summary }, null, 2));
