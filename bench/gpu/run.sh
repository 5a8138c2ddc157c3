#!/usr/bin/env bash
# The CUDA engine's parity tests and GPU benchmark in one script, in two halves:
#
#   bench/gpu/run.sh build    here, on a machine without a GPU: installs the CUDA 11.8
#                             headers and libraries (deploy/local/cuda-headers.sh), builds
#                             the binaries with -tags edgeloop_cuda and packs them, with
#                             OpenBLAS, MNIST and the PyTorch script, into bench/out/gpu
#   bench/gpu/run.sh device   on the GPU machine (no Go, no network needed), from the
#                             repository root with bench/out/gpu beside it: parity tests,
#                             then images/s for both models at several batch sizes (CUDA,
#                             OpenBLAS CPU, pure-Go CPU, PyTorch on the same GPU), then the
#                             time from an approved batch to a released model for 1,000
#                             examples on the GPU and on the CPU. Prints the tables and
#                             writes them to $OUT (or bench/out/gpu-results) as gpu.md.
#
# The binaries link libcublas.so.11 and libnvrtc.so.11.2 (Debian's CUDA 11.8); a GPU
# machine with another CUDA major has other sonames, so `device` rewrites the binaries'
# needs to the libraries it finds there (patchelf, carried) — cuBLAS's and NVRTC's C
# APIs that the engine calls are the same in CUDA 12 and 13. It stays within 10 minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
pack=bench/out/gpu

build() {
  deploy/local/cuda-headers.sh install
  command -v patchelf >/dev/null || { source deploy/local/lib.sh; as_root apt-get install -y -q patchelf >/dev/null; }
  rm -rf "$pack" && mkdir -p "$pack/lib" "$pack/mnist"
  local flags=(-trimpath -ldflags=-s\ -w)
  echo "building into $pack"
  go test -c "${flags[@]}" -tags edgeloop_cuda -o "$pack/cudaengine.test" ./pkg/nn/cudaengine
  go build "${flags[@]}" -tags edgeloop_cuda,openblas -o "$pack/bench-train-cuda" ./bench/train
  go build "${flags[@]}" -o "$pack/bench-train-purego" ./bench/train
  go build "${flags[@]}" -tags edgeloop_cuda,openblas -o "$pack/bench-pipeline" ./bench/pipeline
  cp bench/train/torch_bench.py "$pack/"
  cp "$(command -v patchelf)" "$pack/"
  cp -L "$(go env GOMODCACHE)"/github.com/petar/!go!m!n!i!s!t@*/data/*.gz "$pack/mnist/"
  # OpenBLAS and what it links, for the OpenBLAS rows (the GPU image need not have it).
  for l in libopenblas.so.0 libgfortran.so.5 libquadmath.so.0; do
    cp -L "$(ldconfig -p | awk -v l="$l" '$1 == l && /x86-64/ {print $NF; exit}')" "$pack/lib/$l"
  done
  xz -T0 -6 "$pack"/cudaengine.test "$pack"/bench-* "$pack"/lib/*.so.*
  du -sh "$pack"; ls -la "$pack" "$pack/lib"
}

device() {
  [[ -d $pack ]] || { echo "no $pack: run 'bench/gpu/run.sh build' on the build machine and carry it" >&2; exit 1; }
  local out=${OUT:-bench/out/gpu-results} work=/tmp/edgeloop-gpu
  mkdir -p "$out" && rm -rf "$work" && cp -r "$pack" "$work" && xz -d "$work"/*.xz "$work"/lib/*.xz
  chmod +x "$work"/cudaengine.test "$work"/bench-* "$work"/patchelf
  nvidia-smi -L 2>/dev/null || echo "nvidia-smi: not found"
  # CUDA's own libraries on this machine: the toolkit's, else PyTorch's wheels.
  local cublas nvrtc
  cublas=$({ find /usr/local /usr/lib /opt -name 'libcublas.so.[0-9]*' ! -name '*.so.*.*' 2>/dev/null || true; } | sort -V | tail -1)
  nvrtc=$({ find /usr/local /usr/lib /opt -name 'libnvrtc.so.[0-9]*' ! -name '*.so.*.*.*' ! -name '*builtins*' 2>/dev/null || true; } | sort -V | tail -1)
  [[ -n $cublas && -n $nvrtc ]] || { echo "no libcublas/libnvrtc found on this machine" >&2; exit 1; }
  echo "cuBLAS: $cublas   NVRTC: $nvrtc"
  for b in "$work"/cudaengine.test "$work"/bench-train-cuda "$work"/bench-pipeline; do
    "$work/patchelf" --replace-needed libcublas.so.11 "$(basename "$cublas")" \
                     --replace-needed libnvrtc.so.11.2 "$(basename "$nvrtc")" "$b"
  done
  export LD_LIBRARY_PATH="$(dirname "$cublas"):$(dirname "$nvrtc"):$work/lib:${LD_LIBRARY_PATH:-}"
  export EDGELOOP_MNIST_DIR="$work/mnist"
  local py=python3
  [[ -x /opt/torch/.venv/bin/python3 ]] && py=/opt/torch/.venv/bin/python3
  local report="$out/gpu.md" rc=0
  {
    echo "# CUDA engine on $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo 'a GPU')"
    echo; echo "## Parity with the CPU engine (one step and three Adam steps from the same weights)"; echo; echo '```'
  } | tee "$report"
  (cd "$work" && timeout 180 ./cudaengine.test -test.v -test.count=1 2>&1) | tee -a "$report" || rc=1
  echo '```' | tee -a "$report"
  echo; echo "## Training speed" | tee -a "$report"
  (cd "$work" && timeout 330 ./bench-train-cuda -engines cuda,cpu -batches 32,128,512 -seconds 1.5 \
      -with ./bench-train-purego -torch "$py" -torch-device cuda 2>/dev/null) | tee -a "$report" || rc=1
  echo; echo "## Approved batch to released model" | tee -a "$report"
  for be in cuda cpu; do
    (cd "$work" && timeout 150 ./bench-pipeline -sizes 1000 -backend "$be") | tee -a "$report" || rc=1
  done
  echo "report: $report"
  return $rc
}

case "${1:-}" in
  build) build ;;
  device) device ;;
  *) echo "usage: $0 build|device" >&2; exit 2 ;;
esac
