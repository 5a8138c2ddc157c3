"""PyTorch yardstick for bench/train: the same two networks, losses, batch sizes and data
as edgeloop's engines, on the CPU with the same number of threads or on the GPU.

    python torch_bench.py --data DIR --threads 2 --batches 64 --seconds 2 --device cpu

DIR holds what bench/train wrote: {classifier,detector}.x.f32 (inputs, N·C·H·W float32),
classifier.y.i32 (labels), detector.{w,t,m,b}.f32 (detection targets), N being the
largest batch. Prints one JSON object per model and batch size with training images/s
and batch-1 inference latency.
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


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench(name, model, x, loss_fn, seconds, infer_runs, device):
    """Trains for at least `seconds` after 3 warm-up steps (and 3 steps at least), then
    times one-image inference; on a GPU each timing waits for the device."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    n = x.shape[0]
    for _ in range(3):  # warm-up
        opt.zero_grad()
        loss_fn(model(x)).backward()
        opt.step()
    sync(device)
    steps, start = 0, time.perf_counter()
    while steps < 3 or time.perf_counter() - start < seconds:
        opt.zero_grad()
        loss_fn(model(x)).backward()
        opt.step()
        steps += 1
        if steps % 10 == 0:
            sync(device)
    sync(device)
    train_s = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        one = x[:1]
        for _ in range(10):
            model(one)
        lat = []
        for _ in range(infer_runs):
            t0 = time.perf_counter()
            model(one).cpu()  # the result on the host, as the agent needs it
            lat.append(time.perf_counter() - t0)
    model.train()
    lat.sort()
    framework = "pytorch " + torch.__version__.split("+")[0]
    if device.type == "cuda":
        framework += " (cuda, " + torch.cuda.get_device_name(device) + ")"
    return {"model": name, "framework": framework, "batch": n,
            "train_images_per_sec": steps * n / train_s,
            "infer_p50_ms": 1000 * lat[len(lat) // 2], "infer_p99_ms": 1000 * lat[int(0.99 * (len(lat) - 1))]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", default="64", help="comma-separated batch sizes")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--infer", type=int, default=200)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    dev = torch.device(a.device)
    sizes = [int(s) for s in a.batches.split(",")]
    d, n = a.data, max(sizes)
    cx = load(os.path.join(d, "classifier.x.f32"), (n, 1, 28, 28)).to(dev)
    cy = load(os.path.join(d, "classifier.y.i32"), (n,), np.int32).long().to(dev)
    dx = load(os.path.join(d, "detector.x.f32"), (n, 1, 64, 64)).to(dev)
    dt = [load(os.path.join(d, f"detector.{k}.f32"), (n, 15, 8, 8)).to(dev) for k in "wtmb"]
    for bs in sizes:
        y = cy[:bs]
        print(json.dumps(bench("classifier", classifier().to(dev), cx[:bs],
                               lambda out: F.cross_entropy(out, y), a.seconds, a.infer, dev)), flush=True)
        w, t, m, b = (v[:bs] for v in dt)
        print(json.dumps(bench("detector", detector().to(dev), dx[:bs],
                               lambda z: detection_loss(z, w, t, m, b, bs), a.seconds, a.infer, dev)), flush=True)


if __name__ == "__main__":
    main()
