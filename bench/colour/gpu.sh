#!/usr/bin/env bash
# The colour quality table (bench/colour) on a lent GPU, in two halves, as bench/gpu/run.sh:
#
#   bench/colour/gpu.sh build    here: builds bench/colour with -tags edgeloop_cuda against
#                                CUDA $CUDA_MAJOR's cuBLAS and NVRTC (deploy/local/cuda-headers.sh)
#                                and packs it with the photographs the data is drawn over
#                                into bench/out/colour-gpu (about 25 MB; carry bench/out)
#   bench/colour/gpu.sh device   on the GPU machine (no Go, no network), from the repository
#                                root: makes each size's backbone that bench/out/pretrain
#                                lacks (make pretrain's recipe, at 96 px), then the cells
#                                that bench/out/colour/cells lacks, starting none after
#                                $BUDGET seconds; prints the table and leaves the backbones,
#                                cells and table under $OUT (or bench/out/colour-gpu-results)
#
# SIZES (n,s,m), TRAIN (100,300,1000,3000) and BUDGET (150) pick the work; EXTRA adds
# bench/colour flags. BACKEND=cpu BIN=<a CPU build of bench/colour> runs the device half
# without a GPU, to check it (the CUDA build stops at start where no GPU is present).
set -euo pipefail
cd "$(dirname "$0")/../.."
pack=bench/out/colour-gpu

build() {
  deploy/local/cuda-headers.sh install
  local cuda
  cuda=$(deploy/local/cuda-headers.sh libs "${CUDA_MAJOR:-13}")
  rm -rf "$pack" && mkdir -p "$pack"
  CGO_LDFLAGS="-L$cuda -Wl,-rpath-link,$cuda" \
    go build -trimpath -ldflags='-s -w' -tags edgeloop_cuda -o "$pack/bench-colour" ./bench/colour
  # The photographs the data is drawn over: without them the device would draw other data.
  cp -r "$(deploy/local/photos.sh)" "$pack/photos"
  xz -T0 -6 "$pack/bench-colour"
  du -sh "$pack"
}

device() {
  [[ -d $pack ]] || { echo "no $pack: run 'bench/colour/gpu.sh build' on the build machine and carry bench/out" >&2; exit 1; }
  local out=${OUT:-bench/out/colour-gpu-results} work=/tmp/edgeloop-colour-gpu backend=${BACKEND:-cuda}
  local sizes=${SIZES:-n,s,m} budget=${BUDGET:-150} start=$SECONDS
  mkdir -p "$out/pretrain" "$out/colour/cells" && rm -rf "$work" && mkdir -p "$work"
  if [[ -n ${BIN:-} ]]; then cp "$BIN" "$work/bench-colour"; else xz -dc "$pack/bench-colour.xz" >"$work/bench-colour"; fi
  chmod +x "$work/bench-colour"
  if [[ $backend == cuda ]]; then
    nvidia-smi -L 2>/dev/null || echo "nvidia-smi: not found"
    # cuBLAS and NVRTC of the major the binary was linked to: the toolkit's, else PyTorch's wheels.
    local need cublas nvrtc
    need=$(objdump -p "$work/bench-colour" 2>/dev/null | awk '/NEEDED/ && /libcublas/ {print $2}')
    need=${need:-libcublas.so.13}
    cublas=$({ find /usr/local /usr/lib /opt -name "$need" 2>/dev/null || true; } | head -1)
    nvrtc=$({ find /usr/local /usr/lib /opt -name "libnvrtc.so.${need##*.so.}" 2>/dev/null || true; } | head -1)
    [[ -n $cublas && -n $nvrtc ]] || { echo "no $need or its libnvrtc on this machine" >&2; exit 1; }
    export LD_LIBRARY_PATH="$(dirname "$cublas"):$(dirname "$nvrtc"):/usr/local/nvidia/lib64:/usr/local/nvidia/lib:${LD_LIBRARY_PATH:-}"
  fi
  export EDGELOOP_PHOTOS_DIR=$PWD/$pack/photos
  # Carried backbones and cells are kept; what is made here goes to $out.
  cp bench/out/pretrain/mobilenetv2-*.safetensors "$out/pretrain/" 2>/dev/null || true
  cp bench/out/colour/cells/*.json "$out/colour/cells/" 2>/dev/null || true
  local s
  for s in ${sizes//,/ }; do
    s=${s%@*}
    [[ -f $out/pretrain/mobilenetv2-$s.safetensors ]] && continue
    "$work/bench-colour" -backend "$backend" -pretrain "$out/pretrain/mobilenetv2-$s.safetensors" -size "$s" \
      -pretrain-images "${PRETRAIN_IMAGES:-6000}" -pretrain-epochs "${PRETRAIN_EPOCHS:-8}" 2>&1 | grep -v '^ *epoch' || true
  done
  "$work/bench-colour" -backend "$backend" -sizes "$sizes" -train "${TRAIN:-100,300,1000,3000}" ${EXTRA:-} \
    -backbones "$out/pretrain/mobilenetv2-{size}.safetensors" -out "$out/colour" \
    -budget "$((budget - (SECONDS - start)))s" 2>&1 | grep -v '^ *epoch'
  echo "$((SECONDS - start)) s; cells, table and backbones under $out"
}

case "${1:-}" in
  build) build ;;
  device) device ;;
  *) echo "usage: $0 build | device" >&2; exit 2 ;;
esac
