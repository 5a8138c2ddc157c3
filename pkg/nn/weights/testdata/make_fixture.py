"""Makes the fixture of TestTorchvisionEquivalence (pkg/nn/weights).

Builds torchvision's MobileNetV2 at width 0.35 (edgeloop's size "n") in plain torch.nn,
with torchvision's module names, so its state_dict is the one
torchvision.models.mobilenet_v2(width_mult=0.35, num_classes=CLASSES) saves; gives it
random weights and random-but-realistic batch norm statistics (random gamma and beta,
running statistics gathered in training mode on random images, so eval-mode activations
stay of order one through the 17 blocks); then, in eval mode, runs IMAGES fixed random
images and saves:

  mobilenetv2-035.safetensors  the state_dict (F32 weights, I64 counters), as
                               safetensors.torch.save_file(model.state_dict()) writes it
  io.safetensors               "images" (N, 3, H, W) in [0, 1] and "logits" (N, CLASSES)
  mobilenetv2-035.onnx         the same model from torch.onnx.export(dynamo=True,
                               optimize=False), which keeps every state_dict tensor as a
                               named initializer (the nodes' debugging notes removed);
                               only when onnx and onnxscript import

Nothing is downloaded. Run with the venv of bench/setup-torch.sh:

  $(bench/setup-torch.sh) pkg/nn/weights/testdata/make_fixture.py
"""
import json
import os
import struct

import torch
from torch import nn

WIDTH, SIZE, CLASSES, IMAGES, SEED = 0.35, 64, 3, 2, 13


def make_divisible(v, d=8):
    """torchvision's _make_divisible (the reference MobileNet rounding)."""
    n = max(d, int(v + d / 2) // d * d)
    if n < 0.9 * v:
        n += d
    return n


def conv_norm_act(cin, cout, k=3, stride=1, groups=1):
    """torchvision.ops.Conv2dNormActivation with ReLU6: .0 conv, .1 batch norm, .2 ReLU6."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    """torchvision.models.mobilenetv2.InvertedResidual."""

    def __init__(self, inp, oup, stride, t):
        super().__init__()
        hidden = int(round(inp * t))
        self.use_res = stride == 1 and inp == oup
        layers = []
        if t != 1:
            layers.append(conv_norm_act(inp, hidden, k=1))
        layers += [
            conv_norm_act(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    """torchvision.models.MobileNetV2 (features, classifier = Dropout, Linear)."""

    def __init__(self, width, classes):
        super().__init__()
        setting = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1]]
        cin = make_divisible(32 * width)
        last = make_divisible(1280 * max(1.0, width))
        features = [conv_norm_act(3, cin, stride=2)]
        for t, c, n, s in setting:
            cout = make_divisible(c * width)
            for i in range(n):
                features.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        features.append(conv_norm_act(cin, last, k=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, classes))

    def forward(self, x):
        x = self.features(x)
        x = nn.functional.adaptive_avg_pool2d(x, (1, 1))
        return self.classifier(torch.flatten(x, 1))


def save_safetensors(path, tensors):
    """Writes tensors (name → tensor: floats as F32, integers as I64) in the safetensors format."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous()
        dtype, np_type = ("F32", "<f4") if t.is_floating_point() else ("I64", "<i8")
        b = t.numpy().astype(np_type).tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    torch.manual_seed(SEED)
    m = MobileNetV2(WIDTH, CLASSES)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight, mode="fan_out")
            elif isinstance(mod, nn.BatchNorm2d):
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.normal_(0, 0.1)
                mod.momentum = None  # cumulative average of the calibration batches
            elif isinstance(mod, nn.Linear):
                mod.weight.normal_(0, 0.05)
                mod.bias.normal_(0, 0.1)
        m.train()
        for _ in range(4):
            m(torch.rand(8, 3, SIZE, SIZE))
        for mod in m.modules():  # random statistics around the gathered ones
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean += 0.05 * torch.randn_like(mod.running_mean)
                mod.running_var *= torch.empty_like(mod.running_var).uniform_(0.8, 1.25)
        m.eval()
        images = torch.rand(IMAGES, 3, SIZE, SIZE)
        logits = m(images)
    here = os.path.dirname(os.path.abspath(__file__))
    state = m.state_dict()  # with batch norm's num_batches_tracked (I64), as torchvision saves it
    save_safetensors(os.path.join(here, "mobilenetv2-035.safetensors"), state)
    save_safetensors(os.path.join(here, "io.safetensors"), {"images": images, "logits": logits})
    try:
        import onnx  # noqa: F401  (the exporter needs onnx and onnxscript)
        import onnxscript  # noqa: F401
    except ImportError:
        print("onnx or onnxscript missing: mobilenetv2-035.onnx not written")
    else:
        path = os.path.join(here, "mobilenetv2-035.onnx")
        torch.onnx.export(m, (images,), dynamo=True, optimize=False).save(path)
        model = onnx.load(path)
        for node in model.graph.node:  # the exporter's debugging notes: 1 MB of stack traces
            del node.metadata_props[:]
        onnx.save(model, path)
    print(f"{len(state)} tensors, {sum(v.numel() for v in state.values())} values; logits {logits.tolist()}")


if __name__ == "__main__":
    main()
