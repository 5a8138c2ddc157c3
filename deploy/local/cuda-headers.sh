#!/usr/bin/env bash
# Installs what compiles edgeloop's CUDA engine (-tags edgeloop_cuda) on a machine without a GPU:
# Debian's nvidia-cuda-dev (CUDA 11.8 headers and libraries, from the contrib and
# non-free components, ~2.8 GB, once), where cgo finds them without flags.
#   deploy/local/cuda-headers.sh install   # idempotent
#   deploy/local/cuda-headers.sh libs 13   # prints a folder with CUDA 13's libcublas.so and
#                                          # libnvrtc.so from PyPI's wheels, to link against
#                                          # (-L) when the GPU machine runs CUDA 13: Debian's
#                                          # 11.8 libraries version their symbols, so a
#                                          # binary linked to them cannot load CUDA 13's
set -euo pipefail
. "$(dirname "$0")/lib.sh"

have() { [[ -f /usr/include/cuda.h && -f /usr/include/cublas_v2.h && -f /usr/include/nvrtc.h ]]; }

case ${1:-install} in
  install)
    if have; then log "headers present"; exit 0; fi
    if ! grep -rqs "non-free" /etc/apt/sources.list.d/edgeloop-cuda.sources; then
      . /etc/os-release
      log "adding contrib non-free for $VERSION_CODENAME"
      as_root tee /etc/apt/sources.list.d/edgeloop-cuda.sources >/dev/null <<SRC
Types: deb
URIs: http://deb.debian.org/debian
Suites: $VERSION_CODENAME $VERSION_CODENAME-updates
Components: contrib non-free
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    fi
    log "nvidia-cuda-dev takes about 3 minutes, once"
    apt_install nvidia-cuda-dev
    have || die "nvidia-cuda-dev installed but cuda.h, cublas_v2.h or nvrtc.h is missing"
    log "ready" ;;
  libs)
    major=${2:-13}
    dir=$EDGELOOP_CACHE/cuda$major
    lib=$dir/nvidia/cu$major/lib
    if [[ ! -e $lib/libcublas.so || ! -e $lib/libnvrtc.so ]]; then
      log "downloading cuBLAS and NVRTC $major from PyPI (510 MB, once)"
      mkdir -p "$dir"
      python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --platform manylinux_2_27_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
        -d "$dir" "nvidia-cublas==$major.0.*" "nvidia-cuda-nvrtc==$major.0.*" >&2
      for w in "$dir"/nvidia_cublas-*.whl "$dir"/nvidia_cuda_nvrtc-*.whl; do
        (cd "$dir" && unzip -o -q "$w" "nvidia/cu$major/lib/*")
      done
      for l in cublas cublasLt nvrtc; do ln -sf "lib$l.so.$major" "$lib/lib$l.so"; done
    fi
    echo "$lib" ;;
  *) echo "usage: $0 install | libs [MAJOR]" >&2; exit 2 ;;
esac
