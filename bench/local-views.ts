// `node dist/bench/local-views.js`: how often a 48³ local view at the cache's resolution contains a version-2 local
// finding (synthetic generator version 2, cpu-mr), by where the crop is anchored: uniformly, on an organ voxel
// ('foreground'), on the lobe the finding's sentence names (the 'report' anchor for that sentence), on a lobe drawn from
// all that the report names (what 'report' does per crop), and the fixed crop of its lobe (the crop-scale readout's,
// anchor 'lobes'). A crop contains a finding when it holds at least half of the finding's elements.
// Env: COUNT (volumes, 24), SEED (0), DRAWS (crops per finding and anchor, 200).
import * as torch from '../src/torch/index.js';
import { loadPreset } from '../src/data/presets.js';
import { generateCase } from '../src/data/synth/generate.js';
import { synthGeometry } from '../src/data/synth/geometry.js';
import { lpsArrayAffine } from '../src/data/synth/dataset.js';
import { CenterCropOrPad, Orient, Resample, compose } from '../src/data/transforms.js';
import { DEFAULT_VIEWS, foregroundVoxels, localBox, type Box, type Shape3 } from '../src/data/views.js';
import { lobeCentre, lungBoxes } from '../src/data/lobes.js';
import { reportRegions } from '../src/text/regions.js';
import { Rng } from '../src/util/rng.js';

const count = Number(process.env.COUNT ?? 24);
const seed = Number(process.env.SEED ?? 0);
const draws = Number(process.env.DRAWS ?? 200);
const preset = loadPreset('cpu-mr');
const geo = synthGeometry(preset);
const crop: Shape3 = [48, 48, 48];
const cfg = { ...DEFAULT_VIEWS, localShape: crop };
const [D, H, W] = preset.shape;
const [sx, sy, sz] = preset.spacing;

/** The organ mask on the cache's grid, through the cache's own transforms. */
function cacheMask(c: ReturnType<typeof generateCase>): Uint8Array {
  const [d, h, w] = c.shape;
  const v = { data: torch.tensor(c.mask, [d, h, w]), spacing: c.spacing, affine: lpsArrayAffine(c.shape, c.spacing) };
  const out = compose(
    new Orient(),
    new Resample(preset.spacing, 'nearest'),
    new CenterCropOrPad(preset.shape, 0),
  ).apply(v);
  const bytes = Uint8Array.from(out.data.to('uint8').toArray() as ArrayLike<number>);
  torch.dispose([v.data, out.data]);
  return bytes;
}

const inside = (b: Box, p: Shape3) => p.every((x, a) => x >= b.start[a]! - 0.5 && x < b.start[a]! + b.size[a]! - 0.5);
const tally: Record<string, [number, number]> = {};
const add = (k: string, hit: boolean) => {
  const t = (tally[k] ??= [0, 0]);
  t[0] += hit ? 1 : 0;
  t[1] += 1;
};
let inLung = 0,
  elements = 0;
const t0 = Date.now();
for (let i = 0; i < count; i++) {
  const c = generateCase(seed, i, geo, 'raw', { version: 2 });
  if (c.localFindings.length === 0) continue;
  const mask = cacheMask(c);
  const boxes = lungBoxes(mask, preset.shape);
  const regions = reportRegions(`${c.report.findings} ${c.report.impressions}`);
  const rng = new Rng(seed, 0x10ca1, i);
  for (const f of c.localFindings) {
    // patient mm (LPS, centred on the volume) → cache voxels (D, H, W)
    const vox = f.elementsMm!.map((p) => [p[2] / sz + (D - 1) / 2, p[1] / sy + (H - 1) / 2, p[0] / sx + (W - 1) / 2]);
    for (const p of vox) {
      const at = Math.round(p[0]!) * H * W + Math.round(p[1]!) * W + Math.round(p[2]!);
      inLung += mask[at]! === 1 || mask[at]! === 2 ? 1 : 0;
      elements += 1;
    }
    const holds = (b: Box) => vox.filter((p) => inside(b, p as Shape3)).length >= 0.5 * vox.length;
    const region = { side: f.side, lobe: f.lobe };
    const fixed = lobeCentre(boxes, region)!;
    add('lobes (its lobe, fixed)', holds(localBox(preset.shape, { ...cfg, flipProb: 0 }, rng, crop, fixed)));
    for (let k = 0; k < draws; k++) {
      add('uniform', holds(localBox(preset.shape, cfg, rng, crop)));
      add(
        'foreground',
        holds(localBox(preset.shape, cfg, rng, crop, foregroundVoxels(mask, preset.shape, 1, rng)![0])),
      );
      add('report, its sentence', holds(localBox(preset.shape, cfg, rng, crop, lobeCentre(boxes, region, rng))));
      const any = lobeCentre(boxes, rng.pick(regions), rng);
      add('report, a region drawn per crop', holds(localBox(preset.shape, cfg, rng, crop, any)));
    }
  }
  process.stdout.write(`\r${i + 1}/${count} volumes (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
}
console.log(`\nelements whose cache voxel is lung: ${((100 * inLung) / elements).toFixed(1)} % of ${elements}`);
console.log('| crop anchor | findings × crops | contains the finding |\n|---|---|---|');
for (const [k, [hit, n]] of Object.entries(tally)) console.log(`| ${k} | ${n} | ${(hit / n).toFixed(3)} |`);
