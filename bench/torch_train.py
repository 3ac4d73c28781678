"""The PyTorch reference for bench/train.ts: the same model, data, batch size and Adam settings.

Usage: python3 torch_train.py '<json config>'  (model, threads, examples, epochs, batchSize, dataFile,
totalExamples). A config with `lmSpec` (bench/models.ts `benchLms`) trains the LLaMA-style twin of
src/models/Transformer.ts instead (RMSNorm, rotate-halves RoPE, causal grouped-query attention, SwiGLU,
tied head; same shapes and init std, not the same weights) on random tokens with AdamW and next-token
cross-entropy, clipping at global norm 1 as the Distillery run does: `warmup` steps untimed, then
`steps` timed; `examples` in its output counts tokens. `threads` are OpenBLAS's (the parent sets OPENBLAS_NUM_THREADS); torch's own intra-op
threads stay at 1: with both at 2 the two pools fight over the 2 cores and a step takes 2-3x longer. Prints one JSON line: seconds, examples, finalLoss, backend, maxRssMB, torch version.
Needs Debian's torch: apt-get install python3-torch libopenblas0-pthread (run with /usr/bin/python3).
"""
import json
import math
import resource
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SPECS = {
    "mlp": ("mlp", [512, 512], 0.0, 0.0),
    "student": ("mlp", [128, 128], 0.0, 0.0),
    "teacher": ("mlp", [800, 800], 0.5, 0.2),
    "cnn": ("cnn", [16, 32], [128], 0.0),
}


def build(name):
    kind, a, b, c = SPECS[name]
    layers = []
    if kind == "mlp":
        hidden, dropout, input_dropout = a, b, c
        if input_dropout > 0:
            layers.append(nn.Dropout(input_dropout))
        prev = 784
        for h in hidden:
            layers += [nn.Linear(prev, h), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            prev = h
        layers.append(nn.Linear(prev, 10))
        return nn.Sequential(*layers)
    channels, dense = a, b
    layers.append(nn.Unflatten(1, (1, 28, 28)))
    cin, hw = 1, 28
    for ch in channels:
        layers += [nn.Conv2d(cin, ch, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        cin, hw = ch, hw // 2
    layers.append(nn.Flatten())
    prev = cin * hw * hw
    for h in dense:
        layers += [nn.Linear(prev, h), nn.ReLU()]
        prev = h
    layers.append(nn.Linear(prev, 10))
    return nn.Sequential(*layers)


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate(x, cos, sin):
    # x: (B, h, T, hd); cos, sin: (T, hd/2); pairs (x1[i], x2[i]) of the two halves
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class Block(nn.Module):
    def __init__(self, s, kv, hd, f):
        super().__init__()
        d, h = s["width"], s["heads"]
        self.h, self.kv, self.hd = h, kv, hd
        self.attention_norm = RMSNorm(d, s["normEps"])
        self.query = nn.Linear(d, h * hd, bias=False)
        self.key = nn.Linear(d, kv * hd, bias=False)
        self.value = nn.Linear(d, kv * hd, bias=False)
        self.output = nn.Linear(h * hd, d, bias=False)
        self.mlp_norm = RMSNorm(d, s["normEps"])
        self.gate = nn.Linear(d, f, bias=False)
        self.up = nn.Linear(d, f, bias=False)
        self.down = nn.Linear(f, d, bias=False)

    def forward(self, x, cos, sin, mask):
        b, t, d = x.shape
        n = self.attention_norm(x)
        q = rotate(self.query(n).view(b, t, self.h, self.hd).transpose(1, 2), cos, sin)  # (B, H, T, hd)
        k = rotate(self.key(n).view(b, t, self.kv, self.hd).transpose(1, 2), cos, sin)  # (B, G, T, hd)
        v = self.value(n).view(b, t, self.kv, self.hd).transpose(1, 2)
        rep = self.h // self.kv
        if rep > 1:
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.hd)) + mask  # (B, H, T, T)
        y = (F.softmax(att, dim=-1) @ v).transpose(1, 2).reshape(b, t, self.h * self.hd)
        x = x + self.output(y)
        n = self.mlp_norm(x)
        return x + self.down(F.silu(self.gate(n)) * self.up(n))


class Decoder(nn.Module):
    def __init__(self, s):
        super().__init__()
        d, h = s["width"], s["heads"]
        kv = s.get("kvHeads", h)
        hd = d // h
        f = s.get("mlpWidth") or math.ceil(8 * d / 3 / 16) * 16
        self.embedding = nn.Embedding(s["vocabSize"], d)
        self.blocks = nn.ModuleList([Block(s, kv, hd, f) for _ in range(s["layers"])])
        self.final_norm = RMSNorm(d, s["normEps"])
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * s["layers"]) if name.endswith(("output.weight", "down.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)
        t = s["context"]
        pos = torch.arange(t, dtype=torch.float32)[:, None]
        freq = torch.pow(s["ropeTheta"], -2 * torch.arange(hd // 2, dtype=torch.float32) / hd)[None, :]
        self.register_buffer("cos", torch.cos(pos * freq))
        self.register_buffer("sin", torch.sin(pos * freq))
        self.register_buffer("mask", torch.triu(torch.full((t, t), -1e9), diagonal=1))

    def forward(self, tokens):
        t = tokens.shape[1]
        x = self.embedding(tokens)
        cos, sin, mask = self.cos[:t], self.sin[:t], self.mask[:t, :t]
        for b in self.blocks:
            x = b(x, cos, sin, mask)
        return self.final_norm(x) @ self.embedding.weight.t()  # (B, T, V) tied head


def train_lm(c):
    s = c["lmSpec"]
    bs, t, v = c["batchSize"], s["context"], s["vocabSize"]
    g = torch.Generator().manual_seed(1)
    stream = torch.randint(0, v, (bs * 8 * t + 1,), generator=g)
    inputs, targets = stream[:-1].view(-1, t), stream[1:].view(-1, t)
    model = Decoder(s)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, eps=1e-7, weight_decay=0.1)
    model.train()
    warmup, steps = c.get("warmup", 2), c.get("steps", 5)
    n = inputs.shape[0]
    t0 = time.perf_counter()
    for step in range(warmup + steps):
        if step == warmup:
            t0 = time.perf_counter()
        idx = torch.randint(0, n, (bs,), generator=g)
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(inputs[idx]).reshape(-1, v), targets[idx].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        last = float(loss)
    seconds = time.perf_counter() - t0
    print(json.dumps({
        "seconds": seconds,
        "examples": steps * bs * t,
        "finalLoss": last,
        "backend": f"torch {torch.__version__} cpu, OpenBLAS {c['threads']} thread(s)",
        "maxRssMB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


def main():
    c = json.loads(sys.argv[1])
    torch.set_num_threads(1)
    torch.manual_seed(1)
    if "lmSpec" in c:
        return train_lm(c)
    total, n = c["totalExamples"], c["examples"]
    raw = np.fromfile(c["dataFile"], dtype=np.uint8)
    x = torch.from_numpy(raw[: total * 784 * 4].view(np.float32).reshape(total, 784)[:n].copy())
    y = torch.from_numpy(raw[total * 784 * 4 :].view(np.int32)[:n].astype(np.int64))
    model = build(c["model"])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    bs = c["batchSize"]
    model.train()
    t0 = time.perf_counter()
    total_loss = 0.0
    for _ in range(c["epochs"]):
        perm = torch.randperm(n)
        loss_sum = torch.zeros(())
        for s in range(0, n, bs):
            idx = perm[s : s + bs]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            loss_sum += loss.detach() * len(idx)
        total_loss = float(loss_sum) / n
    seconds = time.perf_counter() - t0
    print(json.dumps({
        "seconds": seconds,
        "examples": n * c["epochs"],
        "finalLoss": total_loss,
        "backend": f"torch {torch.__version__} cpu, OpenBLAS {c['threads']} thread(s)",
        "maxRssMB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


if __name__ == "__main__":
    main()
