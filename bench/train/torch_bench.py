"""PyTorch yardstick for bench/train: the same two networks, losses, batch sizes and data
as edgeloop's engines, on the CPU with the same number of threads or on the GPU.

    python torch_bench.py --data DIR --threads 2 --batches 64 --seconds 2 --device cpu

DIR holds what bench/train wrote: {classifier,detector}.x.f32 (inputs, N·C·H·W float32),
classifier.y.i32 (labels), detector.{w,t,m,b}.f32 (detection targets), N being the
largest batch; with --family, family-PX.x.f32 (N·3·PX·PX) and family-PX.y.i32 too.
Prints one JSON object per model and batch size with training images/s and batch-1
inference latency, and, for the family when onnxruntime imports, one more per network:
ONNX Runtime's batch-1 latency on the network exported with torch.onnx.export.

The family's twin is MobileNetV2 in plain torch.nn as pkg/nn/weights/testdata/
make_fixture.py defines it (torchvision's, whose widths and channel rounding equal
nn.Family's at every size), with nn.Family's differences: batch norm ε = 1e-3 and no
dropout before the head.

With --det, the multi-scale detector's twin (nn.DetectorFamily: that trunk tapped at
strides 8, 16, 32, the PAN neck of depthwise-separable convs, YOLOX-style decoupled
heads) and its loss (nn.MultiScaleLoss: BCE objectness and classes, 1 − GIoU on the
exp distances) train on det-PX.x.f32 with det-PX.{w,t,m,b}.f32, the targets
nn.EncodeTargets wrote (per image, each level's (5+C, H, W) map flattened, end to end).
"""
import argparse
import importlib.util
import json
import os
import sys
import tempfile
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


FAMILY_WIDTH = {"n": 0.35, "s": 0.5, "m": 1.0}


def family(size, classes=10):
    """nn.Family("mobilenetv2", size, ...) in plain torch.nn (see the module doc)."""
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "make_fixture.py")  # beside this script in bench/gpu's pack
    if not os.path.exists(path):
        path = os.path.join(here, "..", "..", "pkg", "nn", "weights", "testdata", "make_fixture.py")
    spec = importlib.util.spec_from_file_location("make_fixture", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model = mod.MobileNetV2(FAMILY_WIDTH[size], classes)
    model.classifier[0] = nn.Identity()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eps = 1e-3
    return model


DET_NECK = {"n": 48, "s": 64, "m": 96}


def cbs(cin, cout, k=1, s=1, g=1):
    """conv (no bias) → batch norm (ε 1e-3) → SiLU, as nn's convBN with SiLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2, groups=g, bias=False), nn.BatchNorm2d(cout, eps=1e-3), nn.SiLU())


def dwsep(cin, cout, s=1):
    return nn.Sequential(cbs(cin, cin, 3, s, cin), cbs(cin, cout))


class DetHead(nn.Module):
    def __init__(self, h, classes):
        super().__init__()
        self.cls, self.cls_out = dwsep(h, h), nn.Conv2d(h, classes, 1)
        self.reg, self.box, self.obj = dwsep(h, h), nn.Conv2d(h, 4, 1), nn.Conv2d(h, 1, 1)

    def forward(self, f):
        r = self.reg(f)
        return torch.cat([self.obj(r), self.box(r), self.cls_out(self.cls(f))], 1)


class Detector(nn.Module):
    """nn.DetectorFamily("mobilenetv2", size, …) in plain torch.nn; forward returns the
    three levels' (N, 5+C, H, W) maps, finest first."""

    def __init__(self, size, classes):
        super().__init__()
        self.trunk = family(size, classes).features[:-1]  # without the 1280-channel conv
        with torch.no_grad():
            x, ch = torch.zeros(1, 3, 64, 64), {}
            for i, m in enumerate(self.trunk):
                x = m(x)
                ch[i] = x.shape[1]
        c3, c4, c5, h = ch[6], ch[13], ch[len(self.trunk) - 1], DET_NECK[size]
        self.l5 = cbs(c5, h)
        self.t4, self.t3 = dwsep(h + c4, h), dwsep(h + c3, h)
        self.d3, self.n4 = cbs(h, h, 3, 2, h), dwsep(2 * h, h)
        self.d4, self.n5 = cbs(h, h, 3, 2, h), dwsep(2 * h, h)
        self.heads = nn.ModuleList([DetHead(h, classes) for _ in range(3)])
        for head in self.heads:  # nn.PriorProb's start
            for conv in (head.obj, head.cls_out):
                nn.init.constant_(conv.bias, -4.59512)

    def forward(self, x):
        for i, m in enumerate(self.trunk):
            x = m(x)
            if i == 6:
                c3 = x
            elif i == 13:
                c4 = x
        up = lambda v: F.interpolate(v, scale_factor=2, mode="nearest")
        l5 = self.l5(x)
        t4 = self.t4(torch.cat([up(l5), c4], 1))
        t3 = self.t3(torch.cat([up(t4), c3], 1))
        n4 = self.n4(torch.cat([self.d3(t3), t4], 1))
        n5 = self.n5(torch.cat([self.d4(n4), l5], 1))
        return tuple(head(f) for head, f in zip(self.heads, (t3, n4, n5)))


def multiscale_loss(zs, w, t, m, b, n):
    """nn.MultiScaleLoss over the levels' maps zs with the flat targets, mean over n."""
    total, off = 0.0, 0
    for z in zs:
        N, ch, H, W = z.shape
        size = ch * H * W
        wl, tl, ml, bl = (v[:, off:off + size].reshape(N, ch, H, W) for v in (w, t, m, b))
        off += size
        p, g, mw = torch.exp(torch.clamp(z[:, 1:5], max=10.0)), bl[:, 1:5], ml[:, 1]
        ap = (p[:, 0] + p[:, 2]) * (p[:, 1] + p[:, 3])
        ag = (g[:, 0] + g[:, 2]) * (g[:, 1] + g[:, 3])
        iw = torch.minimum(p[:, 0], g[:, 0]) + torch.minimum(p[:, 2], g[:, 2])
        ih = torch.minimum(p[:, 1], g[:, 1]) + torch.minimum(p[:, 3], g[:, 3])
        inter = iw.clamp(min=0) * ih.clamp(min=0)
        union = ap + ag - inter
        enc = (torch.maximum(p[:, 0], g[:, 0]) + torch.maximum(p[:, 2], g[:, 2])) * \
              (torch.maximum(p[:, 1], g[:, 1]) + torch.maximum(p[:, 3], g[:, 3]))
        total = total + (mw * (2 - inter / union - union / enc)).sum()
        # At an assigned point the assigned class's target is the predicted box's IoU,
        # held constant (YOLOX's IoU-aware class target, nn.PointLoss).
        iou = torch.where(union > 0, inter / union, torch.zeros_like(union)).detach()
        tcls = tl[:, 5:]
        tcls = torch.where((tcls == 1) & (mw != 0).unsqueeze(1), iou.unsqueeze(1).expand_as(tcls), tcls)
        zc, wc = torch.cat([z[:, :1], z[:, 5:]], 1), torch.cat([wl[:, :1], wl[:, 5:]], 1)
        tc = torch.cat([tl[:, :1], tcls], 1)
        total = total + (wc * (F.softplus(zc) - tc * zc)).sum()
    return total / n


def latency(f, seconds, runs=200):
    """Batch-1 latencies in ms: 10 warm-up runs, then `runs` timed ones, or fewer (20 at
    least) past `seconds` (bench/train's rule)."""
    for _ in range(10):
        f()
    lat, start = [], time.perf_counter()
    while len(lat) < runs and (len(lat) < 20 or time.perf_counter() - start < seconds):
        t0 = time.perf_counter()
        f()
        lat.append(1000 * (time.perf_counter() - t0))
    lat.sort()
    return lat[len(lat) // 2], lat[int(0.99 * (len(lat) - 1))]


def onnxruntime_latency(name, model, one, threads, seconds):
    """ONNX Runtime (CPU) on model exported to ONNX: batch-1 latency; None without it."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    model.eval()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model.onnx")
        torch.onnx.export(model, (one,), path, input_names=["x"], output_names=["y"], dynamo=False)
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    x = one.numpy()
    p50, p99 = latency(lambda: sess.run(None, {"x": x}), seconds)
    model.train()
    return {"model": name, "framework": "onnxruntime " + ort.__version__, "batch": 1,
            "train_images_per_sec": 0, "infer_p50_ms": p50, "infer_p99_ms": p99}


def load(path, shape, dtype=np.float32):
    return torch.from_numpy(np.fromfile(path, dtype=dtype).reshape(shape))


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def to_host(out):
    return tuple(o.cpu() for o in out) if isinstance(out, tuple) else out.cpu()


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
        # the result on the host, as the agent needs it
        p50, p99 = latency(lambda: to_host(model(one)), seconds, infer_runs)
    model.train()
    framework = "pytorch " + torch.__version__.split("+")[0]
    if device.type == "cuda":
        framework += " (cuda, " + torch.cuda.get_device_name(device) + ")"
    return {"model": name, "framework": framework, "batch": n,
            "train_images_per_sec": steps * n / train_s,
            "infer_p50_ms": p50, "infer_p99_ms": p99}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", default="64", help="comma-separated batch sizes")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--infer", type=int, default=200)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--models", default="classifier,detector", help="comma-separated fixed models")
    ap.add_argument("--family", default="", help="comma-separated MobileNetV2 sizes (n, s, m), each at every --family-px or SIZE@PX at its own")
    ap.add_argument("--family-px", default="96,160", help="comma-separated square RGB input sizes")
    ap.add_argument("--family-batches", default="16,32", help="comma-separated family batch sizes")
    ap.add_argument("--det", default="", help="comma-separated multi-scale detector sizes (n, s, m)")
    ap.add_argument("--det-px", default="320", help="comma-separated square RGB input sizes of the detector")
    ap.add_argument("--det-batches", default="8", help="comma-separated detector batch sizes")
    ap.add_argument("--det-classes", type=int, default=4, help="the detector's classes (bench/train's shape scenes)")
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
    models = a.models.split(",")
    for bs in sizes:
        y = cy[:bs]
        if "classifier" in models:
            print(json.dumps(bench("classifier", classifier().to(dev), cx[:bs],
                                   lambda out: F.cross_entropy(out, y), a.seconds, a.infer, dev)), flush=True)
        w, t, m, b = (v[:bs] for v in dt)
        if "detector" in models:
            print(json.dumps(bench("detector", detector().to(dev), dx[:bs],
                                   lambda z: detection_loss(z, w, t, m, b, bs), a.seconds, a.infer, dev)), flush=True)
    fb = [int(v) for v in a.family_batches.split(",")]
    pairs = []  # "s@160": size s at 160 px only; "s": at every --family-px
    for f in (f for f in a.family.split(",") if f):
        size, _, at = f.partition("@")
        pairs += [(size, int(at))] if at else [(size, int(v)) for v in a.family_px.split(",")]
    for size, px in pairs:
        fx = load(os.path.join(d, f"family-{px}.x.f32"), (max(fb), 3, px, px)).to(dev)
        fy = load(os.path.join(d, f"family-{px}.y.i32"), (max(fb),), np.int32).long().to(dev)
        name = f"mnv2-{size} {px}"
        for bs in fb:
            y = fy[:bs]
            model = family(size).to(dev)
            print(json.dumps(bench(name, model, fx[:bs], lambda out: F.cross_entropy(out, y), a.seconds, a.infer, dev)), flush=True)
        if a.device == "cpu":
            r = onnxruntime_latency(name, model, fx[:1], a.threads, a.seconds)
            if r:
                print(json.dumps(r), flush=True)
    db = [int(v) for v in a.det_batches.split(",")]
    for size in (s for s in a.det.split(",") if s):
        for px in (int(v) for v in a.det_px.split(",")):
            per = (5 + a.det_classes) * sum((px // s) ** 2 for s in (8, 16, 32))
            nb = max(db)
            x = load(os.path.join(d, f"det-{px}.x.f32"), (nb, 3, px, px)).to(dev)
            tg = [load(os.path.join(d, f"det-{px}.{k}.f32"), (nb, per)).to(dev) for k in "wtmb"]
            name = f"det-{size} {px}"
            for bs in db:
                w, t, m, b = (v[:bs] for v in tg)
                model = Detector(size, a.det_classes).to(dev)
                print(json.dumps(bench(name, model, x[:bs], lambda zs: multiscale_loss(zs, w, t, m, b, bs), a.seconds, a.infer, dev)),
                      flush=True)
            if a.device == "cpu":
                try:
                    r = onnxruntime_latency(name, model, x[:1], a.threads, a.seconds)
                except Exception as e:  # the exporter's limits must not cost the run
                    print(f"onnx export of {name}: {e}", file=sys.stderr)
                    r = None
                if r:
                    print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
