#!/usr/bin/env bash
# OpenBLAS for CPU training (2–3× the pure-Go BLAS): installs Debian's libopenblas-dev
# when its header and library do not link here, and prints the Go build flags that use
# it. When it cannot be installed (no apt, no root, no network), it says so on stderr
# and prints nothing: the build then falls back to the pure-Go BLAS.
#   deploy/local/openblas.sh tags     -> "-tags openblas" or ""
source "$(dirname "$0")/lib.sh"

links() { echo 'int main(void){return 0;}' | cc -include cblas.h -x c - -lopenblas -o /dev/null 2>/dev/null; }

case ${1:-tags} in
  tags)
    if ! links; then
      if command -v apt-get >/dev/null && { [[ $(id -u) == 0 ]] || command -v sudo >/dev/null; } &&
        (apt_install libopenblas-dev) >&2 2>&1 && links; then
        log "OpenBLAS installed: training uses it"
      else
        log "OpenBLAS is not available (install libopenblas-dev): training falls back to the pure-Go BLAS, about 3x slower"
        exit 0
      fi
    fi
    echo "-tags openblas"
    ;;
  *) die "usage: $0 tags" ;;
esac
