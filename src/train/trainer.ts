// The pre-training loop: AdamW with warm-up + cosine, gradient accumulation and clipping, non-finite
// step skipping, JSONL metrics, periodic validation (through a hook: evaluation lives above this layer),
// atomic checkpoints and exact resume (same data order, RNG, queue and weights as an uninterrupted run).
import { appendFileSync, mkdirSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import * as torch from '../torch/index.js';
import { optim, type GradientReducer, type Tensor } from '../torch/index.js';
import { type Loader } from '../data/loader.js';
import { type T3dModel } from '../models/t3d.js';
import { type WordPieceTokenizer } from '../text/wordpiece.js';
import { fmtTime } from '../util/progress.js';
import { EmbeddingQueue } from '../objectives/tma/shared.js';
import { tmaFormulation } from '../objectives/tma/index.js';
import { t3dLoss } from '../objectives/t3d.js';
import { collator } from './collate.js';
import { type PretrainConfig } from './config.js';
import { EmaTeacher } from './ema.js';
import { buildT3dModel } from './factory.js';
import { TRAINING_FILES, type TrainerState, loadCheckpoint, resolveCheckpoint, saveCheckpoint } from './checkpoint.js';

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
export function fingerprint(c: PretrainConfig): string {
  const { workers: _w, prefetch: _p, ...data } = c.data;
  return createHash('sha256')
    .update(JSON.stringify({ data, model: c.model, objective: c.objective, optim: c.optim, seed: c.train.seed }))
    .digest('hex')
    .slice(0, 16);
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
  const ckptDir = join(d.outDir, 'checkpoints');
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
  const queue = new EmbeddingQueue(c.objective.tma.queue);
  const scaler = amp === 'fp16' ? new optim.GradScaler() : undefined;
  const needs = tmaFormulation(c.objective.tma).needs(c.objective.tma);
  const momentum = needs.teacherMomentum;
  const teacher =
    momentum > 0 && c.objective.tma.weight > 0
      ? new EmaTeacher(
          buildT3dModel(c.model, d.loader.globalShape, d.tokenizer.vocabSize).to({ device: d.device ?? 'cpu' }),
          d.model,
          momentum,
        )
      : undefined;
  const collate = collator({
    tokenizer: d.tokenizer,
    loader: d.loader,
    data: c.data,
    seed: c.train.seed,
    needs,
    device: d.device,
  });
  let state: TrainerState = {
    step: 0,
    epoch: 0,
    batchInEpoch: 0,
    consecutiveNonFinite: 0,
    skippedSteps: 0,
    fingerprint: fingerprint(c),
  };
  torch.manualSeed(c.train.seed);

  const resumeFrom = d.resume ? resolveCheckpoint(ckptDir, { requires: TRAINING_FILES, log }) : undefined;
  if (resumeFrom) {
    const { state: s, extra } = loadCheckpoint(resumeFrom, d.model, opt);
    if (s.fingerprint !== state.fingerprint) {
      torch.dispose([...extra.values()]);
      opt.dispose();
      teacher?.model.dispose();
      throw new Error(
        `${resumeFrom}: was trained with different settings (fingerprint ${s.fingerprint}, now ${state.fingerprint}); use a new --out to start over`,
      );
    }
    state = s;
    if (scaler && s.gradScaler) scaler.loadStateDict(s.gradScaler);
    const rng = extra.get('rng.torch_cpu');
    if (rng) torch.setDefaultGeneratorState(rng);
    queue.loadStateDict(extra);
    teacher?.loadStateDict(extra);
    torch.dispose([...extra.values()]);
    sched.setStep(state.step);
    log(`resumed from ${resumeFrom} at step ${state.step} (epoch ${state.epoch}, batch ${state.batchInEpoch})`);
  }

  const save = (): string => {
    const rng = torch.getDefaultGeneratorState();
    const extra = new Map<string, Tensor>([
      ['rng.torch_cpu', rng],
      ...queue.stateDict(),
      ...(teacher?.stateDict() ?? []),
    ]);
    if (scaler) state.gradScaler = scaler.stateDict();
    try {
      return saveCheckpoint(
        ckptDir,
        { config: c, model: d.model, optimizer: opt, extra, tokenizerJson: d.tokenizer.toTokenizerJson(), state },
        c.train.keepCheckpoints,
        log,
      );
    } finally {
      rng.dispose();
    }
  };

  if (world > 1) broadcastModel(d.model);
  const reducer = world > 1 ? gradientReducer(d.model) : undefined;
  d.model.train();
  const t0 = performance.now();
  let lastLoss = NaN;
  let waited = 0,
    window = performance.now(),
    windowSteps = 0;
  let micro = 0;
  let lastCheckpoint = resumeFrom ?? '';
  // the loader's worker threads must stop whatever happens, or the process never exits
  try {
    while (state.step < c.optim.steps) {
      const it = d.loader.epoch(state.epoch, state.batchInEpoch);
      for (;;) {
        const w0 = performance.now();
        const next = await it.next();
        waited += performance.now() - w0;
        if (next.done) break;
        const raw = next.value;
        state.batchInEpoch += 1;
        // the reducer counts gradients in during the backward pass that completes the step
        if (reducer && micro + 1 === c.optim.gradAccum) reducer.arm();
        const result = torch.tidy(() => {
          const batch = collate(raw, state.epoch);
          const forward = () => t3dLoss(d.model, batch, c.objective, state.step, queue, teacher?.model);
          const out =
            amp === 'off' ? forward() : torch.autocast(deviceType, amp === 'bf16' ? 'bfloat16' : 'float16', forward);
          const loss = d.lossHook ? d.lossHook(out.total, state.step) : out.total;
          const value = loss.item();
          if (!Number.isFinite(value)) return { value, parts: out.parts, stats: out.stats };
          (scaler ? scaler.scaleLoss(loss) : loss).div(c.optim.gradAccum).backward();
          return { value, parts: out.parts, stats: out.stats };
        });
        micro += 1;
        let skip = !Number.isFinite(result.value);
        // every rank issues the bucket reductions, also one whose loss was not finite (it skipped backward)
        let late = reducer && micro === c.optim.gradAccum ? reducer.wait() : false;
        if (world > 1) {
          // every rank must take the same branch: a step is skipped when any rank's loss is not finite, and the
          // buckets are reduced again when any rank had a gradient that came after its bucket had started
          const flag = torch.tensor([skip ? 1 : 0, late ? 1 : 0], [2]);
          torch.distributed.allReduce(flag, 'max');
          [skip, late] = flag.toArray().map((v) => v > 0) as [boolean, boolean];
          flag.dispose();
        }
        if (!skip && micro < c.optim.gradAccum) continue;
        micro = 0;
        if (!skip && reducer) {
          reducer.writeBack(late);
          d.model.logit_scale.value.grad?.div_(world);
        }
        if (!skip && scaler && scaler.unscale(d.model.parameters())) {
          // float16 overflow: the normal way a loss scale finds its level, not a training failure
          scaler.update(true);
          opt.zeroGrad();
          state.skippedSteps += 1;
          log(`step ${state.step}: float16 gradients overflowed; step skipped, loss scale now ${scaler.scale}`);
          continue;
        }
        const gradNorm = skip ? NaN : optim.clipGradNorm(d.model.parameters(), c.optim.clipNorm);
        skip ||= !Number.isFinite(gradNorm);
        if (skip) {
          opt.zeroGrad();
          state.consecutiveNonFinite += 1;
          state.skippedSteps += 1;
          log(
            `step ${state.step}: non-finite loss or gradient (loss ${result.value}); step skipped (${state.consecutiveNonFinite} in a row)`,
          );
          if (state.consecutiveNonFinite >= c.train.maxConsecutiveNonFinite) {
            throw new Error(
              `stopping: ${state.consecutiveNonFinite} consecutive non-finite steps at step ${state.step}; the last good checkpoint is ${lastCheckpoint || '(none yet)'}`,
            );
          }
          continue;
        }
        state.consecutiveNonFinite = 0;
        opt.step();
        opt.zeroGrad();
        scaler?.update(false);
        teacher?.update(d.model);
        sched.step();
        state.step += 1;
        windowSteps += 1;
        lastLoss = result.value;
        if (state.step % c.train.logEvery === 0 || state.step === c.optim.steps) {
          const now = performance.now();
          const secsPerStep = (now - window) / 1000 / Math.max(1, windowSteps);
          const entry = {
            step: state.step,
            epoch: state.epoch,
            loss: result.value,
            ...result.parts,
            ...result.stats,
            gradNorm,
            lr: sched.currentLrs()[0],
            volumesPerS: (c.data.batchSize * c.optim.gradAccum) / secsPerStep,
            dataWait: waited / Math.max(1, now - window),
            liveTensors: torch.memory().numTensors,
            rssMB: process.memoryUsage().rss / 1e6,
            ...(scaler ? { lossScale: scaler.scale } : {}),
          };
          if (leader) appendFileSync(metricsPath, JSON.stringify(entry) + '\n');
          const parts = Object.entries(result.parts)
            .map(([k, v]) => `${k} ${v.toFixed(4)}`)
            .join(' ');
          const eta = secsPerStep * (c.optim.steps - state.step);
          log(
            `step ${state.step}/${c.optim.steps} loss ${result.value.toFixed(4)} (${parts}) lr ${entry.lr!.toExponential(2)} ${entry.volumesPerS.toFixed(1)} vol/s data-wait ${(entry.dataWait * 100).toFixed(0)} % ETA ${fmtTime(eta)}`,
          );
          waited = 0;
          window = now;
          windowSteps = 0;
        }
        if (leader && d.onValidate && (state.step % c.train.validateEvery === 0 || state.step === c.optim.steps)) {
          d.model.eval();
          const m = await d.onValidate(state.step);
          d.model.train();
          appendFileSync(metricsPath, JSON.stringify({ step: state.step, validation: m }) + '\n');
          log(
            `validation at step ${state.step}: ${Object.entries(m)
              .map(([k, v]) => `${k} ${v.toFixed(4)}`)
              .join(', ')}`,
          );
        }
        if (leader && (state.step % c.train.checkpointEvery === 0 || state.step === c.optim.steps))
          lastCheckpoint = save();
        if (state.step >= c.optim.steps) break;
      }
      if (state.step >= c.optim.steps) break;
      state.epoch += 1;
      state.batchInEpoch = 0;
    }
  } finally {
    await d.loader.close();
    reducer?.dispose();
    opt.dispose();
    queue.dispose();
    teacher?.model.dispose();
  }
  log(
    `done: ${state.step} steps in ${fmtTime((performance.now() - t0) / 1000)}, ${state.skippedSteps} skipped; checkpoint ${lastCheckpoint}`,
  );
  return { step: state.step, skippedSteps: state.skippedSteps, lastLoss, checkpoint: lastCheckpoint };
}
