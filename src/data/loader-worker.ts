// Loader worker: reads cached volumes and builds one batch of views (no tensor engine here).
import { serveTasks } from '../util/pool.js';
import { readCachedTensors } from './cache-read.js';
import { Rng } from '../util/rng.js';
import { makeViews } from './views.js';
import { type BatchTask, type RawBatch } from './loader.js';

serveTasks<BatchTask, Omit<RawBatch, 'names' | 'reports' | 'labels'>>((t) => {
  const n = t.shape[0] * t.shape[1] * t.shape[2];
  const g = t.globalShape[0] * t.globalShape[1] * t.globalShape[2];
  const B = t.files.length;
  const global = new Float32Array(B * g);
  const locals: Float32Array[] = [];
  const mask = t.withMask ? new Uint8Array(B * n) : undefined;
  const anchored = (t.views.localAnchor ?? 'uniform') !== 'uniform' && t.views.numLocal > 0;
  t.files.forEach((file, b) => {
    const tensors = readCachedTensors(file, t.sha256[b], t.withMask || anchored ? ['image', 'mask'] : ['image']);
    const image = tensors.get('image')!;
    if (image.dtype !== 'I16' || image.shape.join() !== t.shape.join()) {
      throw new Error(
        `${file}: expected int16 image of shape [${t.shape.join(', ')}], ` +
          `found ${image.dtype} [${image.shape.join(', ')}]; rebuild the cache`,
      );
    }
    const hu = new Int16Array(image.bytes.buffer, image.bytes.byteOffset, n);
    // a cache without masks fails the read above, naming the file and the missing 'mask'
    const organs = anchored ? tensors.get('mask')!.bytes : undefined;
    const v = makeViews(
      hu,
      t.shape,
      t.scale,
      t.pad,
      t.views,
      new Rng(t.seed, t.epoch, t.indices[b]!),
      t.globalShape,
      organs,
      t.regions?.[b],
      t.intensity,
    );
    global.set(v.global, b * g);
    v.locals.forEach((l, k) => {
      locals[k] ??= new Float32Array(B * l.length);
      locals[k]!.set(l, b * l.length);
    });
    if (mask) mask.set(tensors.get('mask')!.bytes, b * n);
  });
  return { indices: t.indices, global, locals, mask };
});
