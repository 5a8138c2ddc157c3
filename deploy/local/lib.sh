# Shared helpers of the deploy/local scripts; source it, do not run it.
# Everything installed goes to $EDGELOOP_CACHE (kept between runs); everything a running
# server writes (data, logs, pid) goes to $EDGELOOP_RUN/<instance>.
set -euo pipefail

EDGELOOP_CACHE=${EDGELOOP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edgeloop}
EDGELOOP_RUN=${EDGELOOP_RUN:-${TMPDIR:-/tmp}/edgeloop-local}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$EDGELOOP_CACHE" "$EDGELOOP_RUN"

log() { printf '[%s] %s\n' "$(basename "$0" .sh)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# port_open HOST PORT: true when something accepts TCP connections there.
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# wait_port HOST PORT SECONDS NAME: wait until the port accepts connections.
wait_port() {
  local host=$1 port=$2 secs=$3 name=$4 i
  for ((i = 0; i < secs * 10; i++)); do
    port_open "$host" "$port" && return 0
    sleep 0.1
  done
  die "$name did not open $host:$port within ${secs}s"
}

# running PIDFILE: true when the pid in PIDFILE is alive.
running() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# stop_pid PIDFILE NAME: stop the process gracefully, then for good.
stop_pid() {
  local pidfile=$1 name=$2 pid i
  if ! running "$pidfile"; then
    rm -f "$pidfile"
    return 0
  fi
  pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null || true
  for ((i = 0; i < 300; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name ($pid) did not stop in 30s; killing it"
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
  log "$name stopped"
}

# with_lock NAME CMD...: run CMD holding an exclusive lock, so that parallel test
# processes starting the same server do not race.
with_lock() {
  local name=$1
  shift
  exec 9>"$EDGELOOP_RUN/$name.lock"
  flock 9
  "$@"
}

# as_root CMD...: run CMD as root (directly, or through sudo).
as_root() {
  if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi
}

# apt_install PKG...: install Debian packages, quietly.
apt_install() {
  log "installing $* from Debian's packages"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# dispatch CMD: the command line of a server script, whose install and start functions
# and $inst, $pidfile, $port and $dir are set.
dispatch() {
  case $1 in
    install) install ;;
    start) with_lock "$inst" start ;;
    stop) stop_pid "$pidfile" "$inst" ;;
    restart) stop_pid "$pidfile" "$inst"; with_lock "$inst" start ;;
    status) running "$pidfile" && echo "$inst running on 127.0.0.1:$port" || { echo "$inst stopped"; exit 1; } ;;
    purge) stop_pid "$pidfile" "$inst"; rm -rf "$dir" "$EDGELOOP_RUN/$inst.lock" ;;
    *) die "usage: $0 install|start|stop|restart|status|purge [INSTANCE]" ;;
  esac
}

# begin_start: the start of a server script's start function — install, then fail when
# the instance runs already (start returns then), else make its data folder.
begin_start() {
  install
  if running "$pidfile"; then
    log "$inst already running on 127.0.0.1:$port"
    return 1
  fi
  mkdir -p "$dir/data"
}
