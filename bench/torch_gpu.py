"""PyTorch's side of bench/gpu.ts: ms per Adam step of an MLP (default 784-1200-1200-10, batch 1024).

Usage: python3 torch_gpu.py cuda|cpu STEPS [BATCH] [HIDDEN, e.g. 1200,1200]. Prints one JSON line (backend, msPerStep, gflops, peakRssMB),
or exits 1 saying why (no torch, or no CUDA device for a CPU-only torch such as Debian's).
"""
import json
import resource
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    sys.exit("torch is not installed for this python (apt-get install python3-torch, or a CUDA build)")

device, steps = sys.argv[1], int(sys.argv[2])
if device == "cuda" and not torch.cuda.is_available():
    sys.exit(f"torch {torch.__version__} sees no CUDA device")
batch = int(sys.argv[3]) if len(sys.argv) > 3 else 1024
sizes = [784] + [int(h) for h in (sys.argv[4] if len(sys.argv) > 4 else "1200,1200").split(",")] + [10]
flops = 6 * batch * sum(a * b for a, b in zip(sizes, sizes[1:]))
layers = []
for a, b in zip(sizes, sizes[1:]):
    layers += [nn.Linear(a, b), nn.ReLU()]
model = nn.Sequential(*layers[:-1]).to(device)
opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
x = torch.rand(batch, 784, device=device)
y = torch.randint(0, 10, (batch,), device=device)


def step():
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss


for _ in range(5):
    step()
if device == "cuda":
    torch.cuda.synchronize()
t0 = time.perf_counter()
for _ in range(steps):
    loss = step()
float(loss)  # waits for the device
ms = (time.perf_counter() - t0) * 1000 / steps
name = torch.cuda.get_device_name() if device == "cuda" else f"cpu, {torch.get_num_threads()} thread(s)"
print(json.dumps({"backend": f"torch {torch.__version__} {name}", "msPerStep": ms, "gflops": flops / ms / 1e6,
                  "peakRssMB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
