// One pre-training run from a validated config: the distributed group from torchrun's variables, the run folder,
// the cache and tokenizer (rank 0 builds them, the other ranks wait), the model and loader, then the trainer.
import { listCheckpoints } from './checkpoint.js';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../torch/index.js';
import { inputTransform } from '../data/input-transform.js';
import { Loader } from '../data/loader.js';
import { resolvePreset } from '../data/presets.js';
import { ensureCache } from '../data/synth-cache.js';
import { type T3dModel } from '../models/t3d.js';
import { type WordPieceTokenizer } from '../text/wordpiece.js';
import { EXTRACTED_LABELS } from '../text/label-extractor.js';
import { type PretrainConfig } from './config.js';
import { buildT3dModel, pretrainedTextDir } from './factory.js';
import { prepareTokenizer } from './tokenizer.js';
import { pretrain, type TrainResult } from './trainer.js';

export interface PretrainRun {
  config: PretrainConfig;
  /** default runs/pretrain/<config name> */
  out?: string;
  resume?: boolean;
  device?: string;
  /** the validation a run logs every train.validateEvery steps (the app passes zero-shot on the validation split) */
  validation?: (
    model: T3dModel,
    tokenizer: WordPieceTokenizer,
    config: PretrainConfig,
  ) => () => Promise<Record<string, number>>;
  /** progress lines (rank 0 only); default console.log */
  print?: (line: string) => void;
}

export async function runPretraining(o: PretrainRun): Promise<TrainResult> {
  const print = o.print ?? ((line: string) => console.log(line));
  const group = torch.envGroupOptions();
  if (group && group.worldSize > 1) {
    torch.distributed.init({ ...group, timeoutMs: 1000 * Number(process.env.T3D_DIST_TIMEOUT_S ?? 1800) });
  }
  let cfg = o.config;
  // a text run folder (t3d pretrain-text) stands for its newest intact checkpoint; the config records which one
  if ('pretrained' in cfg.model.text) {
    const pretrained = pretrainedTextDir(String(cfg.model.text.pretrained));
    cfg = { ...cfg, model: { ...cfg.model, text: { ...cfg.model.text, pretrained } } };
  }
  // the run keeps the preset itself, so that its checkpoints bring their input transform even if a preset file changes
  const preset = resolvePreset(cfg.data.preset);
  cfg = { ...cfg, data: { ...cfg.data, preset } };
  // the restoration objective needs its decoder in the model, and in the saved config for loading it back
  if ((cfg.objective.restoration?.weight ?? 0) > 0) cfg = { ...cfg, model: { ...cfg.model, restoration: true } };
  // and the label objective its head, sized to the extractor's labels
  if ((cfg.objective.labels?.weight ?? 0) > 0)
    cfg = { ...cfg, model: { ...cfg.model, labels: EXTRACTED_LABELS.length } };
  const outDir = o.out ?? join('runs', 'pretrain', cfg.name);
  const device = o.device ?? 'cpu';
  if (device !== 'cpu' && !torch.cuda.isAvailable()) {
    throw new Error(`--device ${device}: this libtorch build has no usable CUDA (see \`t3d info\`)`);
  }
  if (!o.resume && listCheckpoints(join(outDir, 'checkpoints')).length) {
    throw new Error(`${outDir} already holds checkpoints: add --resume to continue, or choose another --out`);
  }
  const world = torch.distributed.worldSize;
  const leader = torch.distributed.rank === 0;
  if (cfg.data.batchSize % world !== 0) {
    throw new Error(`data.batchSize ${cfg.data.batchSize} is the global batch and must divide into ${world} ranks`);
  }
  // data-parallel: rank 0 writes the config and builds the cache and tokenizer; the others wait, then read them
  if (leader) {
    mkdirSync(outDir, { recursive: true });
    writeFileSync(join(outDir, 'config.json'), JSON.stringify(cfg, null, 2) + '\n');
    await ensureCache(cfg);
    prepareTokenizer(cfg, outDir);
  }
  if (world > 1) torch.distributed.barrier();
  const tokenizer = prepareTokenizer(cfg, outDir);
  torch.manualSeed(cfg.train.seed);
  const model = buildT3dModel(cfg.model, inputTransform(preset).inputShape, tokenizer.vocabSize);
  if (device !== 'cpu') model.to({ device });
  const loader = new Loader({
    cacheDir: cfg.data.cache,
    split: cfg.data.trainSplit,
    batchSize: cfg.data.batchSize / world,
    seed: cfg.train.seed,
    rank: torch.distributed.rank,
    worldSize: world,
    workers: cfg.data.workers,
    prefetch: cfg.data.prefetch,
    views: cfg.data.views,
  });
  if (leader) {
    const ranks = world > 1 ? `, ${world} ranks × ${cfg.data.batchSize / world} volumes per batch` : '';
    print(
      `pretrain ${cfg.name}: ${model.numParameters().toLocaleString()} parameters, ${loader.entries.length} training ` +
        `volumes, ${loader.length} batches/epoch, vocab ${tokenizer.vocabSize}, device ${device}${ranks} → ${outDir}`,
    );
  }
  const onValidate = o.validation?.(model, tokenizer, cfg);
  const r = await pretrain({
    config: cfg,
    model,
    tokenizer,
    loader,
    outDir,
    device,
    resume: o.resume === true,
    onValidate,
  });
  if (leader) print(`pretrain: finished at step ${r.step}; checkpoint ${r.checkpoint}`);
  if (world > 1) torch.distributed.destroy();
  return r;
}
