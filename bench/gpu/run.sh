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
#   bench/gpu/run.sh device detect
#                             issue 14's detector table at 320 px alone (bench/detect on
#                             the CUDA engine; its cells under $OUT/detect).
#
# The binaries compile against Debian's CUDA 11.8 headers and link CUDA $CUDA_MAJOR's
# libcublas.so and libnvrtc.so (default 13, from PyPI's nvidia-cublas and
# nvidia-cuda-nvrtc wheels): both libraries version their symbols by soname, so a binary
# linked to 11.8's cannot load 13's even with its needs renamed. The cuBLAS and NVRTC
# calls the engine makes are the same in 11.8 and 13. It stays within 10 minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
pack=bench/out/gpu
# The CPU engine's AVX2 row kernels, as the Makefile builds them.
export GOEXPERIMENT="${GOEXPERIMENT-simd}"

build() {
  deploy/local/cuda-headers.sh install
  local cuda
  cuda=$(deploy/local/cuda-headers.sh libs "${CUDA_MAJOR:-13}")
  export CGO_LDFLAGS="-L$cuda -Wl,-rpath-link,$cuda"
  rm -rf "$pack" && mkdir -p "$pack/lib" "$pack/mnist"
  local flags=(-trimpath -ldflags=-s\ -w)
  echo "building into $pack"
  go test -c "${flags[@]}" -tags edgeloop_cuda -o "$pack/cudaengine.test" ./pkg/nn/cudaengine
  go build "${flags[@]}" -tags edgeloop_cuda,openblas -o "$pack/bench-train-cuda" ./bench/train
  CGO_LDFLAGS= go build "${flags[@]}" -o "$pack/bench-train-purego" ./bench/train
  go build "${flags[@]}" -tags edgeloop_cuda,openblas -o "$pack/bench-pipeline" ./bench/pipeline
  go build "${flags[@]}" -tags edgeloop_cuda,openblas -o "$pack/bench-colour" ./bench/colour
  go build "${flags[@]}" -tags edgeloop_cuda,openblas -o "$pack/bench-detect" ./bench/detect
  # make pretrain's s backbone when this machine has it (bench/out/pretrain): the detect
  # part then need not make it again on the GPU.
  if [[ -e bench/out/pretrain/mobilenetv2-s.safetensors ]]; then
    mkdir -p "$pack/pretrain" && cp bench/out/pretrain/mobilenetv2-s.safetensors "$pack/pretrain/"
  fi
  # The photographs colourscenes draws behind its objects (deploy/local/photos.sh), so the
  # colour benchmarks see the same images there as here: only what colourscenes reads,
  # the scaled copy of a large photograph and not its 4–6k original (19 MB → 7 MB, so
  # that the pack stays under the 64 MiB a run may carry).
  deploy/local/photos.sh install >/dev/null
  local photos=${EDGELOOP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edgeloop}/photos f
  mkdir -p "$pack/photos/scaled" && cp "$photos"/scaled/*.png "$pack/photos/scaled/"
  for f in "$photos"/*.png "$photos"/*.jpg; do
    [[ -e $photos/scaled/$(basename "${f%.*}").png ]] || cp "$f" "$pack/photos/"
  done
  cp bench/train/torch_bench.py pkg/nn/weights/testdata/make_fixture.py "$pack/"
  cp -L "$(go env GOMODCACHE)"/github.com/petar/!go!m!n!i!s!t@*/data/*.gz "$pack/mnist/"
  # OpenBLAS and what it links, for the OpenBLAS rows (the GPU image need not have it).
  for l in libopenblas.so.0 libgfortran.so.5 libquadmath.so.0; do
    cp -L "$(ldconfig -p | awk -v l="$l" '$1 == l && /x86-64/ {print $NF; exit}')" "$pack/lib/$l"
  done
  xz -T0 -6 "$pack"/cudaengine.test "$pack"/bench-* "$pack"/lib/*.so.*
  du -sh "$pack"; ls -la "$pack" "$pack/lib"
}

device() {
  local parts=${1:-parity,speed,family,pipeline,cpu,colour}
  [[ -d $pack ]] || { echo "no $pack: run 'bench/gpu/run.sh build' on the build machine and carry it" >&2; exit 1; }
  local out=${OUT:-bench/out/gpu-results} work=/tmp/edgeloop-gpu
  mkdir -p "$out" && rm -rf "$work" && cp -r "$pack" "$work" && xz -d "$work"/*.xz "$work"/lib/*.xz
  chmod +x "$work"/cudaengine.test "$work"/bench-*
  nvidia-smi -L 2>/dev/null || echo "nvidia-smi: not found"
  # CUDA's own libraries on this machine, of the major the binaries were linked to: the
  # toolkit's, else PyTorch's wheels.
  local need cublas nvrtc
  need=$(objdump -p "$work/cudaengine.test" 2>/dev/null | awk '/NEEDED/ && /libcublas/ {print $2}')
  need=${need:-libcublas.so.13}
  cublas=$({ find /usr/local /usr/lib /opt -name "$need" 2>/dev/null || true; } | head -1)
  nvrtc=$({ find /usr/local /usr/lib /opt -name "libnvrtc.so.${need##*.so.}" 2>/dev/null || true; } | head -1)
  [[ -n $cublas && -n $nvrtc ]] || { echo "no $need or its libnvrtc on this machine: build with CUDA_MAJOR set to its CUDA major" >&2; exit 1; }
  echo "cuBLAS: $cublas   NVRTC: $nvrtc"
  export LD_LIBRARY_PATH="$(dirname "$cublas"):$(dirname "$nvrtc"):$work/lib:/usr/local/nvidia/lib64:/usr/local/nvidia/lib:${LD_LIBRARY_PATH:-}"
  export EDGELOOP_MNIST_DIR="$work/mnist"
  local report="$out/gpu.md" rc=0 py=python3 start=$SECONDS budget=${EDGELOOP_GPU_BUDGET:-540}
  [[ -x /opt/torch/.venv/bin/python3 ]] && py=/opt/torch/.venv/bin/python3
  # step LIMIT TITLE CMD...: runs CMD (from the repository root; `env -C "$work"` for
  # what runs in the work folder) for at most LIMIT seconds and what is left of the
  # budget, appending its output to the report as it comes.
  step() {
    local limit=$1 title=$2 left; shift 2
    left=$((budget - (SECONDS - start)))
    (( left < limit )) && limit=$left
    echo; echo "## $title" | tee -a "$report"
    if (( limit < 10 )); then echo "(not run: the ${budget} s budget is spent)" | tee -a "$report"; rc=1; return; fi
    timeout "$limit" "$@" 2>&1 | tee -a "$report" || { echo "(failed or stopped at ${limit} s)" | tee -a "$report"; rc=1; }
  }
  # want PART: whether PART (parity, speed, family, pipeline, cpu, colour, detect) is among
  # those asked for; detect is not in the default list (about 7 minutes alone: ask for it).
  want() { [[ ,$parts, == *,$1,* ]]; }
  {
    echo "# CUDA engine on $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo 'a GPU')"
    echo; echo "CUDA libraries: $cublas, $nvrtc; PyTorch: $($py -c 'import torch; print(torch.__version__, torch.version.cuda)' 2>&1 | tail -1)"
  } | tee "$report"
  want parity && step 150 "Parity with the CPU engine (loss, every gradient, three Adam steps from the same weights)" \
    env -C "$work" ./cudaengine.test -test.v -test.count=1
  want speed && step 150 "Training speed: the fixed classifier and grid detector (CUDA, OpenBLAS CPU, pure-Go CPU, PyTorch on the same GPU)" \
    "$work/bench-train-cuda" -engines cuda,cpu -batches 32,128,512 -seconds 1 -with "$work/bench-train-purego" -torch "$py" -torch-device cuda
  want family && step 200 "Training speed: the MobileNetV2 family and the multi-scale detector on the GPU (CUDA beside PyTorch)" \
    "$work/bench-train-cuda" -engines cuda -models "" -family n@96,s@160,m@224 -family-batches 32,128,512 \
      -det n,s,m -det-px 320 -det-batches 32,128 -seconds 1 -torch "$py" -torch-device cuda
  want pipeline && for be in cuda cpu; do
    step 90 "Approved batch to released model, 1,000 examples, $be" "$work/bench-pipeline" -sizes 1000 -backend "$be" -timeout 85s
  done
  if want colour; then
    # Issue 13's quality table on the GPU: make pretrain's recipe for each size (6,000
    # generated images of 8 other classes, 8 epochs), then every cell from scratch and
    # from that backbone; the cells and backbones come back as colour.tgz.
    export EDGELOOP_PHOTOS_DIR="$work/photos"
    for size in n s m; do
      step 80 "Pretraining the $size backbone (make pretrain's recipe)" \
        "$work/bench-colour" -pretrain "$work/pretrain/mobilenetv2-$size.safetensors" -size "$size" -pretrain-images 6000 -pretrain-epochs 8
    done
    step 240 "Colour classification: accuracy vs training images, each size, scratch and pretrained" \
      "$work/bench-colour" -out "$work/colour" -backbones "$work/pretrain/mobilenetv2-{size}.safetensors"
    "$work/bench-colour" -table -out "$work/colour" >"$out/colour.md" 2>&1 || true
    tar czf "$out/colour.tgz" -C "$work" colour pretrain 2>/dev/null || true
  fi
  if want detect; then
    # Issue 14's detector at 320 px (bench/detect): size s on 2,000 colour scenes at
    # 320×256 from make pretrain's s backbone (the pack's, the colour part's, or made
    # here: 38 s), 80 epochs of batch 32 at lr 1e-2 with colour augmentation (30 epochs
    # on 2 CPU cores gave 0.806 mAP@0.5 at 1e-2, still rising: docs/benchmarks.md);
    # about 6.5 minutes on the H200. The cell is written under $OUT/detect when done.
    # DETECT_PYRAMID=p2 trains the stride-4 pyramid instead (1.5x the multiply-adds;
    # docs/benchmarks.md, "The P2 pyramid at 320 px"), whose time on the H200 is not
    # measured yet.
    export EDGELOOP_PHOTOS_DIR="$work/photos"
    [[ -e $work/pretrain/mobilenetv2-s.safetensors ]] ||
      step 80 "Pretraining the s backbone (make pretrain's recipe)" \
        "$work/bench-colour" -pretrain "$work/pretrain/mobilenetv2-s.safetensors" -size s -pretrain-images 6000 -pretrain-epochs 8
    step 450 "Detection: the multi-scale detector s at 320×256 from 2,000 colour scenes, pretrained, 80 epochs" \
      "$work/bench-detect" -backend cuda -out "$out/detect" -backbones "$work/pretrain/mobilenetv2-{size}.safetensors" \
        -sizes s -size-starts pretrained -input 320x256 -train 2000 -test 300 -epochs 80 -batch 32 -lr 0.01 \
        -augment colour -latency 20 -pyramid "${DETECT_PYRAMID:-p3}"
  fi
  want cpu && step 120 "Training speed: the family and the detector on the CPU (OpenBLAS, all cores), for the speed-up" \
    "$work/bench-train-cuda" -engines cpu -models "" -family n@96,s@160,m@224 -family-batches 32 -det n,s,m -det-px 320 -det-batches 8 -seconds 1
  echo "report: $report"
  return $rc
}

case "${1:-}" in
  build) build ;;
  device) device "${2:-}" ;;
  *) echo "usage: $0 build | device [parity,speed,family,pipeline,cpu,colour,detect]" >&2; exit 2 ;;
esac
