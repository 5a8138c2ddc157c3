#!/usr/bin/env bash
# Installs what compiles edgeloop's CUDA engine (-tags edgeloop_cuda) on a machine without a GPU:
# Debian's nvidia-cuda-dev (CUDA 11.8 headers and libraries, from the contrib and
# non-free components, ~2.8 GB, once), where cgo finds them without flags.
#   deploy/local/cuda-headers.sh install   # idempotent
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
  *) echo "usage: $0 install" >&2; exit 2 ;;
esac
