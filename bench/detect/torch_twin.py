"""PyTorch side of bench/detect -twin: trains the multi-scale detector's twin
(bench/train/torch_bench.py's Detector and multiscale_loss) exactly as Go's train.Run
trained the same network, and writes its test outputs for pkg/evaluate to score.

    python torch_twin.py --dir DIR

DIR holds what bench/detect wrote (little-endian float32 files and meta.json):
init.f32 (Go's initial parameters and batch-norm buffers, in Go's order, which is the
twin's module order: conv weight and bias; batch norm γ, β, running mean, running
variance), train/val/test .x.f32 (normalised inputs N·3·H·W), train/val .t.f32 (per
image the flat W, T, M, B targets of nn.EncodeTargets), order.f32 (each epoch's
shuffle), check.y.f32 (Go's inference outputs for the first test images from the
initial weights). The training: Adam (β 0.9/0.999, ε 1e-8, no weight decay) at each
epoch's learning rate (meta's lr_by_epoch: train.Config's cosine), the given batches in
the given order, batch norm momentum 0.1 with the unbiased variance (both as PyTorch);
after each epoch the validation loss in inference mode, and the weights of the lowest
kept (train.Run with patience off). Prints one JSON object; writes test.out.f32.
"""
import argparse
import copy
import importlib.util
import json
import os
import time

import numpy as np
import torch
import torch.nn as nn


def load(d, name, rows):
    v = np.fromfile(os.path.join(d, name), dtype="<f4")
    return torch.from_numpy(v.reshape(rows, -1).copy())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    args = ap.parse_args()
    d = args.dir
    meta = json.load(open(os.path.join(d, "meta.json")))
    torch.set_num_threads(meta["threads"])
    torch.manual_seed(0)
    spec = importlib.util.spec_from_file_location("torch_bench", meta["torch_bench"])
    tb = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tb)

    model = tb.Detector(meta["size"], meta["classes"])
    # Go's parameters onto the twin's modules, in order.
    slots = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            slots += [(m, "weight")] + ([(m, "bias")] if m.bias is not None else [])
        elif isinstance(m, nn.BatchNorm2d):
            slots += [(m, "weight"), (m, "bias"), (m, "running_mean"), (m, "running_var")]
    params = meta["params"]
    if len(slots) != len(params):
        raise SystemExit(f"twin has {len(slots)} tensors, Go {len(params)}")
    init = np.fromfile(os.path.join(d, "init.f32"), dtype="<f4")
    off = 0
    with torch.no_grad():
        for (m, attr), p in zip(slots, params):
            t = getattr(m, attr)
            n = int(np.prod(p["shape"]))
            if t.numel() != n:
                raise SystemExit(f"{p['name']} {p['shape']}: twin's {attr} has shape {tuple(t.shape)}")
            t.copy_(torch.from_numpy(init[off:off + n].copy()).reshape(t.shape))
            off += n
            if isinstance(m, nn.BatchNorm2d):
                m.eps = p["eps"]
    if off != len(init):
        raise SystemExit(f"{len(init) - off} initial values left over")

    H, W, C = meta["h"], meta["w"], 3
    x_tr = load(d, "train.x.f32", meta["n"]).reshape(-1, C, H, W)
    t_tr = load(d, "train.t.f32", meta["n"]).reshape(meta["n"], 4, -1)
    x_va = load(d, "val.x.f32", meta["val"]).reshape(-1, C, H, W)
    t_va = load(d, "val.t.f32", meta["val"]).reshape(meta["val"], 4, -1)
    x_te = load(d, "test.x.f32", meta["test"]).reshape(-1, C, H, W)
    order = np.fromfile(os.path.join(d, "order.f32"), dtype="<f4").astype(np.int64).reshape(meta["epochs"], meta["n"])

    def flat(zs):
        return torch.cat([z.reshape(z.shape[0], -1) for z in zs], 1)

    # The check: the same outputs from the same weights.
    model.eval()
    with torch.no_grad():
        got = flat(model(x_te[:meta["check"]]))
    want = torch.from_numpy(np.fromfile(os.path.join(d, "check.y.f32"), dtype="<f4")).reshape(got.shape)
    init_diff, init_max = float((got - want).abs().max()), float(want.abs().max())

    def loss_of(x, t):
        zs = model(x)
        return tb.multiscale_loss(zs, t[:, 0], t[:, 1], t[:, 2], t[:, 3], x.shape[0])

    opt = torch.optim.Adam(model.parameters(), lr=meta["lr_by_epoch"][0], betas=(0.9, 0.999), eps=1e-8)
    best, best_loss, best_epoch = copy.deepcopy(model.state_dict()), float("inf"), 0
    train_losses, val_losses = [], []
    t0 = time.time()
    bs = meta["batch"]
    for ep in range(meta["epochs"]):
        for g in opt.param_groups:
            g["lr"] = meta["lr_by_epoch"][ep]
        model.train()
        total, seen = 0.0, 0
        for s in range(0, meta["n"], bs):
            idx = torch.from_numpy(order[ep, s:s + bs])
            loss = loss_of(x_tr[idx], t_tr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            seen += len(idx)
        train_losses.append(total / seen)
        model.eval()
        with torch.no_grad():
            vl = 0.0
            for s in range(0, meta["val"], bs):
                vl += float(loss_of(x_va[s:s + bs], t_va[s:s + bs])) * len(x_va[s:s + bs])
            vl /= meta["val"]
        val_losses.append(vl)
        if vl < best_loss:
            best_loss, best_epoch, best = vl, ep + 1, copy.deepcopy(model.state_dict())
    secs = time.time() - t0
    model.load_state_dict(best)
    model.eval()
    with torch.no_grad():
        outs = [flat(model(x_te[s:s + 32])) for s in range(0, meta["test"], 32)]
    torch.cat(outs).numpy().astype("<f4").tofile(os.path.join(d, "test.out.f32"))
    print(json.dumps({"engine": f"PyTorch {torch.__version__} ({meta['threads']} threads)", "train_seconds": secs,
                      "best_epoch": best_epoch, "train_loss": train_losses, "val_loss": val_losses,
                      "init_max_diff": init_diff, "init_max_out": init_max}))


if __name__ == "__main__":
    main()
