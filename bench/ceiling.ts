// `npm run experiment:ceiling`: the supervised ceiling per label on the multi-resolution benchmark (cpu-mr), at the
// global view (64×96×96, the cpu-96 grid) and at the cache's full resolution (128×192×192): the same ResNet3D from
// random init, trained with BCE on 100 % of the training labels under the same budget. Labels that gain from
// resolution (by ≥ GAIN, with the gain's paired bootstrap CI over the test volumes above 0) form the fine-grained
// subset. Resumable (each step skips what is done). Records are copied to KEEP.
// Every epoch of the budget runs (no early stopping: the full-resolution model starts slower) and the best epoch on
// validation is kept. The subset is only defined when the full-resolution model learned at least as well overall
// (macro AUROC within 0.02 of the global view's); otherwise the run is reported as inconclusive.
// The full-resolution model (FULL_NET): 'matched' (default) has conv1 with the resolution factor f times the stride
// and kernel f·k + 1, so from layer1 on it has the global model's feature-map sizes, capacity and cost and only its
// first layer sees the finer voxels; 'same' is the global model's network on f³ times the voxels through every stage
// (the first two runs: it learns far more slowly under the same budget).
// Env: OUT (runs/ceiling), COUNT (800 volumes), VALID_FRACTION (0.3 held out), EPOCHS (12), KEEP (results/ceiling),
// GAIN (0.05), FULL_NET (matched | same), CACHE (a built cpu-mr cache to measure on instead, e.g. the TMA study's:
// the subset is then defined on that study's own held-out volumes; COUNT and VALID_FRACTION are unused), VERSION
// (the synthetic generator's version, 1; 2 adds the local findings, whose ceilings should sit near 0.5 on the global
// view and above it at full resolution), FINE (full | crop: what the global view is compared with; 'crop' fine-tunes
// the global view's network on the five fixed 48³ lobe crops at the cache's resolution, the crop-scale readout's input).
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { globalShapeOf, resolvePreset } from '../src/data/presets.js';
import { readCacheIndex } from '../src/data/cache.js';
import { pairedBootstrapDiff } from '../src/eval/metrics/bootstrap.js';
import { auroc } from '../src/eval/metrics/classification.js';
import { loadConfig } from '../src/train/config.js';
import { packageRoot } from '../src/util/paths.js';

const root = packageRoot();
const out = resolve(root, process.env.OUT ?? join('runs', 'ceiling'));
const keep = resolve(root, process.env.KEEP ?? join('results', 'ceiling'));
const count = Number(process.env.COUNT ?? 800);
const validFraction = Number(process.env.VALID_FRACTION ?? 0.3);
const epochs = Number(process.env.EPOCHS ?? 12);
const minGain = Number(process.env.GAIN ?? 0.05);
const fullNet = process.env.FULL_NET ?? 'matched';
const version = Number(process.env.VERSION ?? 1);
const fineScale = process.env.FINE ?? 'full';
if (fullNet !== 'matched' && fullNet !== 'same') throw new Error(`FULL_NET must be matched or same, got ${fullNet}`);
if (fineScale !== 'full' && fineScale !== 'crop') throw new Error(`FINE must be full or crop, got ${fineScale}`);
const cli = join(root, 'dist', 'src', 'app', 'cli.js');
const run = (args: string[]) => {
  const r = spawnSync('node', [cli, ...args], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`t3d ${args.join(' ')} failed (exit ${r.status})`);
};
mkdirSync(out, { recursive: true });
const cache = resolve(root, process.env.CACHE ?? join(out, 'cache'));

// the data (cpu-mr synthetic volumes, cached at full resolution) and an untrained checkpoint that names the architecture
const init = join(out, 'init');
const initRun = (dir: string, extra: string[] = []) => {
  if (existsSync(join(dir, 'checkpoints'))) return;
  run([
    'pretrain',
    '--config',
    'cpu-mr',
    '--set',
    `data.cache=${cache}`,
    '--set',
    `data.synth={"count":${count},"seed":0,"validFraction":${validFraction}${version === 1 ? '' : `,"version":${version}`}}`,
    '--set',
    'optim.lr=1e-12',
    '--set',
    'objective.tma.weight=0',
    '--set',
    'train.validateEvery=1',
    ...extra.flatMap((x) => ['--set', x]),
    '--steps',
    '1',
    '--out',
    dir,
  ]);
};
initRun(init);
const preset = resolvePreset(loadConfig('cpu-mr').data.preset);
const factor = preset.shape[0] / globalShapeOf(preset)[0];
const vision = loadConfig('cpu-mr').model.vision;
if (vision.kind !== 'resnet3d') throw new Error('the ceiling driver expects cpu-mr to use a ResNet3D');
const [kernel, stride] = [vision.conv1Kernel * factor + 1, vision.conv1Stride * factor];
const fullLayer1 = `conv1 kernel ${kernel}, stride ${stride}`;
const initFull = fullNet === 'same' || fineScale === 'crop' ? init : join(out, 'init-full');
if (initFull !== init) initRun(initFull, [`model.vision.conv1Kernel=${kernel}`, `model.vision.conv1Stride=${stride}`]);
const base = JSON.parse(readFileSync(join(root, 'configs', 'eval', 'default.json'), 'utf8')) as Record<
  string,
  unknown
> & { transfer: { finetune: object } };
const cropEval = JSON.parse(readFileSync(join(root, 'configs', 'eval', 'tma-study-crop.json'), 'utf8')) as {
  crop: { shape: number[] };
};
for (const scale of ['global', fineScale] as const) {
  const config = join(out, `eval-${scale}.json`);
  writeFileSync(
    config,
    JSON.stringify(
      {
        ...base,
        name: `ceiling-${scale}`,
        scale,
        ...(scale === 'crop' ? { crop: cropEval.crop } : {}),
        transfer: {
          ...base.transfer,
          fractions: [1],
          finetune: { ...base.transfer.finetune, epochs, patience: epochs },
        },
      },
      null,
      2,
    ),
  );
  run([
    'eval',
    'finetune',
    '--checkpoint',
    scale === 'global' ? init : initFull,
    '--init',
    'random',
    '--config',
    config,
    '--out',
    join(out, 'eval'),
  ]);
}

interface PerLabel {
  label: string;
  positives: number;
  auroc: number;
}
interface Transfer {
  labelNames: string[];
  testNames: string[];
  testScores: number[][];
  testLabels: number[][];
}
interface Rec {
  meta: Record<string, unknown>;
  result: { macro: { auroc: number }; perLabel: PerLabel[]; aurocCi: [number, number][]; transfer: Transfer };
}
const read = (name: string) => JSON.parse(readFileSync(join(out, 'eval', name), 'utf8')) as Rec;
const fineRecord = `finetune-100pct-${fineScale}.json`;
const [g, f] = [read('finetune-100pct.json'), read(fineRecord)];
mkdirSync(keep, { recursive: true });
for (const name of ['finetune-100pct.json', fineRecord]) {
  // records name their files relative to the package root: no machine paths in the repository
  writeFileSync(
    join(keep, name),
    readFileSync(join(out, 'eval', name), 'utf8')
      .split(`${root}/`)
      .join(''),
  );
}
copyFileSync(join(out, `eval-${fineScale}.json`), join(keep, `eval-${fineScale}.json`));
// the gain's 95 % CI: a paired bootstrap over the test volumes, which both models scored
const [gt, ft] = [g.result.transfer, f.result.transfer];
if (gt.testNames.join() !== ft.testNames.join())
  throw new Error('the two ceiling records were tested on different volumes');
const column = (t: Transfer, label: string, idx: Int32Array, what: 'testScores' | 'testLabels') => {
  const j = t.labelNames.indexOf(label);
  return Array.from(idx, (i) => t[what][i]![j]!);
};
const rows = g.result.perLabel.map((p, i) => {
  const full = f.result.perLabel.find((q) => q.label === p.label)!;
  const ci = f.result.aurocCi[f.result.perLabel.indexOf(full)]!;
  const at = (t: Transfer) => (idx: Int32Array) =>
    auroc(column(t, p.label, idx, 'testScores'), column(gt, p.label, idx, 'testLabels'));
  const d = pairedBootstrapDiff(gt.testNames.length, at(ft), at(gt), { resamples: 1000, seed: 0 });
  return {
    label: p.label,
    positives: p.positives,
    global: p.auroc,
    globalCi: g.result.aurocCi[i]!,
    full: full.auroc,
    fullCi: ci,
    gain: full.auroc - p.auroc,
    gainCi: [d.lo, d.hi] as [number, number],
  };
});
const learned = f.result.macro.auroc >= g.result.macro.auroc - 0.02;
const fine = rows.filter((r) => r.gain >= minGain && r.gainCi[0] > 0).map((r) => r.label);
const fmt = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : '—');
const fullName =
  fineScale === 'crop'
    ? `five lobe crops ${cropEval.crop.shape.join('×')} at full resolution`
    : `full resolution ${preset.shape.join('×')}${fullNet === 'matched' ? ` (${fullLayer1})` : ''}`;
const signed = (x: number) => `${x >= 0 ? '+' : ''}${fmt(x)}`;
const table = [
  `| label | test positives | global view ${globalShapeOf(preset).join('×')} | ${fullName} | gain [paired 95 % CI] |`,
  '|---|---|---|---|---|',
  ...rows.map(
    (r) =>
      `| ${r.label} | ${r.positives} | ${fmt(r.global)} [${fmt(r.globalCi[0])}, ${fmt(r.globalCi[1])}] | ${fmt(r.full)} [${fmt(r.fullCi[0])}, ${fmt(r.fullCi[1])}] | ${signed(r.gain)} [${signed(r.gainCi[0])}, ${signed(r.gainCi[1])}] |`,
  ),
  `| macro | | ${fmt(g.result.macro.auroc)} | ${fmt(f.result.macro.auroc)} | ${signed(f.result.macro.auroc - g.result.macro.auroc)} |`,
].join('\n');
// the lobe crops see the lungs only, so a lower macro there is expected and does not void the per-label gains
const verdict =
  fineScale === 'crop'
    ? `Labels the lobe crops read better than the global view (gain ≥ ${minGain}, paired 95 % CI above 0): ${fine.length ? fine.join(', ') : 'none'}\n`
    : learned
      ? `Fine-grained subset (gain ≥ ${minGain} with its paired 95 % CI above 0): ${fine.length ? fine.join(', ') : 'none'}\n`
      : `Inconclusive: the full-resolution model learned less overall (macro ${fmt(f.result.macro.auroc)} vs ${fmt(g.result.macro.auroc)} at the global view), so no subset is defined; rerun with a larger budget (COUNT, EPOCHS).\n`;
const entries = readCacheIndex(cache).entries;
const heldOut = entries.filter((e) => e.split === 'valid').length;
const network = fineScale === 'crop' ? "the global view's, on the crops" : fullNet;
const summary = `# Supervised ceiling per label (cpu-mr, ${entries.length} volumes, ${heldOut} held out, random init, BCE, 100 % of the labels, ${epochs} epochs; full-resolution network: ${network})\n\n${table}\n\n${verdict}`;
writeFileSync(join(keep, fineScale === 'crop' ? 'ceiling-crop.md' : 'ceiling.md'), summary);
if (learned && fineScale === 'full')
  writeFileSync(
    join(keep, 'fine-grained.json'),
    JSON.stringify(
      {
        name: 'fine-grained',
        rule: `full-resolution AUROC − global-view AUROC ≥ ${minGain}, paired 95 % CI above 0`,
        labels: fine,
      },
      null,
      2,
    ) + '\n',
  );
console.log(summary);
