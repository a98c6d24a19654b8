// TMA formulation 'fused' (the first formulation, and the default for configs written before formulations existed):
// every view, fused with the report by cross-attention, predicts the report's Sinkhorn codes. It breaks the rule the
// later formulations keep — a predictor never sees the report; text may shape only the targets — and is kept as the
// ablation that showed why: a view that reads the report can predict the report's codes without looking at the
// image (the leak diagnostic, stats.tmaLeakGap, is then near 0).
import * as torch from '../../torch/index.js';
import { type Tensor } from '../../torch/index.js';
import {
  type SwappedSetup,
  type TmaBaseConfig,
  type TmaFormulationSpec,
  type TmaOption,
  prototypeText,
  roll,
  swappedPrediction,
  teacherEmbeddings,
  teacherMomentumOption,
} from './shared.js';
import { type TeacherScheduleConfig, prototypeOptions, teacherNeeds, teacherScheduleOptions } from './options.js';

export interface FusedTmaConfig extends TmaBaseConfig, TeacherScheduleConfig {
  /** absent means 'fused' */
  formulation?: 'fused';
  /** views whose Sinkhorn codes are targets, 'text' and/or 'global' */
  codeViews: ('text' | 'global')[];
  /** > 0 = codes come from an EMA (momentum) teacher of the whole model instead of the student */
  teacherMomentum?: number;
}

const codeViewsOption: TmaOption = {
  key: 'codeViews',
  // the presets carry codeViews whatever the formulation: never an error elsewhere
  inUse: () => false,
  check: (views) =>
    [...(views as unknown[])]
      .filter((v) => v !== 'text' && v !== 'global')
      .map((v) => `objective.tma.codeViews: '${String(v)}' is not 'text' or 'global'`),
};

export const fused: TmaFormulationSpec<FusedTmaConfig> = {
  options: [codeViewsOption, teacherMomentumOption, ...prototypeOptions, ...teacherScheduleOptions],
  needs: (cfg) => ({
    report: cfg.useText || cfg.codeViews.includes('text'),
    sentenceIndex: false,
    localViews: true,
    ...teacherNeeds(cfg),
  }),
  validate: () => [],
  term(model, x, cfg, queue) {
    const useText = prototypeText(model, x, cfg);
    const p = model.prototypes;
    const V = x.numLocal;
    const text = useText ? { tokens: x.report!.tokens, paddingMask: x.report!.paddingMask } : undefined;
    const scores = new Map<string, Tensor>();
    const codeEmb = new Map<string, Tensor>();
    const hGlobal = model.fusion.forward(x.global.tokens, text);
    scores.set('global', p.scores(hGlobal));
    if (x.locals) {
      const hLocal = model.fusion.forwardViews(x.locals.tokens, V, text);
      hLocal.chunk(V, 0).forEach((h, v) => scores.set(`local${v}`, p.scores(h)));
    }
    if (x.report && cfg.codeViews.includes('text')) scores.set('text', p.scores(x.report.emb));
    const codeViews: string[] = cfg.codeViews.filter((v) => scores.has(v));
    codeEmb.set('global', hGlobal);
    if (x.report) codeEmb.set('text', x.report.emb);
    const s: SwappedSetup = { scores, codeViews, codeEmb };
    if (x.teacher) {
      const teacher = x.teacher.model;
      teacher.prototypes.normalize_();
      const emb = teacherEmbeddings(teacher, x.teacher.batch, cfg.codeViews, cfg.useText, 'fusion');
      const codeScores = new Map(codeViews.map((v) => [v, teacher.prototypes.scores(emb.get(v)!)]));
      s.codes = { scores: codeScores, prototypes: teacher.prototypes };
      for (const v of codeViews) codeEmb.set(v, emb.get(v)!);
    }
    if (text && codeViews.includes('text')) {
      const rolled = () =>
        torch.noGrad(() =>
          torch.tidy(() => {
            return p.scores(model.fusion.forward(roll(x.global.tokens), text));
          }),
        );
      s.leak = { view: 'global', codeView: 'text', rolled };
    }
    return swappedPrediction(model, s, cfg, x.global.emb.size(0), queue);
  },
};
