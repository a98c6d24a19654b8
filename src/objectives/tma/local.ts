// TMA formulation 'local' — (c) fine-grained local alignment (GLoRIA-like, no prototypes): each sentence embedding of
// a report attends over a volume's local-view embeddings; the volume–report score is the mean over sentences of the
// cosine between sentence and attended context; a symmetric InfoNCE over the batch. Text shapes the local features,
// and a report cannot score its own volume higher without looking at it.
import * as torch from '../../torch/index.js';
import { F, type Tensor } from '../../torch/index.js';
import { type TmaBaseConfig, type TmaFormulationSpec, pooledSentences } from './shared.js';

export interface LocalTmaConfig extends TmaBaseConfig {
  formulation: 'local';
}

/** Temperature τ both sharpens the attention over views and scales the scores. The leak gap is the reports'
 * cross-entropy of the next patient's volume minus their own. */
export const local: TmaFormulationSpec<LocalTmaConfig> = {
  options: [],
  needs: (cfg) => ({ report: cfg.useText, sentenceIndex: true, localViews: true, teacherMomentum: 0 }),
  validate: (tma) =>
    tma.useText === false
      ? [
          "objective.tma.formulation 'local' aligns local views with the report's sentences: " +
            'it needs objective.tma.useText true',
        ]
      : [],
  term(model, x, cfg) {
    const tau = cfg.temperature;
    if (!x.report || !x.sentenceIndex) {
      throw new Error(
        "objective.tma.formulation 'local' needs tokenised reports and their sentence indices " +
          '(objective.tma.useText true)',
      );
    }
    if (!x.locals || x.numLocal < 1) {
      throw new Error("objective.tma.formulation 'local' needs local views (data.views.numLocal ≥ 1)");
    }
    const V = x.numLocal,
      D = x.locals.emb.size(1);
    const { tokens } = x.report;
    const world = torch.distributed.worldSize;
    let { sentences, count } = pooledSentences(model, tokens, x.sentenceIndex);
    let views = x.locals.emb.view(V, -1, D).transpose(0, 1); // (b, V, D): locals are V chunks of b
    if (world > 1) {
      // data-parallel: the score matrix over the global batch on every rank, this rank's rows keeping their gradient
      // (as CLIP's embeddings): the ranks' gradients then sum to the single-process gradient
      sentences = torch.distributed.gatherWithLocalGrad(sentences);
      views = torch.distributed.gatherWithLocalGrad(views.contiguous());
      count = torch.cat(torch.distributed.allGather(count), 0);
    }
    const [B, S] = sentences.shape as [number, number, number];
    const sim = sentences
      .reshape(B * S, D)
      .matmul(views.reshape(B * V, D).T)
      .view(B, S, B, V);
    const context = sim
      .div(tau)
      .softmax(-1)
      .unsqueeze(-1)
      .mul(views.view(1, 1, B, V, D))
      .sum(3); // (B, S, B, D)
    const cosine = F.normalize(context, -1).mul(sentences.unsqueeze(2)).sum(-1); // (B, S, B)
    const present = count.gt(0).to(tokens.dtype).unsqueeze(2);
    const logits = cosine.mul(present).sum(1).div(present.sum(1).clampMin(1)).div(tau); // (reports, volumes)
    const target = torch.arange(B, undefined, 1, { device: tokens.device });
    const loss = F.crossEntropy(logits, target).add(F.crossEntropy(logits.T, target)).mul(0.5);
    const stats: Record<string, number> = {};
    if (B > 1) {
      stats.tmaLeakGap = torch.noGrad(() =>
        torch.tidy(() => {
          const logp = logits.detach().logSoftmax(1);
          const at = (t: Tensor) => logp.gather(1, t.unsqueeze(1)).squeeze(1);
          return at(target)
            .sub(at(target.add(1).remainder(B)))
            .mean()
            .item();
        }),
      );
    }
    return { loss, stats };
  },
};
