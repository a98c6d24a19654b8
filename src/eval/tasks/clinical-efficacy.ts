// Clinical efficacy of generated reports: the labels the rule-based extractor reads from the generated report
// against those it reads from the reference, as micro / macro precision, recall and F1 (zero_division = 0).
import { EXTRACTED_LABELS } from '../../text/label-extractor.js';

export interface ClinicalEfficacy {
  microPrecision: number;
  microRecall: number;
  microF1: number;
  macroPrecision: number;
  macroRecall: number;
  macroF1: number;
  perLabel: { label: string; precision: number; recall: number; f1: number }[];
}

const ratio = (a: number, b: number): number => (b > 0 ? a / b : 0);

/** Micro / macro precision, recall and F1 of generated labels against reference labels (zero_division = 0). */
export function clinicalEfficacy(
  reference: number[][],
  generated: number[][],
  labelNames: readonly string[] = EXTRACTED_LABELS,
): ClinicalEfficacy {
  if (reference.length !== generated.length)
    throw new Error(`clinicalEfficacy: ${reference.length} reference rows but ${generated.length} generated rows`);
  const L = labelNames.length;
  const tp = new Array<number>(L).fill(0),
    fp = new Array<number>(L).fill(0),
    fn = new Array<number>(L).fill(0);
  reference.forEach((ref, n) => {
    const gen = generated[n]!;
    if (ref.length !== L || gen.length !== L)
      throw new Error(`clinicalEfficacy: row ${n} has ${ref.length} / ${gen.length} labels, expected ${L}`);
    for (let i = 0; i < L; i++) {
      if (gen[i] && ref[i]) tp[i]!++;
      else if (gen[i]) fp[i]!++;
      else if (ref[i]) fn[i]!++;
    }
  });
  const perLabel = labelNames.map((label, i) => ({
    label,
    precision: ratio(tp[i]!, tp[i]! + fp[i]!),
    recall: ratio(tp[i]!, tp[i]! + fn[i]!),
    f1: ratio(2 * tp[i]!, 2 * tp[i]! + fp[i]! + fn[i]!),
  }));
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  const TP = sum(tp),
    FP = sum(fp),
    FN = sum(fn);
  const mean = (k: 'precision' | 'recall' | 'f1') => (L ? sum(perLabel.map((p) => p[k])) / L : 0);
  return {
    microPrecision: ratio(TP, TP + FP),
    microRecall: ratio(TP, TP + FN),
    microF1: ratio(2 * TP, 2 * TP + FP + FN),
    macroPrecision: mean('precision'),
    macroRecall: mean('recall'),
    macroF1: mean('f1'),
    perLabel,
  };
}
