#!/usr/bin/env bash
# Issue 14's detection tables on a GPU machine, in two halves (as bench/gpu/run.sh):
#
#   bench/detect/gpu.sh build    here, without a GPU: builds bench/detect with -tags
#                                edgeloop_cuda,openblas against CUDA 13's cuBLAS and NVRTC
#                                (deploy/local/cuda-headers.sh), and packs it with OpenBLAS
#                                and the background photographs into bench/out/detect-gpu
#                                (about 20 MB: carry that folder to the GPU machine)
#   bench/detect/gpu.sh device [ARGS...]
#                                on the GPU machine, from the repository root with
#                                bench/out/detect-gpu beside it: makes the pretrained
#                                backbone of each size in PRETRAIN (default s; empty:
#                                none) with bench/colour -pretrain on the GPU, then runs
#                                bench/detect on the CUDA engine with ARGS (default: size
#                                s at 320×256 from 2,000 scenes, pretrained then scratch;
#                                see DEFAULT below), writing the backbones, cells and
#                                tables under $OUT (or bench/out/detect-gpu-results), so
#                                what finished comes back even when the run is stopped.
#
# Latency is measured on the CPU engine with 2 cores (-latency-threads), as on the edge.
set -euo pipefail
cd "$(dirname "$0")/../.."
pack=bench/out/detect-gpu
# The per-size table at the issue's scale: 2,000 scenes at 320 px, size s from the
# backbone pretrained here first, then from scratch if it started within the deadline.
PRETRAIN=${PRETRAIN-s}
DEFAULT=(-sizes s -size-starts pretrained,scratch -input 320x256 -train 2000 -test 300 -epochs 30 -batch 32 -augment colour -latency 20 -deadline 120s)

build() {
  deploy/local/cuda-headers.sh install
  local cuda photos
  cuda=$(deploy/local/cuda-headers.sh libs "${CUDA_MAJOR:-13}")
  photos=${EDGELOOP_PHOTOS_DIR:-${EDGELOOP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edgeloop}/photos} # colourscenes.PhotoDir
  rm -rf "$pack" && mkdir -p "$pack/lib" "$pack/photos/scaled"
  for b in detect colour; do
    CGO_LDFLAGS="-L$cuda -Wl,-rpath-link,$cuda" go build -trimpath -ldflags=-s\ -w -tags edgeloop_cuda,openblas \
      -o "$pack/bench-$b" ./bench/$b
  done
  # The photographs as loadPhoto reads them: the scaled copy where there is one.
  cp "$photos"/scaled/*.png "$pack/photos/scaled/"
  for f in "$photos"/*.png "$photos"/*.jpg; do
    [[ -e $photos/scaled/$(basename "${f%.*}").png ]] || cp "$f" "$pack/photos/"
  done
  for l in libopenblas.so.0 libgfortran.so.5 libquadmath.so.0; do
    cp -L "$(ldconfig -p | awk -v l="$l" '$1 == l && /x86-64/ {print $NF; exit}')" "$pack/lib/$l"
  done
  xz -T0 -6 "$pack"/bench-* "$pack"/lib/*.so.*
  du -sh "$pack"
}

device() {
  [[ -d $pack ]] || { echo "no $pack: run 'bench/detect/gpu.sh build' on the build machine and carry it" >&2; exit 1; }
  local out=${OUT:-bench/out/detect-gpu-results} work=/tmp/edgeloop-detect-gpu need cublas nvrtc
  mkdir -p "$out" && rm -rf "$work" && cp -r "$pack" "$work" && xz -d "$work"/*.xz "$work"/lib/*.xz
  chmod +x "$work"/bench-*
  nvidia-smi -L 2>/dev/null || echo "nvidia-smi: not found"
  need=$(objdump -p "$work/bench-detect" 2>/dev/null | awk '/NEEDED/ && /libcublas/ {print $2}')
  need=${need:-libcublas.so.13}
  # CUDA_LIB_DIR: where the libraries are, when not in the usual places (a test on the
  # build machine: deploy/local/cuda-headers.sh libs 13).
  cublas=$({ find ${CUDA_LIB_DIR:-} /usr/local /usr/lib /opt -name "$need" 2>/dev/null || true; } | head -1)
  nvrtc=$({ find ${CUDA_LIB_DIR:-} /usr/local /usr/lib /opt -name "libnvrtc.so.${need##*.so.}" 2>/dev/null || true; } | head -1)
  [[ -n $cublas && -n $nvrtc ]] || { echo "no $need or its libnvrtc on this machine" >&2; exit 1; }
  export LD_LIBRARY_PATH="$(dirname "$cublas"):$(dirname "$nvrtc"):$work/lib:/usr/local/nvidia/lib64:/usr/local/nvidia/lib:${LD_LIBRARY_PATH:-}"
  export EDGELOOP_PHOTOS_DIR="$work/photos"
  local args=("$@") sz start=$SECONDS bb=${BACKBONES:-$out/pretrain}
  (( ${#args[@]} )) || args=("${DEFAULT[@]}")
  # make pretrain's backbone for each of PRETRAIN (sizes, comma-separated; empty: none)
  # missing from BACKBONES (a folder of mobilenetv2-SIZE.safetensors; default
  # $OUT/pretrain), on the GPU: 6,000 generated 96 px images of 8 classes the benchmark
  # never shows, 8 epochs (bench/gpu/run.sh's colour part makes the same ones).
  for sz in ${PRETRAIN//,/ }; do
    [[ -e $bb/mobilenetv2-$sz.safetensors ]] && continue
    "$work/bench-colour" -pretrain "$bb/mobilenetv2-$sz.safetensors" -size "$sz" -pretrain-images 6000 -pretrain-epochs 8
  done
  echo "backbones ready after $((SECONDS - start)) s"
  "$work/bench-detect" -backend cuda -out "$out/detect" -backbones "$bb/mobilenetv2-{size}.safetensors" "${args[@]}"
}

case "${1:-}" in
  build) build ;;
  device) shift; device "$@" ;;
  *) echo "usage: $0 build | device [bench/detect flags...]" >&2; exit 2 ;;
esac
