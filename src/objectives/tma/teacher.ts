// TMA formulation 'teacher' — (b) text-informed teacher codes: an EMA teacher's Sinkhorn codes of the global view
// with the report are the targets; the student's pure visual embeddings of the other views (the local views) predict
// them, as DINO's student predicts its teacher's global crops. The student never reads the report.
// teacherCodes 'fusion' (default): the teacher fuses the global view's tokens with the report's (cross-attention) —
// but the student never trains that head, so the teacher's copy stays at its random initialisation; 'embedding':
// the teacher's normalised sum of its global-view and report embeddings, both in the CLIP space that training shapes.
// useText false: the same without the report (an EMA-teacher multi-crop, vision only).
import * as torch from '../../torch/index.js';
import { type Tensor } from '../../torch/index.js';
import {
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

export interface TeacherTmaConfig extends TmaBaseConfig, TeacherScheduleConfig {
  formulation: 'teacher';
  /** the EMA teacher's momentum, in (0, 1) */
  teacherMomentum: number;
  /** what the teacher's codes are computed from, 'fusion' (default) or 'embedding' (above) */
  teacherCodes?: 'fusion' | 'embedding';
}

const teacherCodesOption: TmaOption = {
  key: 'teacherCodes',
  inUse: (v) => v !== undefined,
  check: (v) =>
    v === 'fusion' || v === 'embedding'
      ? []
      : [`objective.tma.teacherCodes must be 'fusion' or 'embedding' (got ${JSON.stringify(v)})`],
};

export const teacher: TmaFormulationSpec<TeacherTmaConfig> = {
  options: [teacherMomentumOption, teacherCodesOption, ...prototypeOptions, ...teacherScheduleOptions],
  needs: (cfg) => ({
    report: cfg.useText,
    sentenceIndex: false,
    localViews: true,
    ...teacherNeeds(cfg),
  }),
  validate: (tma) =>
    ((tma.teacherMomentum as number | undefined) ?? 0) > 0
      ? []
      : [
          "objective.tma.formulation 'teacher' takes its codes from an EMA teacher: " +
            'set objective.tma.teacherMomentum in (0, 1), e.g. 0.99',
        ],
  term(model, x, cfg, queue) {
    prototypeText(model, x, cfg);
    if (!x.teacher) {
      throw new Error(
        "objective.tma.formulation 'teacher' needs an EMA teacher: " + 'set objective.tma.teacherMomentum > 0',
      );
    }
    const V = x.numLocal;
    const localNames = Array.from({ length: x.locals ? V : 0 }, (_, v) => `local${v}`);
    if (!x.locals || !localNames.length) {
      throw new Error(
        "objective.tma.formulation 'teacher' needs local views (data.views.numLocal ≥ 1): " +
          "they predict the teacher's codes of the global view",
      );
    }
    const p = model.prototypes;
    const scores = new Map<string, Tensor>();
    const rolled = () => torch.noGrad(() => roll(scores.get(localNames[0]!)!.detach()));
    // the student's global view is scored only because tmaLoss keys codes by view; it predicts nothing
    scores.set('global', p.scores(x.global.emb));
    x.locals.emb.chunk(V, 0).forEach((z, v) => scores.set(localNames[v]!, p.scores(z)));
    const t = x.teacher.model;
    t.prototypes.normalize_();
    const emb = teacherEmbeddings(t, x.teacher.batch, ['global'], cfg.useText, cfg.teacherCodes ?? 'fusion');
    const teacherGlobal = emb.get('global')!;
    return swappedPrediction(
      model,
      {
        scores,
        codeViews: ['global'],
        codeEmb: new Map([['global', teacherGlobal]]),
        pairs: localNames.map((v): [string, string] => [v, 'global']),
        codes: { scores: new Map([['global', t.prototypes.scores(teacherGlobal)]]), prototypes: t.prototypes },
        leak: { view: localNames[0]!, codeView: 'global', rolled },
      },
      cfg,
      x.global.emb.size(0),
      queue,
    );
  },
};
