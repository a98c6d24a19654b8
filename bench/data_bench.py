#!/usr/bin/env python3
"""CT-CLIP-style preprocessing in Python for `npm run bench:data`: nibabel load → HU (slope/intercept)
→ clip → F.interpolate (trilinear) to the target spacing → centre crop/pad → int16 file.
argv: volume.nii.gz out.npy slope intercept threads; prints seconds as JSON."""
import json
import sys
import time

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F


def main():
    path, out, slope, intercept, threads = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
    torch.set_num_threads(threads)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        img = nib.load(path)
        data = np.asarray(img.dataobj).astype(np.float32) * slope + intercept
        sx, sy, sz = img.header.get_zooms()[:3]
        data = np.clip(data, -1000, 1000).transpose(2, 1, 0)  # (x, y, z) → (D, H, W)
        t = torch.from_numpy(np.ascontiguousarray(data))[None, None]
        d, h, w = data.shape
        size = [round(d * sz / 1.5), round(h * sy / 0.75), round(w * sx / 0.75)]
        t = F.interpolate(t, size=size, mode='trilinear', align_corners=False)[0, 0].numpy()
        target = (240, 480, 480)
        outv = np.full(target, -1000, dtype=np.float32)
        src, dst = [], []
        for n, tg in zip(t.shape, target):
            if n >= tg:
                s = (n - tg) // 2; src.append(slice(s, s + tg)); dst.append(slice(0, tg))
            else:
                b = (tg - n) // 2; src.append(slice(0, n)); dst.append(slice(b, b + n))
        outv[tuple(dst)] = t[tuple(src)]
        np.save(out, np.round(outv).astype(np.int16))
        times.append(time.perf_counter() - t0)
    print(json.dumps({'seconds': sorted(times)[1]}))


main()
