#!/usr/bin/env bash
# MinIO built from source with `go install github.com/minio/minio@<pinned>` (once, cached)
# and run on loopback.
#   deploy/local/minio.sh install|start|stop|restart|status|purge [INSTANCE]
# MINIO_PORT (default 19000); credentials edgeloop / edgeloop-secret unless
# MINIO_ROOT_USER / MINIO_ROOT_PASSWORD say otherwise.
source "$(dirname "$0")/lib.sh"

MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
cmd=${1:-start}
inst=${2:-minio}
port=${MINIO_PORT:-19000}
bin=$EDGELOOP_CACHE/minio/$MINIO_VERSION/minio
dir=$EDGELOOP_RUN/$inst
pidfile=$dir/minio.pid

install() {
  [[ -x $bin ]] && return 0
  command -v go >/dev/null || die "go not found"
  log "building MinIO $MINIO_VERSION from source (a few minutes, once)"
  GOBIN=$(dirname "$bin") GOFLAGS= go install "github.com/minio/minio@$MINIO_VERSION"
}

start() {
  begin_start || return 0
  port_open 127.0.0.1 "$port" && die "port $port is taken by another process"
  MINIO_ROOT_USER=${MINIO_ROOT_USER:-edgeloop} MINIO_ROOT_PASSWORD=${MINIO_ROOT_PASSWORD:-edgeloop-secret} \
    MINIO_BROWSER=off MINIO_UPDATE=off \
    nohup "$bin" server --quiet --address "127.0.0.1:$port" "$dir/data" >>"$dir/minio.log" 2>&1 9>&- &
  echo $! >"$pidfile"
  wait_port 127.0.0.1 "$port" 60 "minio ($inst)"
  local i
  for ((i = 0; i < 300; i++)); do
    curl -fsS "http://127.0.0.1:$port/minio/health/ready" >/dev/null 2>&1 && break
    sleep 0.1
  done
  log "$inst listening on 127.0.0.1:$port (log: $dir/minio.log)"
}

dispatch "$cmd"
