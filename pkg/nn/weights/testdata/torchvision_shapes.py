"""Writes torchvision-shapes.json, the fixture of TestTorchvisionShapes (pkg/nn/weights):
for each nn.Family size (n 0.35, s 0.5, m 1.0), every floating-point tensor name of
torchvision.models.mobilenet_v2(width_mult=W, num_classes=10).state_dict() and its
shape. No weights are downloaded (the models are built, not fetched). Needs torch and
torchvision:

  PYTHONPATH=DIR_WITH_TORCHVISION $(bench/setup-torch.sh) pkg/nn/weights/testdata/torchvision_shapes.py
"""
import json
import os

import torchvision
from torchvision.models import mobilenet_v2

out = {"torchvision": torchvision.__version__.split("+")[0], "classes": 10, "sizes": {}}
for size, width in (("n", 0.35), ("s", 0.5), ("m", 1.0)):
    sd = mobilenet_v2(width_mult=width, num_classes=10).state_dict()
    out["sizes"][size] = {k: list(v.shape) for k, v in sd.items() if v.is_floating_point()}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torchvision-shapes.json")
with open(path, "w") as f:  # one tensor a line
    f.write(json.dumps(out, sort_keys=True).replace('], "', '],\n"') + "\n")
print(path, {s: len(v) for s, v in out["sizes"].items()})
