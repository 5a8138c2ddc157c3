#!/usr/bin/env bash
# Installs PyTorch (CPU use only; PyPI's Linux wheel brings the CUDA runtime wheels, a few
# GB) once into a cached virtualenv outside the repository, for bench/train's yardstick.
# Prints the venv's python. PyTorch is never a runtime dependency of edgeloop.
set -euo pipefail
cache=${EDGELOOP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edgeloop}
venv=$cache/torch-venv
if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  echo "installing torch 2.15.0 into $venv (once)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q torch==2.15.0 numpy >&2
fi
# ONNX Runtime (CPU), the edge-inference yardstick beside PyTorch, and onnx for the export.
"$venv/bin/python" -c "import onnxruntime, onnx" 2>/dev/null || "$venv/bin/pip" install -q onnxruntime onnx >&2
echo "$venv/bin/python"
