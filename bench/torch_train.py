"""The PyTorch reference for bench/train.ts: the same model, data, batch size and Adam settings.

Usage: python3 torch_train.py '<json config>'  (model, threads, examples, epochs, batchSize, dataFile,
totalExamples). `threads` are OpenBLAS's (the parent sets OPENBLAS_NUM_THREADS); torch's own intra-op
threads stay at 1: with both at 2 the two pools fight over the 2 cores and a step takes 2-3x longer. Prints one JSON line: seconds, examples, finalLoss, backend, maxRssMB, torch version.
Needs Debian's torch: apt-get install python3-torch libopenblas0-pthread (run with /usr/bin/python3).
"""
import json
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


def main():
    c = json.loads(sys.argv[1])
    torch.set_num_threads(1)
    torch.manual_seed(1)
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
