#!/usr/bin/env bash
# Eclipse Mosquitto from Debian's packages, with persistence on, on loopback.
#   deploy/local/mosquitto.sh install|start|stop|restart|status|purge [INSTANCE]
# MOSQUITTO_PORT (default 11883).
source "$(dirname "$0")/lib.sh"

cmd=${1:-start}
inst=${2:-mosquitto}
port=${MOSQUITTO_PORT:-11883}
dir=$EDGELOOP_RUN/$inst
pidfile=$dir/mosquitto.pid

bin() { command -v mosquitto || { [[ -x /usr/sbin/mosquitto ]] && echo /usr/sbin/mosquitto; }; }

install() {
  [[ -n $(bin) ]] && return 0
  apt_install mosquitto
}

start() {
  begin_start || return 0
  cat >"$dir/mosquitto.conf" <<CONF
listener $port 127.0.0.1
# Run as whoever started it: as root, mosquitto would otherwise switch to the
# "mosquitto" user and could not write its persistence or log here.
user $(id -un)
allow_anonymous true
persistence true
persistence_location $dir/data/
autosave_interval 1
persistent_client_expiration 1h
max_inflight_messages 100
max_queued_messages 100000
max_queued_bytes 0
max_packet_size 4194304
# Small packets (PUBACKs, the bridge's confirmations) go out at once instead of
# waiting for the ACK of the last one (Nagle; ~40 ms each with delayed ACKs).
set_tcp_nodelay true
log_dest file $dir/mosquitto.log
log_type error
log_type warning
log_type notice
CONF
  port_open 127.0.0.1 "$port" && die "port $port is taken by another process"
  nohup "$(bin)" -c "$dir/mosquitto.conf" >>"$dir/stdout.log" 2>&1 9>&- &
  echo $! >"$pidfile"
  wait_port 127.0.0.1 "$port" 20 "mosquitto ($inst)"
  log "$inst listening on 127.0.0.1:$port (log: $dir/mosquitto.log)"
}

dispatch "$cmd"
