// TMA formulation 'swapped' — (a) cross-modal swapped prediction: every view's pure visual embedding predicts the
// report's Sinkhorn codes, and the report predicts the global view's codes. No predictor sees the report; text
// shapes only the targets, so a view cannot predict the codes without looking at the image.
// useText false: the vision-only multi-crop counterpart, the local views predict the global view's codes.
import * as torch from '../../torch/index.js';
import { type Tensor } from '../../torch/index.js';
import {
  type SwappedSetup,
  type TmaBaseConfig,
  type TmaFormulationSpec,
  prototypeText,
  roll,
  swappedPrediction,
} from './shared.js';
import { averageByCodeViewOption, localToGlobalOption, prototypeOptions } from './options.js';

export interface SwappedTmaConfig extends TmaBaseConfig {
  formulation: 'swapped';
  /** SwAV's averaging: each code view's predictors averaged first, then the code views (options.ts) */
  averageByCodeView?: boolean;
  /** with text, the local views also predict the global view's codes; with averageByCodeView too, every code view is
   * predicted by all other views, as in SwAV */
  localToGlobal?: boolean;
}

export const swapped: TmaFormulationSpec<SwappedTmaConfig> = {
  options: [...prototypeOptions, averageByCodeViewOption, localToGlobalOption],
  needs: (cfg) => ({ report: cfg.useText, sentenceIndex: false, localViews: true, teacherMomentum: 0 }),
  validate: () => [],
  term(model, x, cfg, queue) {
    const useText = prototypeText(model, x, cfg);
    const p = model.prototypes;
    const localNames = Array.from({ length: x.locals ? x.numLocal : 0 }, (_, v) => `local${v}`);
    const scores = new Map<string, Tensor>();
    const codeEmb = new Map<string, Tensor>();
    scores.set('global', p.scores(x.global.emb));
    x.locals?.emb.chunk(x.numLocal, 0).forEach((z, v) => scores.set(localNames[v]!, p.scores(z)));
    codeEmb.set('global', x.global.emb);
    let s: SwappedSetup;
    if (useText) {
      scores.set('text', p.scores(x.report!.emb));
      codeEmb.set('text', x.report!.emb);
      const pairs: [string, string][] = [
        ['global', 'text'],
        ...localNames.map((v): [string, string] => [v, 'text']),
        ['text', 'global'],
        ...(cfg.localToGlobal ? localNames.map((v): [string, string] => [v, 'global']) : []),
      ];
      const rolled = () => torch.noGrad(() => roll(scores.get('global')!.detach()));
      const leak = { view: 'global', codeView: 'text', rolled };
      s = { scores, codeViews: ['text', 'global'], codeEmb, pairs, leak };
    } else {
      if (!localNames.length) {
        throw new Error(
          'objective.tma: the vision-only swapped formulation (useText false) needs local views ' +
            '(data.views.numLocal ≥ 1)',
        );
      }
      s = { scores, codeViews: ['global'], codeEmb, pairs: localNames.map((v): [string, string] => [v, 'global']) };
    }
    return swappedPrediction(model, s, cfg, x.global.emb.size(0), queue);
  },
};
