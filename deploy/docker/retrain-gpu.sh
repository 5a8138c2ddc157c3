#!/bin/sh
# Entrypoint of the retrain-cuda image. The CUDA build of retrain cannot start without a
# working NVIDIA driver and GPU (gorgonia.org/cu initialises CUDA before main), so this
# asks it first and falls back to the CPU build, with a warning, when the GPU does not
# answer.
if /usr/local/bin/retrain-cuda backend -backend cuda >/dev/null 2>&1; then
  exec /usr/local/bin/retrain-cuda "$@"
fi
echo '{"level":"warn","logger":"retrain","msg":"CUDA unavailable (no driver or GPU in this container), training on the CPU"}' >&2
exec /usr/local/bin/retrain "$@"
