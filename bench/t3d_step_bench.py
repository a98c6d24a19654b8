#!/usr/bin/env python3
"""PyTorch-Python twin of the cpu-96 T3D training step in bench/train.ts: ResNet3D-10 (MONAI replica, widen 0.25,
conv1 3³ stride 2), a from-scratch 2-layer BERT (Hugging Face's layer layout), mean-pooled text, CLIP loss, and TMA
(text-informed cross-attention fusion of local tokens, prototypes, Sinkhorn codes from the report with a queue,
swapped prediction over the global and local views), then gradient clipping and AdamW. formulation 'swapped' is the
leak-free TMA (pure visual embeddings of every view predict the report's codes, the report predicts the global
view's, codes of both from Sinkhorn with a queue); tma false is the CLIP-only step (no local views).
argv: JSON config (threads, batch, global, local, views, tokens, vocab, formulation, tma, reps, warmup, device, amp,
channels_last: the vision encoder's weights in channels_last_3d, as the TypeScript side's default;
keep_host_memory: freed memory kept for reuse, as the TypeScript side's default); prints {"step_s": median,
"minor_faults": of one more step}. On CUDA each timed step ends with a device synchronisation; amp 'bf16' autocasts."""
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'scripts', 'fixtures'))
from monai_resnet import ResNet, ResNetBlock  # noqa: E402
from timing import measure  # noqa: E402

cfg = json.loads(sys.argv[1])
torch.set_num_threads(cfg['threads'])
torch.manual_seed(0)
H, HEADS, INTER, LAYERS, D, K = 128, 4, 256, 2, 128, 32


class BertLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(H, H) for _ in range(4))
        self.ln1, self.ln2 = nn.LayerNorm(H, eps=1e-12), nn.LayerNorm(H, eps=1e-12)
        self.inter, self.out = nn.Linear(H, INTER), nn.Linear(INTER, H)
        self.drop = nn.Dropout(0.1)

    def forward(self, x, bias):
        b, l, _ = x.shape
        split = lambda t: t.view(b, l, HEADS, H // HEADS).transpose(1, 2)  # noqa: E731
        att = (split(self.q(x)) @ split(self.k(x)).transpose(-1, -2)) / math.sqrt(H // HEADS) + bias
        ctx = (self.drop(att.softmax(-1)) @ split(self.v(x))).transpose(1, 2).reshape(b, l, H)
        x = self.ln1(x + self.drop(self.o(ctx)))
        return self.ln2(x + self.drop(self.out(F.gelu(self.inter(x)))))


class Bert(nn.Module):
    def __init__(self, vocab):
        super().__init__()
        self.word_embeddings, self.position_embeddings, self.token_type_embeddings = nn.Embedding(vocab, H), nn.Embedding(256, H), nn.Embedding(2, H)
        self.ln, self.drop = nn.LayerNorm(H, eps=1e-12), nn.Dropout(0.1)
        self.layers = nn.ModuleList(BertLayer() for _ in range(LAYERS))

    def forward(self, ids, mask):
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = self.word_embeddings(ids) + self.position_embeddings(pos)[None] + self.token_type_embeddings(torch.zeros_like(ids))
        x = self.drop(self.ln(x))
        bias = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        for layer in self.layers:
            x = layer(x, bias)
        return x


class T3d(nn.Module):
    def __init__(self, vocab):
        super().__init__()
        self.visual = ResNet(ResNetBlock, [1, 1, 1, 1], [16, 32, 64, 128], conv1_t_size=3, conv1_t_stride=2)
        self.text = Bert(vocab)
        self.visual_projection, self.text_projection = nn.Linear(128, D, bias=False), nn.Linear(H, D, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        self.proj_u, self.proj_t = nn.Linear(128, D), nn.Linear(H, D)
        self.attn = nn.MultiheadAttention(D, 4, batch_first=True)
        self.norm = nn.LayerNorm(D)
        self.proj_h = nn.Sequential(nn.Linear(D, D), nn.GELU(), nn.Linear(D, D))
        self.prototypes = nn.Parameter(F.normalize(torch.randn(K, D), dim=1))

    def encode_volume(self, x):
        fm = self.visual.features(x)
        pooled = fm.mean((2, 3, 4))
        return fm.flatten(2).transpose(1, 2), F.normalize(self.visual_projection(pooled), dim=-1)

    def fuse(self, tokens, text, pad, views=1):
        # tokens (views*B, N, C) view-major; each volume's views attend to its report together (as the
        # TypeScript fusion does: the same math as the report repeated per view, projected once)
        vb, n, c = tokens.shape
        b = vb // views
        u = self.proj_u(tokens.reshape(views, b, n, c).transpose(0, 1).reshape(b, views * n, c))
        t = self.proj_t(text)
        u = u + self.attn(u, t, t, key_padding_mask=pad, need_weights=False)[0]
        h = F.normalize(self.proj_h(self.norm(u).reshape(b, views, n, -1).mean(2)), dim=-1)
        return h.transpose(0, 1).reshape(views * b, -1)


def sinkhorn(scores, eps=0.05, iters=3):
    with torch.no_grad():
        b, k = scores.shape
        log_q = (scores.double() / eps).T
        log_q = log_q - log_q.logsumexp((0, 1))
        for _ in range(iters):
            log_q = log_q - log_q.logsumexp(1, keepdim=True) - math.log(k)
            log_q = log_q - log_q.logsumexp(0, keepdim=True) - math.log(b)
        return (log_q.exp() * b).T.float()


B, V = cfg['batch'], cfg['views']
dev = torch.device(cfg.get('device', 'cpu'))
model = T3d(cfg['vocab']).to(dev)
if cfg.get('channels_last'):
    model.visual.to(memory_format=torch.channels_last_3d)
model.train()
opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.05)
g = torch.randn(B, 1, *cfg['global'], device=dev)
locs = [torch.randn(B, 1, *cfg['local'], device=dev) for _ in range(V)]
ids = torch.randint(1, cfg['vocab'], (B, cfg['tokens']), device=dev)
mask = torch.ones(B, cfg['tokens'], dtype=torch.long, device=dev)
queue = torch.zeros(0, D, device=dev)
queues = {'text': torch.zeros(0, D, device=dev), 'global': torch.zeros(0, D, device=dev)}


def swapped_tma(z, z_l, e):
    """Every view's visual embedding → the report's codes; the report → the global view's codes."""
    with torch.no_grad():
        model.prototypes.copy_(F.normalize(model.prototypes, dim=1))
    p = model.prototypes
    scores = {'global': z @ p.T, 'text': e @ p.T}
    local_scores = list((z_l @ p.T).chunk(V, 0))
    codes = {v: sinkhorn(torch.cat([scores[v].detach(), queues[v] @ p.detach().T], 0))[:B] for v in ('text', 'global')}
    ce = lambda s, c: -(c * (s / 0.1).log_softmax(1)).sum(1).mean()  # noqa: E731
    terms = [ce(scores['global'], codes['text'])] + [ce(s, codes['text']) for s in local_scores] + [ce(scores['text'], codes['global'])]
    for v, emb in (('global', z), ('text', e)):
        queues[v] = torch.cat([emb.detach(), queues[v]], 0)[:32]
    return torch.stack(terms).mean()


def step():
    if cfg.get('amp') == 'bf16':
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            loss = objective()
    else:
        loss = objective()
    finish(loss)
    if dev.type == 'cuda':
        torch.cuda.synchronize()


def objective():
    global queue
    tokens_g, z = model.encode_volume(g)
    states = model.text(ids, mask)
    keep = mask[..., None].float()
    e = F.normalize(model.text_projection((states * keep).sum(1) / keep.sum(1).clamp_min(1)), dim=-1)
    logits = z @ e.T * model.logit_scale.clamp(max=math.log(100)).exp()
    target = torch.arange(B, device=dev)
    clip = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    if not cfg.get('tma', True):
        return clip
    tokens_l, z_l = model.encode_volume(torch.cat(locs, 0))
    if cfg.get('formulation', 'fused') == 'swapped':
        return clip + 0.2 * swapped_tma(z, z_l, e)
    pad = mask.eq(0)
    with torch.no_grad():
        model.prototypes.copy_(F.normalize(model.prototypes, dim=1))
    scores = [model.fuse(tokens_g, states, pad) @ model.prototypes.T]
    scores += list((model.fuse(tokens_l, states, pad, V) @ model.prototypes.T).chunk(V, 0))
    text_scores = e @ model.prototypes.T
    codes = sinkhorn(torch.cat([text_scores.detach(), queue @ model.prototypes.detach().T], 0))[:B]
    tma = torch.stack([-(codes * (s / 0.1).log_softmax(1)).sum(1).mean() for s in scores]).mean()
    queue = torch.cat([e.detach(), queue], 0)[:32]
    return clip + 0.2 * tma


def finish(loss):
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad()


print(json.dumps(measure(step, cfg)))
