#!/usr/bin/env python3
"""PyTorch-Python twin of bench/inference.ts: eval-mode, no-grad forward of MONAI's ResNet3D (replica) to the
pooled features. argv: JSON config; prints {"s": median seconds per batch}."""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'scripts', 'fixtures'))
from monai_resnet import ResNet, ResNetBlock, ResNetBottleneck  # noqa: E402
from timing import timed  # noqa: E402

cfg = json.loads(sys.argv[1])
torch.set_num_threads(cfg['threads'])
torch.manual_seed(0)
block, layers = {10: (ResNetBlock, [1, 1, 1, 1]), 18: (ResNetBlock, [2, 2, 2, 2]), 34: (ResNetBlock, [3, 4, 6, 3]), 50: (ResNetBottleneck, [3, 4, 6, 3])}[cfg['depth']]
planes = [round(p * cfg['widenFactor']) for p in (64, 128, 256, 512)]
model = ResNet(block, layers, planes, conv1_t_size=cfg['conv1Kernel'], conv1_t_stride=cfg['conv1Stride']).eval()
x = torch.randn(cfg['batch'], 1, *cfg['shape'])


def forward():
    with torch.no_grad():
        model.features(x).mean((2, 3, 4)).sum().item()


print(json.dumps({'s': timed(forward, cfg['warmup'], cfg['reps'])}))
