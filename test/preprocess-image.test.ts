// The slab-by-slab image preprocessing against the independent torch/numpy/nibabel pipeline (the transforms'
// fixtures, scripts/fixtures/make_transform_fixtures.py) and against the whole-volume transforms it replaces,
// over every kind of orientation, down- and upsampling, crop and pad, and stored-value rescaling.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as torch from '../src/torch/index.js';
import { F } from '../src/torch/index.js';
import { readNifti, type Mat4 } from '../src/io/nifti.js';
import { loadPreset, type Preset } from '../src/data/presets.js';
import { preprocessImage } from '../src/data/preprocess-image.js';
import { inputTransform } from '../src/data/input-transform.js';
import { CenterCropOrPad, ClipHU, Orient, RescaleHU, Resample, compose } from '../src/data/transforms.js';
import { type Volume } from '../src/data/volume.js';
import { Rng } from '../src/util/rng.js';
import { assertClose, fixture } from './helpers.js';

interface Expected {
  target_spacing: [number, number, number];
  target_shape: [number, number, number];
  window: [number, number];
  cases: Record<string, unknown>;
}
const exp = JSON.parse(readFileSync(fixture('transforms', 'expected.json'), 'utf8')) as Expected;
const { tensors: ref } = torch.loadSafetensors(fixture('transforms', 'expected.safetensors'));
const presetOf = (
  spacing: [number, number, number],
  shape: [number, number, number],
  huWindow: [number, number],
): Preset => ({ ...loadPreset('cpu-96'), spacing, shape, huWindow });

/** The whole-volume reference: the transforms, then rounding to int16 as the cache stores it. */
function reference(v: Volume, preset: Preset, rescale: { slope: number; intercept: number }): Volume {
  const f = { ...v, data: v.data.to('float32') };
  const r = compose(
    new RescaleHU(rescale.slope, rescale.intercept),
    new Orient(),
    new ClipHU(...preset.huWindow),
    new Resample(preset.spacing),
    new CenterCropOrPad(preset.shape, preset.huWindow[0]),
  ).apply(f);
  const rounded = torch.tidy(() => r.data.round().to('int16'));
  r.data.dispose();
  return { ...r, data: rounded };
}

test('bilinear resizing (N, C, H, W) equals trilinear resizing that keeps the depth, which the slab path relies on', () => {
  const x = torch.randn([2, 3, 11, 17], { generator: new torch.Generator(5) });
  for (const size of [
    [7, 20],
    [11, 17],
    [4, 5],
  ] as [number, number][]) {
    const two = F.interpolate(x, size, 'bilinear');
    const three = torch.tidy(() =>
      F.interpolate(x.view(1, 2, 3, 11, 17), [3, ...size], 'trilinear').view(2, 3, ...size),
    );
    assertClose(two, three, { atol: 1e-6, what: `bilinear to ${size.join('×')}` });
    torch.dispose([two, three]);
  }
  assert.throws(
    () => F.interpolate(x, [2, 3, 4] as unknown as [number, number], 'bilinear'),
    /size must be 2 positive integers/,
  );
  x.dispose();
});

for (const name of Object.keys(exp.cases)) {
  test(`slab-by-slab preprocessing equals the torch/numpy pipeline: ${name}`, async () => {
    const img = await readNifti(fixture('transforms', `${name}.nii.gz`));
    const [x, y, z] = img.dataShape as [number, number, number];
    const vol: Volume = {
      data: torch.tensor(img.data, [z, y, x]),
      spacing: [img.spacing[0]!, img.spacing[1]!, img.spacing[2]!],
      affine: img.affine,
    };
    const out = preprocessImage(vol, presetOf(exp.target_spacing, exp.target_shape, exp.window), name);
    assert.equal(out.data.dtype, 'int16');
    assertClose(out.data, ref.get(`${name}.final`)!, { atol: 1, rtol: 0, what: 'final' });
    const whole = reference(vol, presetOf(exp.target_spacing, exp.target_shape, exp.window), {
      slope: 1,
      intercept: 0,
    });
    assertClose(torch.tensor(out.affine.flat()), whole.affine.flat(), { atol: 1e-9, what: 'affine' });
    torch.dispose([vol.data, out.data, whole.data]);
  });
}

/** An affine whose array axes run along a permutation of the world axes with the given signs. */
function affineOf(perm: number[], signs: number[], spacing: number[]): Mat4 {
  const a: Mat4 = [
    [0, 0, 0, 12.5],
    [0, 0, 0, -40],
    [0, 0, 0, 7],
    [0, 0, 0, 1],
  ];
  perm.forEach((w, c) => {
    a[w]![c] = signs[c]! * spacing[c]!;
  });
  return a;
}

test('slab-by-slab preprocessing equals the whole-volume transforms: orientations, resampling up and down, crop and pad, rescale, several slabs', () => {
  const rng = new Rng(7);
  const cases = [
    // (D, H, W), spacing (x, y, z), world axis of (i, j, k), signs, target spacing, target shape, rescale
    {
      shape: [300, 128, 128],
      spacing: [0.9, 0.9, 1],
      perm: [0, 1, 2],
      signs: [-1, -1, 1],
      to: [1.5, 1.5, 2],
      target: [120, 64, 96],
      rescale: { slope: 1, intercept: -1024 },
    },
    {
      shape: [40, 60, 50],
      spacing: [1.2, 0.8, 2.5],
      perm: [0, 1, 2],
      signs: [1, 1, -1],
      to: [1, 1, 1],
      target: [80, 40, 90],
      rescale: { slope: 1, intercept: 0 },
    },
    {
      shape: [50, 70, 64],
      spacing: [1, 1.5, 2],
      perm: [2, 0, 1],
      signs: [1, -1, -1],
      to: [1.25, 1.25, 1.25],
      target: [64, 64, 64],
      rescale: { slope: 0.5, intercept: -1000 },
    },
    {
      shape: [33, 47, 29],
      spacing: [3, 2, 1.5],
      perm: [1, 2, 0],
      signs: [-1, 1, -1],
      to: [2, 2, 2],
      target: [30, 30, 30],
      rescale: { slope: 2, intercept: -2048 },
    },
  ] as const;
  for (const c of cases) {
    const n = c.shape[0] * c.shape[1] * c.shape[2];
    const stored = new Int16Array(n);
    for (let i = 0; i < n; i++)
      stored[i] = Math.round((rng.next() * 2600 - 1200 - c.rescale.intercept) / c.rescale.slope);
    const vol: Volume = {
      data: torch.tensor(stored, [...c.shape]),
      spacing: [...c.spacing],
      affine: affineOf([...c.perm], [...c.signs], [...c.spacing]),
    };
    const preset = presetOf([...c.to], [...c.target], [-1000, 1000]);
    const out = preprocessImage(vol, preset, 'case', c.rescale);
    const whole = reference(vol, preset, c.rescale);
    const what = `case ${c.shape.join('×')} → ${c.target.join('×')}`;
    assert.deepEqual(out.data.shape, [...c.target], what);
    const [maxDiff, differing] = torch.tidy(() => {
      const d = out.data.to('float32').sub(whole.data.to('float32')).abs();
      return [d.max().item(), d.gt(0).to('float32').sum().item()];
    });
    // float rounding of the separable form can move a value across a .5 boundary, nothing more
    assert.ok(maxDiff <= 1, `${what}: max difference ${maxDiff}`);
    assert.ok(differing <= 1e-3 * out.data.numel, `${what}: ${differing} voxels differ`);
    assertClose(torch.tensor(out.affine.flat()), whole.affine.flat(), { atol: 1e-9, what: `${what}: affine` });
    assertClose(torch.tensor(out.spacing), whole.spacing, { atol: 1e-12, what: `${what}: spacing` });
    torch.dispose([vol.data, out.data, whole.data]);
  }
});

test("geometry 'resize' resamples the whole oriented volume to the shape whatever its spacing; intensity 'minmax' spans [0, 1]", () => {
  const rng = new Rng(3);
  const shape = [20, 30, 26] as const;
  const n = shape[0] * shape[1] * shape[2];
  const stored = new Int16Array(n);
  for (let i = 0; i < n; i++) stored[i] = Math.round(rng.next() * 2600 - 1200);
  const vol: Volume = {
    data: torch.tensor(stored, [...shape]),
    spacing: [0.8, 0.7, 2],
    affine: affineOf([2, 0, 1], [1, -1, 1], [0.8, 0.7, 2]),
  };
  const preset: Preset = { ...loadPreset('m3d-clip'), shape: [8, 12, 10] };
  const out = preprocessImage(vol, preset, 'case');
  const oriented = compose(new Orient(), new ClipHU(...preset.huWindow)).apply({
    ...vol,
    data: vol.data.to('float32'),
  });
  const maxDiff = torch.tidy(() => {
    const whole = F.interpolate(oriented.data.unsqueeze(0).unsqueeze(0), preset.shape, 'trilinear', false);
    return whole
      .reshape(...preset.shape)
      .round()
      .sub(out.data.to('float32'))
      .abs()
      .max()
      .item();
  });
  assert.deepEqual(out.data.shape, preset.shape);
  assert.ok(maxDiff <= 1, `slab path vs whole-volume trilinear resize: ${maxDiff} HU`);
  const x = inputTransform(preset).fromScan(vol, 'case');
  assert.deepEqual(x.shape, [1, 1, ...preset.shape]);
  assert.deepEqual([x.min().item(), x.max().item()], [0, 1]);
  const scaled = inputTransform({ ...preset, intensity: 'scale' }).fromScan(vol, 'case');
  assert.ok(scaled.max().item() > 200, "the same preset with intensity 'scale' keeps HU / scale");
  torch.dispose([out.data, oriented.data, x, scaled]);
});
