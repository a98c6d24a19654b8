#!/usr/bin/env python3
"""PyTorch-Python twin of bench/train.ts: one AdamW training step of MONAI's ResNet3D-50 (replica) on
2×1×96³ with a 2-class head. argv: JSON config (threads, input, warmup, reps, device, channels_last,
keep_host_memory); prints {"step_s": median seconds, "minor_faults": of one more step}. On CUDA each timed step ends with a device synchronisation."""
import json
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'scripts', 'fixtures'))
from monai_resnet import ResNet, ResNetBottleneck  # noqa: E402
from timing import measure  # noqa: E402

cfg = json.loads(sys.argv[1])
torch.set_num_threads(cfg['threads'])
torch.manual_seed(0)
dev = torch.device(cfg.get('device', 'cpu'))
model = ResNet(ResNetBottleneck, [3, 4, 6, 3], [64, 128, 256, 512], conv1_t_size=7, conv1_t_stride=2, num_classes=2).to(dev)
if cfg.get('channels_last'):
    model.to(memory_format=torch.channels_last_3d)
opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
x = torch.randn(*cfg['input'], device=dev)
y = torch.arange(cfg['input'][0], device=dev) % 2


def step():
    F.cross_entropy(model(x), y).backward()
    opt.step()
    opt.zero_grad()
    if dev.type == 'cuda':
        torch.cuda.synchronize()


print(json.dumps(measure(step, cfg)))
