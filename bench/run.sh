#!/usr/bin/env bash
# `make bench`: every benchmark, each printing its table and comparing against its peer
# in the same run. Tables are also written to bench/out/<name>.md.
#   bench/run.sh [bridge] [...]   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/out
all=(bridge)
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=("${all[@]}")

for t in "${targets[@]}"; do
  echo "== $t"
  case $t in
    bridge)
      { go run ./bench/bridge -kafka 127.0.0.1:19092 -mqtt tcp://127.0.0.1:11883
        go run ./bench/bridge -embedded; } | tee bench/out/bridge.md ;;
    *) echo "unknown benchmark $t (have: ${all[*]})" >&2; exit 2 ;;
  esac
done
