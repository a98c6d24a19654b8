#!/usr/bin/env python3
"""PyTorch-Python twin of bench/engine.ts: same shapes, same models, same timing protocol.
Prints one JSON object. Used by `npm run bench` when python3 with torch is importable."""
import json
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from timing import timed



class BasicBlock(nn.Module):
    def __init__(self, i, o, s):
        super().__init__()
        self.conv1 = nn.Conv3d(i, o, 3, stride=s, padding=1, bias=False); self.bn1 = nn.BatchNorm3d(o)
        self.conv2 = nn.Conv3d(o, o, 3, padding=1, bias=False); self.bn2 = nn.BatchNorm3d(o)
        self.downsample = nn.Sequential(nn.Conv3d(i, o, 1, stride=s), nn.BatchNorm3d(o)) if s != 1 or i != o else None

    def forward(self, x):
        h = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(h + (self.downsample(x) if self.downsample is not None else x))


class SmallResNet3d(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv3d(1, 16, 3, padding=1, bias=False); self.bn1 = nn.BatchNorm3d(16)
        self.layers = nn.ModuleList([BasicBlock(16, 16, 1), BasicBlock(16, 32, 2), BasicBlock(32, 64, 2), BasicBlock(64, 128, 2)])
        self.fc = nn.Linear(128, 10)

    def forward(self, x):
        h = F.max_pool3d(F.relu(self.bn1(self.conv1(x))), 3, stride=2, padding=1)
        for b in self.layers:
            h = b(h)
        return self.fc(F.adaptive_avg_pool3d(h, 1).flatten(1))


class EncoderBlock(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(d); self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(d); self.fc1 = nn.Linear(d, 4 * d); self.fc2 = nn.Linear(4 * d, d)

    def forward(self, x):
        n = self.norm1(x)
        h = x + self.attn(n, n, n, need_weights=False)[0]
        return h + self.fc2(F.gelu(self.fc1(self.norm2(h))))


class SmallViT3d(nn.Module):
    def __init__(self):
        super().__init__()
        self.patch = nn.Conv3d(1, 128, 8, stride=8)
        self.blocks = nn.ModuleList([EncoderBlock(128, 4) for _ in range(4)])
        self.norm = nn.LayerNorm(128); self.head = nn.Linear(128, 10)
        self.pos = nn.Parameter(torch.randn(1, 64, 128) * 0.02)

    def forward(self, x):
        h = self.patch(x).flatten(2).transpose(1, 2) + self.pos
        for b in self.blocks:
            h = b(h)
        return self.head(self.norm(h).mean(1))


def train_step_time(model, shape, reps):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(*shape); y = torch.randint(0, 10, (shape[0],))

    def step():
        F.cross_entropy(model(x), y).backward()
        opt.step(); opt.zero_grad()
    return timed(step, 3, reps)


def main():
    cfg = json.loads(sys.argv[1])
    torch.set_num_threads(cfg['threads'])
    torch.manual_seed(0)
    out = {'torch': torch.__version__, 'threads': torch.get_num_threads()}
    n = cfg['matmul_n']
    a = torch.randn(n, n); b = torch.randn(n, n)
    out['matmul_s'] = timed(lambda: a @ b, 2, cfg['reps'])
    c = cfg['conv']
    x = torch.randn(*c['input'], requires_grad=True); w = torch.randn(*c['weight'], requires_grad=True)

    def conv_step():
        y = F.conv3d(x, w, padding=1)
        y.sum().backward()
        x.grad = None; w.grad = None
    out['conv3d_s'] = timed(conv_step, 2, cfg['reps'])
    s = torch.ones(4, 4)
    k = cfg['op_iters']
    out['op_s'] = timed(lambda: [s + s for _ in range(k)], 1, 5) / k
    out['resnet_step_s'] = train_step_time(SmallResNet3d(), cfg['resnet_input'], cfg['reps'])
    out['vit_step_s'] = train_step_time(SmallViT3d(), cfg['vit_input'], cfg['reps'])
    print(json.dumps(out))


main()
