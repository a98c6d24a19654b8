// Preprocessing transforms against independent references (nibabel reorientation, torch interpolate,
// numpy crop/pad): fixtures by scripts/fixtures/make_transform_fixtures.py.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as torch from '../src/torch/index.js';
import { readNifti } from '../src/io/nifti.js';
import {
  CenterCropOrPad,
  ClipHU,
  CropForeground,
  Orient,
  Resample,
  compose,
  needsRescale,
} from '../src/data/transforms.js';
import { type Volume } from '../src/data/volume.js';
import { assertClose, fixture } from './helpers.js';

interface Expected {
  target_spacing: [number, number, number];
  target_shape: [number, number, number];
  window: [number, number];
  cases: Record<string, { oriented_affine: number[][]; oriented_spacing: number[]; resampled_size: number[] }>;
}
const exp = JSON.parse(readFileSync(fixture('transforms', 'expected.json'), 'utf8')) as Expected;
const { tensors: ref } = torch.loadSafetensors(fixture('transforms', 'expected.safetensors'));

async function load(name: string): Promise<Volume> {
  const img = await readNifti(fixture('transforms', `${name}.nii.gz`));
  const [x, y, z] = img.dataShape as [number, number, number];
  return {
    data: torch.tensor(img.data, [z, y, x]),
    spacing: [img.spacing[0]!, img.spacing[1]!, img.spacing[2]!],
    affine: img.affine,
  };
}

for (const name of Object.keys(exp.cases)) {
  test(`Orient to LPS equals nibabel's reorientation: ${name}`, async () => {
    const v = new Orient().apply(await load(name));
    assertClose(v.data, ref.get(`${name}.oriented`)!, { atol: 0, rtol: 0, what: 'data' });
    assertClose(torch.tensor(v.affine.flat()), exp.cases[name]!.oriented_affine.flat(), { atol: 1e-5, what: 'affine' });
    assertClose(torch.tensor(v.spacing), exp.cases[name]!.oriented_spacing, { atol: 1e-5, what: 'spacing' });
    v.data.dispose();
  });
  test(`Orient → Clip → Resample → CenterCropOrPad equals the torch/numpy pipeline: ${name}`, async () => {
    const pipeline = compose(
      new Orient(),
      new ClipHU(...exp.window),
      new Resample(exp.target_spacing),
      new CenterCropOrPad(exp.target_shape, exp.window[0]),
    );
    const v = pipeline.apply(await load(name));
    assert.deepEqual(v.data.shape, exp.target_shape);
    const rounded = torch.tidy(() => v.data.round().to('int16'));
    assertClose(rounded, ref.get(`${name}.final`)!, { atol: 1, rtol: 0, what: 'final' });
    torch.dispose([v.data, rounded]);
  });
}

test('Resample keeps the world position of the volume centre and scales the spacing', () => {
  const v: Volume = {
    data: torch.zeros([10, 20, 30]),
    spacing: [1, 1, 2],
    affine: [
      [-1, 0, 0, 15],
      [0, -1, 0, 10],
      [0, 0, 2, -9],
      [0, 0, 0, 1],
    ],
  };
  const centre = (a: number[][], n: number[]) =>
    [0, 1, 2].map(
      (r) => (a[r]![0]! * (n[0]! - 1)) / 2 + (a[r]![1]! * (n[1]! - 1)) / 2 + (a[r]![2]! * (n[2]! - 1)) / 2 + a[r]![3]!,
    );
  const before = centre(v.affine, [30, 20, 10]);
  const r = new Resample([2, 2, 4]).apply(v);
  assert.deepEqual(r.data.shape, [5, 10, 15]);
  assert.deepEqual(r.spacing, [2, 2, 4]);
  assertClose(torch.tensor(centre(r.affine, [15, 10, 5])), before, { atol: 1e-9 });
  r.data.dispose();
});

test('CenterCropOrPad crops an axis longer by one and pads an axis shorter by one', () => {
  const v: Volume = {
    data: torch
      .arange(5 * 4 * 3)
      .reshape(5, 4, 3)
      .to('float32'),
    spacing: [1, 1, 1],
    affine: [
      [1, 0, 0, 0],
      [0, 1, 0, 0],
      [0, 0, 1, 0],
      [0, 0, 0, 1],
    ],
  };
  const r = new CenterCropOrPad([4, 5, 3], -7).apply(v);
  assert.deepEqual(r.data.shape, [4, 5, 3]);
  torch.tidy(() => {
    assert.deepEqual(
      r.data.select(1, 4).toArray(),
      Array(12).fill(-7),
      'the one padded row goes after (floor(1/2) = 0 before)',
    );
    const original = torch
      .arange(5 * 4 * 3)
      .reshape(5, 4, 3)
      .to('float32');
    assertClose(r.data.narrow(1, 0, 4), original.narrow(0, 0, 4), { atol: 0, what: 'crop keeps slices 0..3' });
  });
  r.data.dispose();
});

test('CropForeground keeps the bounding box of the body plus a margin and moves the origin with it', () => {
  const data = torch.full([10, 12, 14], -1000);
  const body = data.narrow(0, 3, 4).narrow(1, 2, 5).narrow(2, 6, 3);
  body.fill_(40);
  const v: Volume = {
    data,
    spacing: [1, 1, 2],
    affine: [
      [-1, 0, 0, 0],
      [0, -1, 0, 0],
      [0, 0, 2, 0],
      [0, 0, 0, 1],
    ],
  };
  const r = new CropForeground(-500, 2).apply(v);
  assert.deepEqual(r.data.shape, [4 + 2, 5 + 4, 3 + 4], 'margin 2 mm = 1 slice (2 mm) and 2 rows/columns (1 mm)');
  assert.deepEqual([r.affine[0]![3], r.affine[1]![3], r.affine[2]![3]], [-4, 0, 4]);
  assert.equal(r.data.max().item(), 40);
  torch.dispose([r.data, body]);
  const empty: Volume = { data: torch.full([4, 4, 4], -1000), spacing: [1, 1, 1], affine: v.affine };
  assert.equal(new CropForeground(-500).apply(empty), empty, 'no foreground: unchanged');
  empty.data.dispose();
});

test('HU rescale detection: raw storage is rescaled, data already in HU is not (CT-RATE v2 trap)', () => {
  assert.equal(needsRescale(0, -1024), true);
  assert.equal(needsRescale(-24, -1024), true);
  assert.equal(needsRescale(-1024, -1024), false);
  assert.equal(needsRescale(-3024, -1024), false);
  assert.equal(needsRescale(0, 0), false);
});
