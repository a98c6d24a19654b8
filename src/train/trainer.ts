// Pre-training on the shared training loop (loop.ts): AdamW with warm-up + cosine over open_clip's parameter
// groups, the T3D loss of a batch, JSONL metrics, periodic validation (through a hook: evaluation lives above
// this layer), and checkpoints that carry the TMA queue, the EMA teacher and the epoch's report clusters, so a resumed
// run equals an uninterrupted one (same data order, RNG, queue, clusters and weights).
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../torch/index.js';
import { optim, type GradientReducer, type Tensor } from '../torch/index.js';
import { type Loader, type RawBatch } from '../data/loader.js';
import { type T3dModel } from '../models/t3d.js';
import { type WordPieceTokenizer } from '../text/wordpiece.js';
import { fmtTime } from '../util/progress.js';
import { EmbeddingQueue } from '../objectives/tma/shared.js';
import { tmaFormulation } from '../objectives/tma/index.js';
import { t3dLoss } from '../objectives/t3d.js';
import { collator } from './collate.js';
import { type PretrainConfig } from './config.js';
import { EmaTeacher } from './ema.js';
import { extractReportLabels } from './report-labels.js';
import { buildT3dModel } from './factory.js';
import { type Settings } from './fingerprint.js';
import { TrainLoop } from './loop.js';
import { freshTrainerState, resumeStepCheckpoint, saveStepCheckpoint } from './step-checkpoints.js';
import { ReportClusters } from './report-clusters.js';

export interface TrainerDeps {
  config: PretrainConfig;
  model: T3dModel;
  tokenizer: WordPieceTokenizer;
  loader: Loader;
  outDir: string;
  device?: string;
  /** resume from the newest intact checkpoint in <outDir>/checkpoints (damaged ones are skipped and reported) */
  resume?: boolean;
  onValidate?: (step: number) => Promise<Record<string, number>>;
  log?: (line: string) => void;
  /** test hook: transforms the loss before the finiteness check (e.g. to inject NaN) */
  lossHook?: (loss: Tensor, step: number) => Tensor;
}

export interface TrainResult {
  step: number;
  skippedSteps: number;
  lastLoss: number;
  checkpoint: string;
}

/** Settings that must not change across a resume (logging cadence and worker counts may). */
function fingerprintSettings(c: PretrainConfig): Settings {
  const { workers: _w, prefetch: _p, ...data } = c.data;
  return { data, model: c.model, objective: c.objective, optim: c.optim, seed: c.train.seed };
}

/** open_clip's rule: no weight decay on biases, norms, gains, the logit scale and prototypes. */
function paramGroups(model: T3dModel, c: PretrainConfig): optim.GroupSpec<optim.AdamOptions>[] {
  const groups = new Map<string, Tensor[]>();
  for (const [name, p] of model.namedParameters()) {
    if (!p.requiresGrad) continue;
    const decay = p.ndim >= 2 && !/(^|\.)(bn\d?|norm\d?|LayerNorm|ln)\./.test(name) && !name.startsWith('prototypes');
    const text = name.startsWith('text.');
    const key = `${decay ? 'decay' : 'nodecay'}-${text ? 'text' : 'other'}`;
    groups.set(key, [...(groups.get(key) ?? []), p]);
  }
  return [...groups].map(([key, params]) => ({
    params,
    weightDecay: key.startsWith('decay') ? c.optim.weightDecay : 0,
    lr: key.endsWith('text') ? c.optim.lr * c.optim.textLrScale : c.optim.lr,
  }));
}

/**
 * Data-parallel: every rank's gradients summed, bucket by bucket while backward runs (GradientReducer, in reverse
 * registration order: about the order backward produces them). Each rank's loss is the global batch's (CLIP over
 * gathered embeddings, local means scaled by 1/worldSize), so the sum is the single-process gradient for every
 * parameter that acts per volume; the logit scale acts after the gather, where every rank already has the whole
 * gradient, so its sum is divided by the world size.
 */
function gradientReducer(model: T3dModel): GradientReducer {
  return torch.distributed.reducer(
    model
      .parameters()
      .filter((p) => p.requiresGrad)
      .reverse(),
  );
}

/** Data-parallel: every rank starts from rank 0's parameters and buffers. */
function broadcastModel(model: T3dModel): void {
  for (const [, t] of [...model.namedParameters(), ...model.namedBuffers()]) {
    torch.noGrad(() => {
      if (t.isContiguous()) return torch.distributed.broadcast(t, 0);
      // channels-last weights go through a row-major copy: collectives take row-major tensors
      torch.tidy(() => {
        const rowMajor = t.contiguous();
        torch.distributed.broadcast(rowMajor, 0);
        t.copy_(rowMajor);
      });
    });
  }
}

export async function pretrain(d: TrainerDeps): Promise<TrainResult> {
  const c = d.config;
  const world = torch.distributed.worldSize;
  const leader = torch.distributed.rank === 0;
  // data-parallel: rank 0 logs, writes metrics and checkpoints; every rank trains
  const log = leader ? (d.log ?? ((l: string) => console.log(l))) : () => {};
  mkdirSync(d.outDir, { recursive: true });
  const metricsPath = join(d.outDir, 'metrics.jsonl');
  const deviceType = (d.device ?? 'cpu').startsWith('cuda') ? 'cuda' : 'cpu';
  const amp = c.optim.amp ?? 'off';
  if (amp === 'fp16' && deviceType === 'cpu')
    throw new Error("optim.amp 'fp16' needs a CUDA device; on CPU use 'bf16'");
  const opt = new optim.AdamW(paramGroups(d.model, c), {
    lr: c.optim.lr,
    betas: c.optim.betas,
    eps: c.optim.eps,
    weightDecay: c.optim.weightDecay,
  });
  const sched = new optim.LRScheduler(
    opt,
    optim.warmupCosine(Math.min(c.optim.warmupSteps, c.optim.steps), c.optim.steps, 0.01),
  );
  const tma = c.objective.tma;
  const queue = new EmbeddingQueue(tma.queue, tma.queueWhenFull ?? false);
  const scaler = amp === 'fp16' ? new optim.GradScaler() : undefined;
  const needs = tmaFormulation(c.objective.tma).needs(c.objective.tma);
  const momentum = needs.teacherMomentum;
  // before the teacher (a second model): it refuses clusterHeads larger than the training set
  const clusters =
    needs.clusters && tma.weight > 0
      ? new ReportClusters({
          needs: needs.clusters,
          reports: d.loader.entries.map((e) => e.report),
          tokenizer: d.tokenizer,
          maxTokens: c.data.maxTokens,
          seed: c.train.seed,
          device: d.device,
          log,
        })
      : undefined;
  const teacher =
    momentum > 0 && tma.weight > 0
      ? new EmaTeacher(
          buildT3dModel(c.model, d.loader.globalShape, d.tokenizer.vocabSize).to({ device: d.device ?? 'cpu' }),
          d.model,
          momentum,
          { schedule: needs.teacherSchedule, steps: c.optim.steps, batchNorm: needs.teacherBatchNorm },
        )
      : undefined;
  const sentenceClip = (c.objective.sentenceClip?.weight ?? 0) > 0;
  const extracted = (c.objective.labels?.weight ?? 0) > 0 ? extractReportLabels(d.loader.entries) : undefined;
  if (extracted) log(extracted.summary);
  const freezePrototypes = tma.freezePrototypesSteps ?? 0;
  const collate = collator({
    tokenizer: d.tokenizer,
    loader: d.loader,
    data: c.data,
    seed: c.train.seed,
    needs: { sentenceIndex: needs.sentenceIndex || sentenceClip },
    reportLabels: extracted?.labels,
    device: d.device,
  });
  const settings = fingerprintSettings(c);
  const target = { dir: join(d.outDir, 'checkpoints'), model: d.model, optimizer: opt, settings, log };
  let state = freshTrainerState(target.settings);
  torch.manualSeed(c.train.seed);
  let reducer: GradientReducer | undefined;
  // the loader's worker threads must stop whatever happens, or the process never exits
  try {
    const resumed = d.resume ? resumeStepCheckpoint(target) : undefined;
    if (resumed) {
      state = resumed.state;
      if (scaler && state.gradScaler) scaler.loadStateDict(state.gradScaler);
      queue.loadStateDict(resumed.extra);
      teacher?.loadStateDict(resumed.extra);
      clusters?.loadStateDict(resumed.extra);
      torch.dispose([...resumed.extra.values()]);
      sched.setStep(state.step);
      log(`resumed from ${resumed.from} at step ${state.step} (epoch ${state.epoch}, batch ${state.batchInEpoch})`);
    }
    const save = (): string => {
      if (scaler) state.gradScaler = scaler.stateDict();
      const extra = () => [...queue.stateDict(), ...(teacher?.stateDict() ?? []), ...(clusters?.stateDict() ?? [])];
      const keep = c.train.keepCheckpoints;
      const tokenizerJson = d.tokenizer.toTokenizerJson();
      return saveStepCheckpoint(target, { config: c, tokenizerJson, keep, extra }, state);
    };
    if (world > 1) broadcastModel(d.model);
    reducer = world > 1 ? gradientReducer(d.model) : undefined;
    d.model.train();
    const t0 = performance.now();
    const loop = new TrainLoop({
      state,
      length: { steps: c.optim.steps },
      optimizer: opt,
      scheduler: sched,
      gradAccum: c.optim.gradAccum,
      clip: { params: d.model.parameters(), maxNorm: c.optim.clipNorm },
      maxConsecutiveNonFinite: c.train.maxConsecutiveNonFinite,
      autocast: amp === 'off' ? undefined : { deviceType, dtype: amp === 'bf16' ? 'bfloat16' : 'float16' },
      scaler: scaler && { scaler, params: d.model.parameters() },
      reducer: reducer && { reducer, afterReduce: () => d.model.logit_scale.value.grad?.div_(world) },
      lossHook: d.lossHook,
      resumedFrom: resumed?.from,
      log,
      batches: (epoch, skip) => {
        clusters?.ensure(epoch, d.model); // the epoch's clusters, before its first batch
        return d.loader.epoch(epoch, skip);
      },
      forward: (raw: RawBatch, _state, autocast) => {
        const batch = collate(raw, state.epoch);
        if (clusters) batch.clusters = clusters.targets(raw.indices);
        const forward = () => t3dLoss(d.model, batch, c.objective, state.step, queue, teacher?.model);
        const out = autocast(forward);
        return { loss: out.total, parts: out.parts, stats: out.stats };
      },
      // SwAV's frozen prototypes: no gradient before the step (Adam then leaves them, moments and all, untouched)
      beforeClip: () => (state.step < freezePrototypes ? d.model.prototypes.weight.zeroGrad() : undefined),
      afterUpdate: () => teacher?.update(d.model, state.step),
      progress: {
        every: c.train.logEvery,
        report: (p) => {
          const { parts: lossParts, stats } = p.extra;
          const entry = {
            step: p.state.step,
            epoch: p.state.epoch,
            loss: p.loss,
            ...lossParts,
            ...stats,
            gradNorm: p.gradNorm,
            lr: sched.currentLrs()[0],
            volumesPerS: (c.data.batchSize * c.optim.gradAccum) / p.secsPerStep,
            dataWait: p.dataWait,
            liveTensors: torch.memory().numTensors,
            rssMB: process.memoryUsage().rss / 1e6,
            ...(scaler ? { lossScale: scaler.scale } : {}),
          };
          if (leader) appendFileSync(metricsPath, JSON.stringify(entry) + '\n');
          const parts = Object.entries(lossParts)
            .map(([k, v]) => `${k} ${v.toFixed(4)}`)
            .join(' ');
          const eta = p.secsPerStep * (c.optim.steps - p.state.step);
          const wait = `data-wait ${(entry.dataWait * 100).toFixed(0)} % ETA ${fmtTime(eta)}`;
          const head = `step ${p.state.step}/${c.optim.steps} loss ${p.loss.toFixed(4)} (${parts})`;
          log(`${head} lr ${entry.lr!.toExponential(2)} ${entry.volumesPerS.toFixed(1)} vol/s ${wait}`);
        },
      },
      afterStep: async ({ state: s }) => {
        if (!leader || !d.onValidate || (s.step % c.train.validateEvery !== 0 && s.step !== c.optim.steps)) return;
        d.model.eval();
        const m = await d.onValidate(s.step);
        d.model.train();
        appendFileSync(metricsPath, JSON.stringify({ step: s.step, validation: m }) + '\n');
        log(
          `validation at step ${s.step}: ${Object.entries(m)
            .map(([k, v]) => `${k} ${v.toFixed(4)}`)
            .join(', ')}`,
        );
      },
      checkpoint: leader ? { everySteps: c.train.checkpointEvery, save } : undefined,
    });
    const r = await loop.run();
    const took = fmtTime((performance.now() - t0) / 1000);
    log(`done: ${state.step} steps in ${took}, ${state.skippedSteps} skipped; checkpoint ${r.checkpoint}`);
    return { step: state.step, skippedSteps: state.skippedSteps, lastLoss: r.lastLoss, checkpoint: r.checkpoint };
  } finally {
    await d.loader.close();
    reducer?.dispose();
    opt.dispose();
    queue.dispose();
    teacher?.model.dispose();
    clusters?.dispose();
  }
}
