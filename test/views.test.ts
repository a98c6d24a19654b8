// Views and sampling order: resampling equals torch's interpolate; everything is seeded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as torch from '../src/torch/index.js';
import { F } from '../src/torch/index.js';
import { Rng } from '../src/util/rng.js';
import { DEFAULT_VIEWS, foregroundVoxels, makeViews, sampleBox, type Shape3 } from '../src/data/views.js';
import { epochOrder } from '../src/data/loader.js';
import { assertClose } from './helpers.js';

const shape: Shape3 = [6, 10, 8];
const hu = Int16Array.from({ length: 6 * 10 * 8 }, (_, i) => ((i * 7919) % 2001) - 1000);

test('sampleBox over the whole volume equals F.interpolate(trilinear, align_corners=False)', () => {
  const out: Shape3 = [4, 13, 5];
  const ours = sampleBox(
    hu,
    shape,
    { start: [0, 0, 0], size: shape, rotateRad: 0, flip: [false, false, false] },
    out,
    1000,
    -1,
  );
  torch.tidy(() => {
    const ref = F.interpolate(
      torch
        .tensor(hu, [1, 1, ...shape])
        .to('float32')
        .div(1000),
      out,
      'trilinear',
    );
    assertClose(torch.tensor(ours, out), ref.view(...out), { atol: 1e-5 });
  });
});

test('flips mirror the output; a rotation by 0 changes nothing; outside the volume is padding', () => {
  const box = {
    start: [1, 2, 1] as Shape3,
    size: [4, 6, 6] as Shape3,
    rotateRad: 0,
    flip: [false, false, false] as [boolean, boolean, boolean],
  };
  const plain = sampleBox(hu, shape, box, [4, 6, 6], 1000, -1);
  const flipped = sampleBox(hu, shape, { ...box, flip: [false, false, true] }, [4, 6, 6], 1000, -1);
  torch.tidy(() =>
    assertClose(torch.tensor(flipped, [4, 6, 6]), torch.tensor(plain, [4, 6, 6]).flip([2]), { atol: 0 }),
  );
  const rotated = sampleBox(
    hu,
    shape,
    { start: [0, 0, 0], size: shape, rotateRad: Math.PI / 4, flip: [false, false, false] },
    shape,
    1000,
    -1,
  );
  assert.equal(rotated[0], -1, 'a 45° rotation samples the corner from outside the volume');
});

test('views are deterministic in (seed, epoch, index) and differ across indices', () => {
  const a = makeViews(hu, shape, 1000, -1, DEFAULT_VIEWS, new Rng(1, 0, 5));
  const b = makeViews(hu, shape, 1000, -1, DEFAULT_VIEWS, new Rng(1, 0, 5));
  const c = makeViews(hu, shape, 1000, -1, DEFAULT_VIEWS, new Rng(1, 0, 6));
  assert.equal(a.locals.length, 4);
  assert.deepEqual(a.locals[2], b.locals[2]);
  assert.deepEqual(a.boxes, b.boxes);
  assert.notDeepEqual(a.boxes, c.boxes);
  assert.equal(a.locals[0]!.length, 3 * 5 * 4, 'local views are half the global size by default');
  for (const box of a.boxes)
    box.size.forEach((s, i) => assert.ok(s >= Math.round(shape[i]! * 0.3) && s <= Math.round(shape[i]! * 0.7)));
});

test('epoch order: a permutation per epoch, the same for the same seed, disjoint equal shards', () => {
  const e0 = epochOrder(10, 0, { seed: 3 });
  assert.deepEqual(
    [...e0].sort((x, y) => x - y),
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  );
  assert.deepEqual(epochOrder(10, 0, { seed: 3 }), e0);
  assert.notDeepEqual(epochOrder(10, 1, { seed: 3 }), e0);
  const shards = [0, 1, 2].map((rank) => epochOrder(10, 4, { seed: 3, rank, worldSize: 3 }));
  assert.deepEqual(
    shards.map((s) => s.length),
    [3, 3, 3],
  );
  assert.equal(new Set(shards.flat()).size, 9);
  assert.throws(() => epochOrder(10, 0, { seed: 1, rank: 3, worldSize: 3 }), /outside world size/);
});

test('multi-resolution: the global view is the whole cache downsampled (F.interpolate); native local views are exact cache voxels', () => {
  const big: Shape3 = [8, 12, 10];
  const cache = Int16Array.from({ length: 8 * 12 * 10 }, (_, i) => ((i * 7919) % 2001) - 1000);
  const small: Shape3 = [4, 6, 5];
  const cfg = {
    ...DEFAULT_VIEWS,
    globalIntensity: false,
    noiseStd: 0,
    intensityScale: [1, 1] as [number, number],
    intensityShift: [0, 0] as [number, number],
    flipProb: 0,
  };
  const native = makeViews(
    cache,
    big,
    1000,
    -1,
    { ...cfg, numLocal: 2, localSource: 'cache', localShape: [3, 4, 4] },
    new Rng(2, 0, 1),
    small,
  );
  torch.tidy(() => {
    const ref = F.interpolate(
      torch
        .tensor(cache, [1, 1, ...big])
        .to('float32')
        .div(1000),
      small,
      'trilinear',
    );
    assertClose(torch.tensor(native.global, small), ref.view(...small), { atol: 1e-5 });
  });
  for (const [k, box] of native.boxes.entries()) {
    assert.deepEqual(box.size, [3, 4, 4], 'a native crop covers exactly the local shape in cache voxels');
    const [z0, y0, x0] = box.start;
    const v = native.locals[k]!;
    for (let z = 0; z < 3; z++)
      for (let y = 0; y < 4; y++)
        for (let x = 0; x < 4; x++) {
          const want = cache[(z0 + z) * 120 + (y0 + y) * 10 + (x0 + x)]! / 1000;
          assert.ok(
            Math.abs(v[z * 16 + y * 4 + x]! - want) < 1e-6,
            `local ${k} voxel (${z}, ${y}, ${x}) is the cache voxel itself`,
          );
        }
  }
  // single-resolution ablation on the same cache: crops of the downsampled global view, resized
  const single = makeViews(
    cache,
    big,
    1000,
    -1,
    { ...cfg, numLocal: 1, localSource: 'global', localScale: [1, 1], localShape: small },
    new Rng(2, 0, 1),
    small,
  );
  assert.deepEqual(single.boxes[0]!.size, small, 'a crop of the global view is in global-view voxels');
  torch.tidy(() =>
    assertClose(torch.tensor(single.locals[0]!, small), torch.tensor(single.global, small), { atol: 1e-6 }),
  );
});

test("localAnchor 'foreground': every local crop holds organ voxels, on the cache's grid and on the global view's; uniform crops need not", () => {
  const shape: Shape3 = [32, 40, 36];
  const n = 32 * 40 * 36;
  const cache = Int16Array.from({ length: n }, (_, i) => (i % 97) - 48);
  // one small organ, 4×5×3 voxels off-centre, in a volume mostly of background
  const mask = new Uint8Array(n);
  const inOrgan = (z: number, y: number, x: number) => z >= 3 && z < 7 && y >= 30 && y < 35 && x >= 2 && x < 5;
  for (let z = 0; z < 32; z++)
    for (let y = 0; y < 40; y++) for (let x = 0; x < 36; x++) if (inOrgan(z, y, x)) mask[z * 1440 + y * 36 + x] = 3;
  const drawn = foregroundVoxels(mask, shape, 50, new Rng(1, 0, 0))!;
  assert.ok(
    drawn.every(([z, y, x]) => inOrgan(z, y, x)),
    'drawn anchors are organ voxels',
  );
  assert.ok(new Set(drawn.map((c) => c.join())).size > 10, 'and spread over the organ');
  assert.equal(
    foregroundVoxels(new Uint8Array(n), shape, 3, new Rng(1, 0, 0)),
    undefined,
    'an empty mask has no anchors',
  );
  const cfg = { ...DEFAULT_VIEWS, numLocal: 8, localSource: 'cache' as const, localShape: [8, 8, 8] as Shape3 };
  const overlaps = (box: { start: Shape3; size: Shape3 }, scale: number[]) => {
    for (let z = box.start[0]; z < box.start[0] + box.size[0]; z++)
      for (let y = box.start[1]; y < box.start[1] + box.size[1]; y++) {
        for (let x = box.start[2]; x < box.start[2] + box.size[2]; x++)
          if (inOrgan(Math.floor(z * scale[0]!), Math.floor(y * scale[1]!), Math.floor(x * scale[2]!))) return true;
      }
    return false;
  };
  const anchored = makeViews(
    cache,
    shape,
    1000,
    -1,
    { ...cfg, localAnchor: 'foreground' },
    new Rng(3, 0, 5),
    shape,
    mask,
  );
  assert.ok(
    anchored.boxes.every((b) => overlaps(b, [1, 1, 1])),
    'native crops centred on the organ contain it',
  );
  const uniform = makeViews(cache, shape, 1000, -1, cfg, new Rng(3, 0, 5), shape, mask);
  assert.ok(
    uniform.boxes.filter((b) => overlaps(b, [1, 1, 1])).length < 8,
    'uniform crops of the same volume miss the small organ',
  );
  // crops of a global view at half the cache's resolution: the anchor maps onto that grid
  const half: Shape3 = [16, 20, 18];
  const single = makeViews(
    cache,
    shape,
    1000,
    -1,
    { ...cfg, localSource: 'global', localShape: [4, 4, 4], localScale: [0.25, 0.25], localAnchor: 'foreground' },
    new Rng(3, 0, 6),
    half,
    mask,
  );
  assert.ok(
    single.boxes.every((b) => overlaps(b, [2, 2, 2])),
    'global-view crops centred on the organ contain it',
  );
  assert.throws(
    () => makeViews(cache, shape, 1000, -1, { ...cfg, localAnchor: 'foreground' }, new Rng(3, 0, 5)),
    /localAnchor 'foreground' needs the cache's segmentation masks/,
  );
  // a volume without organs falls back to uniform placement
  assert.equal(
    makeViews(cache, shape, 1000, -1, { ...cfg, localAnchor: 'foreground' }, new Rng(3, 0, 5), shape, new Uint8Array(n))
      .boxes.length,
    8,
  );
});

test('aligned boxes (1 or 2 cache voxels per output voxel, flips included) equal F.interpolate of the cropped, flipped region', () => {
  const big: Shape3 = [12, 16, 14];
  const src = Int16Array.from({ length: 12 * 16 * 14 }, (_, i) => ((i * 7919) % 4001) - 2000);
  for (const f of [1, 2]) {
    const out: Shape3 = [3, 5, 4];
    const box = {
      start: [2, 3, 1] as Shape3,
      size: out.map((n) => n * f) as Shape3,
      rotateRad: 0,
      flip: [true, false, true] as [boolean, boolean, boolean],
    };
    const ours = sampleBox(src, big, box, out, 1000, -1);
    torch.tidy(() => {
      const region = torch
        .tensor(src, [1, 1, ...big])
        .to('float32')
        .div(1000)
        .narrow(2, box.start[0], box.size[0])
        .narrow(3, box.start[1], box.size[1])
        .narrow(4, box.start[2], box.size[2])
        .flip([2, 4]);
      assertClose(torch.tensor(ours, out), F.interpolate(region, out, 'trilinear').view(...out), {
        atol: 1e-6,
        what: `${f} voxel(s) per output voxel`,
      });
    });
  }
});
