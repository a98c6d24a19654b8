// Scoring the segmentation task's test split: each volume segmented whole by sliding-window inference, Dice and
// HD95 per foreground class (seg-metrics conventions, see segmentation.ts), and truth | prediction overlays.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../../torch/index.js';
import { type CacheEntry } from '../../data/cache.js';
import { encodePng } from '../../io/png.js';
import { type SegmentationNet } from '../../models/seg-decoder.js';
import { type BlendMode, slidingWindowInference } from './sliding-window.js';
import { diceScore, hausdorff95 } from '../metrics/segmentation.js';
import { caseInput, type CaseData, type InputSettings, type Triple, type VolumeReader } from './segmentation-data.js';
import { type SegmentationResult } from './segmentation.js';

/** Class-index prediction (D, H, W) of one volume (model input, see caseInput) by sliding-window inference. */
export function predictVolume(
  net: SegmentationNet,
  volume: Float32Array,
  shape: Triple,
  o: { roi: Triple; overlap: number; blend?: BlendMode; swBatchSize?: number; padValue?: number; device?: string },
): Uint8Array {
  return torch.tidy(() => {
    let x = torch.tensor(volume, [1, 1, ...shape]);
    if (o.device && o.device !== 'cpu') x = x.to({ device: o.device });
    const logits = slidingWindowInference(x, (w) => net.forward(w), {
      roiSize: o.roi,
      overlap: o.overlap,
      mode: o.blend ?? 'gaussian',
      swBatchSize: o.swBatchSize ?? 2,
      padValue: o.padValue ?? 0,
    });
    return logits.argmax(1).squeeze(0).to({ dtype: 'uint8', device: 'cpu' }).toTypedArray() as Uint8Array;
  });
}

const finiteMean = (xs: number[]): number => {
  const ok = xs.filter(Number.isFinite);
  return ok.length ? ok.reduce((a, b) => a + b, 0) / ok.length : NaN;
};

export interface TestOptions {
  /** sliding window = the training patch */
  patch: Triple;
  overlap: number;
  blend?: BlendMode;
  swBatchSize?: number;
  /** how cached HU become model inputs (the preset's) */
  input: InputSettings;
  device: string;
  /** overlays of the first N cases, written to outDir/overlays */
  overlays: number;
  outDir?: string;
  log: (msg: string) => void;
}

/** Segments and scores every test volume; `classes` are all of them, background first. */
export async function scoreTestSplit(
  net: SegmentationNet,
  reader: VolumeReader,
  test: CacheEntry[],
  classes: string[],
  o: TestOptions,
): Promise<Omit<SegmentationResult, 'trainLoss'>> {
  net.eval();
  const fg = classes.slice(1);
  const perCase: SegmentationResult['perCase'] = [];
  const overlays: string[] = [];
  const overlayDir = o.outDir ? join(o.outDir, 'overlays') : '';
  if (o.overlays > 0) mkdirSync(overlayDir, { recursive: true });
  let inferSeconds = 0;
  for (const [i, e] of test.entries()) {
    const c = reader.read(e);
    const { volume, padValue } = caseInput(c, o.input);
    const t0 = process.hrtime.bigint();
    const pred = predictVolume(net, volume, c.shape, {
      roi: o.patch,
      overlap: o.overlap,
      blend: o.blend,
      swBatchSize: o.swBatchSize,
      padValue,
      device: o.device,
    });
    inferSeconds += Number(process.hrtime.bigint() - t0) / 1e9;
    const [sx, sy, sz] = e.spacing as Triple;
    const spacing: Triple = [sz, sy, sx]; // cache spacing is (x, y, z); arrays are (D, H, W) = (z, y, x)
    const dice = fg.map((_, k) => diceScore(pred, c.mask, k + 1));
    const hd95 = fg.map((_, k) => hausdorff95(pred, c.mask, c.shape, spacing, k + 1));
    perCase.push({ name: e.name, dice, hd95 });
    if (i < o.overlays) overlays.push(...writeOverlays(overlayDir, e.name, c, pred, spacing));
    o.log(`test ${i + 1}/${test.length} ${e.name}: Dice ${finiteMean(dice).toFixed(3)}`);
    await new Promise((r) => setImmediate(r));
  }

  const perClassDice: Record<string, number> = {},
    perClassHd: Record<string, number> = {},
    infinite: Record<string, number> = {};
  fg.forEach((name, k) => {
    perClassDice[name] = finiteMean(perCase.map((p) => p.dice[k]!));
    const hd = perCase.map((p) => p.hd95[k]!);
    perClassHd[name] = finiteMean(hd);
    infinite[name] = hd.filter((v) => v === Infinity).length;
  });
  return {
    classes: fg,
    dice: { mean: finiteMean(Object.values(perClassDice)), perClass: perClassDice },
    hd95: { mean: finiteMean(Object.values(perClassHd)), perClass: perClassHd, infinite },
    perCase,
    overlays,
    volumesPerSecond: test.length / Math.max(inferSeconds, 1e-9),
  };
}

const PALETTE: Triple[] = [
  [0, 0, 0],
  [230, 60, 60],
  [60, 200, 80],
  [70, 120, 255],
  [250, 210, 40],
  [220, 70, 220],
  [40, 220, 230],
  [255, 140, 30],
  [150, 100, 255],
];

/**
 * Truth | prediction mid slices of one case as three PNGs (image in gray, classes in colour), resampled
 * (nearest) to square pixels from the voxel spacing, the longer side about 256 px.
 */
function writeOverlays(dir: string, name: string, c: CaseData, pred: Uint8Array, spacing: Triple): string[] {
  const [D, H, W] = c.shape;
  const [sd, sh, sw] = spacing;
  const lo = -1000,
    hi = 400; // HU window (the cache stores HU) that shows lungs and soft tissue together
  const at = (z: number, y: number, x: number) => (z * H + y) * W + x;
  // rows × cols (with their spacings) → voxel index; D is flipped so that superior is up (LPS: +z is superior)
  const planes: [string, number, number, number, number, (r: number, q: number) => number][] = [
    ['axial', H, W, sh, sw, (r, q) => at(Math.floor(D / 2), r, q)],
    ['coronal', D, W, sd, sw, (r, q) => at(D - 1 - r, Math.floor(H / 2), q)],
    ['sagittal', D, H, sd, sh, (r, q) => at(D - 1 - r, q, Math.floor(W / 2))],
  ];
  const out: string[] = [];
  for (const [plane, rows, cols, sr, sc, idx] of planes) {
    const px = Math.min(sr, sc, Math.max(rows * sr, cols * sc) / 256);
    const outRows = Math.max(1, Math.round((rows * sr) / px)),
      outCols = Math.max(1, Math.round((cols * sc) / px));
    const gap = 4,
      width = 2 * outCols + gap;
    const pixels = new Uint8Array(outRows * width * 3);
    for (let r = 0; r < outRows; r++) {
      const vr = Math.min(rows - 1, Math.floor(((r + 0.5) * px) / sr));
      for (let q = 0; q < outCols; q++) {
        const i = idx(vr, Math.min(cols - 1, Math.floor(((q + 0.5) * px) / sc)));
        const g = Math.max(0, Math.min(255, Math.round(((c.image[i]! - lo) / (hi - lo)) * 255)));
        [c.mask[i]!, pred[i]!].forEach((label, side) => {
          const o = (r * width + side * (outCols + gap) + q) * 3;
          const col = label > 0 ? PALETTE[label % PALETTE.length]! : undefined;
          for (let ch = 0; ch < 3; ch++) pixels[o + ch] = col ? Math.round(0.55 * g + 0.45 * col[ch]!) : g;
        });
      }
    }
    const path = join(dir, `${name}-${plane}.png`);
    writeFileSync(path, encodePng(pixels, width, outRows, 3));
    out.push(path);
  }
  return out;
}
