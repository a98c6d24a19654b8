#!/usr/bin/env python3
"""PyTorch-Python twin of bench/imported-encoders.ts: one imported image encoder at its released size with random
weights, built by the reference implementations of the parity-fixture scripts; eval mode, no grad, batch 1.
argv: JSON config {model: 'm3d-clip'|'merlin'|'colipri', shape, threads, warmup, reps, depth}; prints
{"s": median seconds per scan, "baseline_mb": RSS before the model is built, "peak_mb": the process's peak RSS,
"finite": whether the output is finite}."""
import json
import os
import resource
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'scripts', 'fixtures'))
from timing import timed  # noqa: E402
import make_m3d_clip_fixtures as m3d  # noqa: E402
import make_merlin_fixtures as merlin  # noqa: E402
import make_colipri_fixtures as colipri  # noqa: E402


def rss_mb():
    with open('/proc/self/status') as f:
        return next(int(line.split()[1]) for line in f if line.startswith('VmRSS:')) / 1024


cfg = json.loads(sys.argv[1])
torch.set_num_threads(cfg['threads'])
torch.manual_seed(0)
baseline_mb = rss_mb()
if cfg['model'] == 'm3d-clip':
    # M3D-CLIP's released vision tower: MONAI ViT, 32×256×256, patch 4×16×16, 768 wide, 12 layers × 12 heads
    arch = {'img': tuple(cfg['shape']), 'patch': (4, 16, 16), 'dim': 768, 'mlp': 3072, 'layers': 12, 'heads': 12}
    sd = m3d.vision_weights(arch)
    encode = lambda x: m3d.vision_features(sd, x, arch)  # noqa: E731
elif cfg['model'] == 'colipri':
    # COLIPRI's image tower: Primus-M (864 wide, 12 heads, patch 8; `depth` of its 16 blocks), 768-d projector, pool
    arch = {'dim': 864, 'heads': 12, 'depth': cfg['depth'], 'hidden': int(864 * 4 * 2 / 3), 'patch': 8, 'shared': 768,
            'pool_heads': 12}
    sd = colipri.image_weights(arch)
    encode = lambda x: colipri.image_embedding(sd, x, arch)  # noqa: E731
else:
    # Merlin's released image encoder: I3D-inflated ResNet-152, 512-d contrastive head, 1692 phenotypes
    net = merlin.I3ResNet(width=64, layers=[3, 8, 36, 3], embed=512, classes=1692).eval()
    encode = lambda x: net(x)[1]  # noqa: E731
x = torch.rand(1, 1, *cfg['shape'])
out = {}


def forward():
    with torch.no_grad():
        out['y'] = encode(x)
        out['y'].sum().item()


s = timed(forward, cfg['warmup'], cfg['reps'])
print(json.dumps({'s': s, 'baseline_mb': baseline_mb, 'peak_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  'finite': bool(torch.isfinite(out['y']).all())}))
