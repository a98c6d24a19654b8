// `node dist/bench/tma-leak.js <run-or-checkpoint> [batches]`: does the TMA predictor look at the volume? On
// held-out batches, the global view's text-informed features predict the report's Sinkhorn codes (as in
// training); the TMA cross-entropy is compared between the true volumes, the volumes rolled by one within
// the batch (each report paired with another patient's scan), and blank volumes. Equal losses mean the
// prediction comes from the report tokens the fusion attends to, not from the image.
import * as torch from '../src/torch/index.js';
import { type Tensor } from '../src/torch/index.js';
import { loadRunCheckpoint } from '../src/train/factory.js';
import { Loader } from '../src/data/loader.js';
import { toBigInt64 } from '../src/text/wordpiece.js';
import { sinkhorn } from '../src/objectives/tma/shared.js';

const [dir, batchesArg] = process.argv.slice(2);
if (!dir) throw new Error('usage: node dist/bench/tma-leak.js <run-or-checkpoint> [batches]');
const { config: c, model, tokenizer } = loadRunCheckpoint(dir);
const loader = new Loader({
  cacheDir: c.data.cache,
  split: c.data.valSplit,
  batchSize: c.data.batchSize,
  seed: 0,
  shuffle: false,
  workers: 1,
  views: { numLocal: 0, globalIntensity: false, noiseStd: 0 },
});
const sums = { true: 0, rolled: 0, blank: 0 };
let n = 0;
for await (const b of loader.epoch(0)) {
  torch.noGrad(() =>
    torch.tidy(() => {
      const x = torch.tensor(b.global, [b.indices.length, 1, ...loader.globalShape]);
      const enc = tokenizer.encodeBatch(b.reports, { maxLength: c.data.maxTokens, padding: 'longest' });
      const report = model.encodeReport(
        torch.tensor(toBigInt64(enc.inputIds), enc.shape),
        torch.tensor(toBigInt64(enc.attentionMask), enc.shape),
      );
      model.prototypes.normalize_();
      const codes = sinkhorn(model.prototypes.scores(report.emb), {
        epsilon: c.objective.tma.epsilon,
        iterations: c.objective.tma.sinkhornIterations,
      });
      const text = c.objective.tma.useText ? { tokens: report.tokens, paddingMask: report.paddingMask } : undefined;
      const ce = (v: Tensor) => {
        const h = model.fusion.forward(model.encodeVolume(v).tokens, text);
        return codes
          .mul(model.prototypes.scores(h).div(c.objective.tma.temperature).logSoftmax(1))
          .sum(1)
          .mean()
          .neg()
          .item();
      };
      sums.true += ce(x);
      sums.rolled += ce(x.roll([1], [0]));
      sums.blank += ce(torch.zerosLike(x));
    }),
  );
  if (++n >= Number(batchesArg ?? 50)) break;
}
await loader.close();
const K = c.model.prototypes;
console.log(
  `${dir}: TMA cross-entropy over ${n} held-out batches (uniform prediction = log K = ${Math.log(K).toFixed(3)}): ` +
    `true volumes ${(sums.true / n).toFixed(3)}, volumes rolled within the batch ${(sums.rolled / n).toFixed(3)}, blank volumes ${(sums.blank / n).toFixed(3)}`,
);
model.dispose();
