#!/usr/bin/env python3
"""PyTorch side of `loom bench train`: trains the same mlp/cnn as Loom (same layers, SGD with
momentum, cross-entropy) on random Fashion-MNIST-shaped batches and prints one JSON line:
{"train_samples_per_s": ..., "infer_samples_per_s": ...}.

Run by `loom bench train` with /usr/bin/python3 (Debian's python3-torch). Usage:
    bench_train_torch.py MODEL BATCH THREADS STEPS INFER_BATCH
"""
import json
import os
import sys
import time

model_name, batch, threads, steps, infer_batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
# Debian's torch does its Linear layers' GEMMs in the system BLAS, OpenBLAS's pthreads build,
# which keeps its own thread pool of one thread per core whatever torch.set_num_threads says:
# without this a "1-thread" run used both cores for its GEMMs (mlp inference at batch 256:
# 351k samples/s, 189k on one thread). It is read when the library loads, so before the import.
for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ[var] = str(threads)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

torch.set_num_threads(threads)
torch.manual_seed(0)
if model_name == "mlp":
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
else:
    model = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10))
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
loss_fn = nn.CrossEntropyLoss()
x = torch.randn(batch, 1, 28, 28)
y = torch.randint(0, 10, (batch,))


def train_step():
    opt.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()


for _ in range(3):
    train_step()
best = float("inf")
for _ in range(3):
    t = time.perf_counter()
    for _ in range(steps):
        train_step()
    best = min(best, time.perf_counter() - t)
train_rate = batch * steps / best

xi = torch.randn(infer_batch, 1, 28, 28)
model.eval()
with torch.no_grad():
    for _ in range(3):
        model(xi)
    reps = max(5, 2000 // infer_batch)
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(reps):
            model(xi)
        best = min(best, time.perf_counter() - t)
print(json.dumps({"train_samples_per_s": train_rate, "infer_samples_per_s": infer_batch * reps / best}))
