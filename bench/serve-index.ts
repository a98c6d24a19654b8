// What the web-server benchmarks search: the checkpoint's table filled with `rows` synthetic unit vectors of its
// embedding size, so that a search costs what it would over an index of that many cases.
import { VectorIndex, type IndexRow } from '../src/service/vector-index.js';
import { openAnalyzer } from '../src/service/analyzer.js';
import { Rng } from '../src/util/rng.js';

/** Fills the index at `dir` for `checkpoint`; answers the embedding size. */
export async function syntheticIndex(checkpoint: string, dir: string, rows: number): Promise<number> {
  const analyzer = await openAnalyzer({ checkpoint, log: (l) => console.error(l) });
  const { checkpointId } = analyzer;
  const D = analyzer.embedTexts(['probe'])[0]!.length;
  analyzer.dispose();
  const rng = new Rng(0);
  const index = await VectorIndex.open(dir, checkpointId);
  for (let at = 0; at < rows; at += 5000) {
    await index.add(
      Array.from({ length: Math.min(5000, rows - at) }, (_, j): IndexRow => {
        const v = Array.from({ length: D }, () => rng.normal(0, 1));
        const n = Math.hypot(...v);
        return {
          id: `case_${at + j}`,
          source: 'volumes/none.safetensors',
          split: 'train',
          report: 'No pleural effusion. Heart size is normal.',
          labels: [],
          findings: {},
          checkpointId,
          vector: v.map((x) => x / n),
        };
      }),
    );
  }
  return D;
}

/** Query texts of the benchmarks: each a different text, as users' searches are. */
const findings = [
  'pleural effusion',
  'cardiomegaly',
  'lung nodule',
  'emphysema',
  'atelectasis',
  'consolidation',
  'hiatal hernia',
  'lymphadenopathy',
];
const sides = ['right', 'left', 'bilateral', 'small', 'large', 'mild', 'moderate', 'no'];
export const query = (i: number): string =>
  `${sides[i % sides.length]} ${findings[Math.floor(i / sides.length) % findings.length]} ${i}`;

export const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
};
