#!/usr/bin/env bash
# `make bench`: every benchmark, each printing its table and comparing against its peer
# in the same run. Tables are also written to bench/out/<name>.md.
#   bench/run.sh [bridge] [intake] [train] [agent] [pipeline] [loop] [annotate] [detect] [quality] [colour]   (default: all but quality and colour)
# quality trains full models (about half an hour on 2 cores) and colour trains the
# MobileNetV2 family 24 times (hours on 2 cores; resumable, `make pretrain` first for
# its pretrained column); run them by name. The GPU
# benchmark has its own script, bench/gpu/run.sh (see docs/cuda.md).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/out bin
# The CPU engine's AVX2 row kernels, as the Makefile builds them.
export GOEXPERIMENT="${GOEXPERIMENT-simd}"
all=(bridge intake train agent pipeline loop annotate detect)
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=("${all[@]}")

tags=() # OpenBLAS, installed when missing (deploy/local/openblas.sh); else pure Go
read -ra tags <<<"$(deploy/local/openblas.sh tags)"

for t in "${targets[@]}"; do
  echo "== $t"
  case $t in
    bridge)
      # A Mosquitto of its own (same settings as the shared one, fresh data), so that
      # what other clients' sessions hold in the shared broker does not weigh on it.
      port=${BENCH_MOSQUITTO_PORT:-11884}
      deploy/local/mosquitto.sh purge bench-mosquitto
      MOSQUITTO_PORT=$port deploy/local/mosquitto.sh start bench-mosquitto
      go build -o bin/bench-bridge ./bench/bridge
      { bin/bench-bridge -kafka 127.0.0.1:19092 -mqtt tcp://127.0.0.1:$port
        bin/bench-bridge -embedded; } | tee bench/out/bridge.md
      deploy/local/mosquitto.sh purge bench-mosquitto ;;
    intake)
      go build -o bin/bench-intake ./bench/intake
      { bin/bench-intake -mode curator -n 3000
        bin/bench-intake -mode fleet -devices 1000 -rate 1000 -duration 15s; } | tee bench/out/intake.md ;;
    train)
      py=$(bench/setup-torch.sh)
      go build -o bin/bench-train ./bench/train
      extra=()
      if [[ ${#tags[@]} -gt 0 ]]; then
        go build "${tags[@]}" -o bin/bench-train-openblas ./bench/train
        extra=(-with bin/bench-train-openblas)
      fi
      bin/bench-train -batches 16,32,64 -family n@96,s@160,m@224 -det n,s -det-px 320 -torch "$py" "${extra[@]}" | tee bench/out/train.md ;;
    agent)
      go build -o bin/edge-agent ./edge-agent
      go run ./bench/agent -binary bin/edge-agent | tee bench/out/agent.md ;;
    pipeline)
      go run "${tags[@]}" ./bench/pipeline -sizes 1000,5000,20000,50000 | tee bench/out/pipeline.md ;;
    detect)
      go run "${tags[@]}" ./bench/detect -sizes n,s -input 160x128 | tee bench/out/detect.md ;;
    quality)
      go run "${tags[@]}" ./bench/quality -out bench/out/quality | tee bench/out/quality.md ;;
    colour)
      go run "${tags[@]}" ./bench/colour -out bench/out/colour | tee bench/out/colour.md ;;
    loop)
      for d in rotation scale background; do
        go run "${tags[@]}" ./bench/loop -drift "$d" -test 500 -modes replay -replay 300 \
          -strategies random,margin,margin-agentshare,margin-pool,agentshare-pool -out "bench/out/loop-$d" | tee "bench/out/loop-$d.md"
      done
      go run "${tags[@]}" ./bench/loop -seeds 3 -iterations 6 -seed-examples 3000 -modes full,replay -replay 300,1500 -strategies margin \
        -out bench/out/loop-replay | tee bench/out/loop-replay.md ;;
    annotate)
      deploy/local/browser.sh install
      go run ./bench/annotate -runs 3 | tee bench/out/annotate.md ;;
    *) echo "unknown benchmark $t (have: ${all[*]} quality colour)" >&2; exit 2 ;;
  esac
done
