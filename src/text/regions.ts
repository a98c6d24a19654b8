// The lung regions a report places findings in ("… in the right upper lobe"), for local views anchored on what the
// report describes. Sentences that deny ("no …") name no region.

export type RegionSide = 'right' | 'left';
export type RegionLobe = 'upper' | 'middle' | 'lower';
export interface Region {
  side: RegionSide;
  lobe: RegionLobe;
}

/** The five lobes, in a fixed order (right upper, middle, lower; left upper, lower). */
export const LOBES: readonly Region[] = [
  { side: 'right', lobe: 'upper' },
  { side: 'right', lobe: 'middle' },
  { side: 'right', lobe: 'lower' },
  { side: 'left', lobe: 'upper' },
  { side: 'left', lobe: 'lower' },
];

const NAMED = /\b(right|left) (upper|middle|lower) lobe\b/gi;
const DENIES = /\bno\b|\bwithout\b/i;

/** Distinct regions named by the report's affirming sentences, in order of first mention. */
export function reportRegions(report: string): Region[] {
  const out: Region[] = [];
  for (const sentence of report.split(/(?<=\.)\s+/)) {
    if (DENIES.test(sentence)) continue;
    for (const m of sentence.matchAll(NAMED)) {
      const r = { side: m[1]!.toLowerCase() as RegionSide, lobe: m[2]!.toLowerCase() as RegionLobe };
      if (r.side === 'left' && r.lobe === 'middle') continue;
      if (!out.some((o) => o.side === r.side && o.lobe === r.lobe)) out.push(r);
    }
  }
  return out;
}
