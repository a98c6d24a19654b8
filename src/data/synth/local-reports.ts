// Report text for version 2's local findings (local-findings.ts): each positive one is named with its side and lobe
// ("Micronodules are observed in the right upper lobe."), each negative one is denied or left out, as reports.ts does
// for CT-RATE's labels. Kept apart from reports.ts so that the version-1 reports stay exactly as they were.
import { Rng } from '../../util/rng.js';
import { LOCAL_FINDING_LABELS, type LocalFindingLabel } from '../../domain/local-findings.js';
import { type ReportText } from './reports.js';
import { type LocalFinding } from './local-findings.js';

const where = (f: LocalFinding): string => `the ${f.side} ${f.lobe} lobe`;

const POSITIVE: Record<LocalFindingLabel, ((f: LocalFinding) => string)[]> = {
  Micronodules: [
    (f) => `Multiple micronodules are observed in ${where(f)}.`,
    (f) => `Scattered micronodules are seen in ${where(f)}.`,
  ],
  'Fine reticulation': [
    (f) => `Fine reticulation is noted in ${where(f)}.`,
    (f) => `A fine reticular pattern is observed in ${where(f)}.`,
  ],
  'Tree-in-bud': [
    (f) => `A tree-in-bud pattern is seen in ${where(f)}.`,
    (f) => `Tree-in-bud appearance is noted in ${where(f)}, suggesting small airway infection.`,
  ],
};
const NEGATIVE: Record<LocalFindingLabel, string[]> = {
  Micronodules: ['No micronodules are seen.'],
  'Fine reticulation': ['No reticular pattern is seen.'],
  'Tree-in-bud': ['No tree-in-bud pattern is observed.'],
};
const IMPRESSION: Record<LocalFindingLabel, string> = {
  Micronodules: 'micronodules',
  'Fine reticulation': 'fine reticulation',
  'Tree-in-bud': 'tree-in-bud pattern',
};
/** The generic closing sentences of reports.ts's findings; the local findings go before them, with the lungs. */
const CLOSING = /^(Upper abdominal organs|Bone structures|Degenerative changes)/;

/**
 * A version-1 report with the local findings added: their sentences before the closing ones of the findings section,
 * and one impression each (replacing the "no pathology" line of a report that had no other finding).
 */
export function withLocalFindings(
  report: ReportText,
  local: LocalFinding[],
  otherFindings: number,
  rng: Rng,
): ReportText {
  const byLabel = new Map(local.map((f) => [f.label, f]));
  const added: string[] = [];
  for (const label of LOCAL_FINDING_LABELS) {
    const f = byLabel.get(label);
    if (f) added.push(rng.pick(POSITIVE[label])(f));
    else if (rng.bool(0.55)) added.push(rng.pick(NEGATIVE[label]));
  }
  const sentences = report.findings.split(/(?<=\.)\s+/);
  const at = sentences.findIndex((s) => CLOSING.test(s));
  sentences.splice(at < 0 ? sentences.length : at, 0, ...added);
  const impressions = local.map((f) => `${IMPRESSION[f.label].replace(/^./, (c) => c.toUpperCase())} in ${where(f)}.`);
  return {
    ...report,
    findings: sentences.join(' '),
    impressions:
      impressions.length === 0
        ? report.impressions
        : otherFindings === 0
          ? impressions.join(' ')
          : `${report.impressions} ${impressions.join(' ')}`,
  };
}
