"""PyTorch yardstick for bench/train: the same two networks, losses, batch size and data
as edgeloop's Gorgonia engine, on the CPU with the same number of threads.

    python torch_bench.py --data DIR --threads 2 --steps 20

DIR holds what bench/train wrote: {classifier,detector}.x.f32 (inputs, N·C·H·W float32),
classifier.y.i32 (labels), detector.{w,t,m,b}.f32 (detection targets). Prints one JSON
object per model with training images/s and batch-1 inference latency.
"""
import argparse
import json
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def classifier():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))


def detector(classes=10):
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
        nn.Conv2d(64, 5 + classes, 1))


def detection_loss(z, w, t, m, b, n):
    # The same loss as pkg/nn DetTargets: BCE on objectness and classes, 5·MSE on boxes.
    bce = F.softplus(z) - t * z
    return ((w * bce).sum() + 5.0 * (m * (torch.sigmoid(z) - b) ** 2).sum()) / n


def load(path, shape, dtype=np.float32):
    return torch.from_numpy(np.fromfile(path, dtype=dtype).reshape(shape))


def bench(name, model, x, loss_fn, steps, infer_runs):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    n = x.shape[0]
    for _ in range(3):  # warm-up
        opt.zero_grad()
        loss_fn(model(x)).backward()
        opt.step()
    start = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(model(x)).backward()
        opt.step()
    train_s = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        one = x[:1]
        for _ in range(10):
            model(one)
        lat = []
        for _ in range(infer_runs):
            t0 = time.perf_counter()
            model(one)
            lat.append(time.perf_counter() - t0)
    lat.sort()
    return {"model": name, "framework": "pytorch " + torch.__version__,
            "train_images_per_sec": steps * n / train_s,
            "infer_p50_ms": 1000 * lat[len(lat) // 2], "infer_p99_ms": 1000 * lat[int(0.99 * (len(lat) - 1))]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--infer", type=int, default=200)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    d = a.data
    n = 64
    x = load(os.path.join(d, "classifier.x.f32"), (n, 1, 28, 28))
    y = load(os.path.join(d, "classifier.y.i32"), (n,), np.int32).long()
    print(json.dumps(bench("classifier", classifier(), x,
                           lambda out: F.cross_entropy(out, y), a.steps, a.infer)))
    x = load(os.path.join(d, "detector.x.f32"), (n, 1, 64, 64))
    w, t, m, b = (load(os.path.join(d, f"detector.{k}.f32"), (n, 15, 8, 8)) for k in "wtmb")
    print(json.dumps(bench("detector", detector(), x,
                           lambda z: detection_loss(z, w, t, m, b, n), a.steps, a.infer)))


if __name__ == "__main__":
    main()
