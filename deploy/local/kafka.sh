#!/usr/bin/env bash
# Apache Kafka 4.x in KRaft mode (one combined broker+controller) from Maven Central's
# jars, run on the machine's Java 17, on loopback.
#   deploy/local/kafka.sh install|start|stop|restart|status [INSTANCE]
# KAFKA_PORT (default 19092) is the client port; KAFKA_PORT+1 is the controller's.
source "$(dirname "$0")/lib.sh"

KAFKA_VERSION=4.1.1
cmd=${1:-start}
inst=${2:-kafka}
port=${KAFKA_PORT:-19092}
cport=$((port + 1))
libs=$EDGELOOP_CACHE/kafka/$KAFKA_VERSION/libs
dir=$EDGELOOP_RUN/$inst
pidfile=$dir/kafka.pid

install() {
  [[ -f $libs/.complete ]] && return 0
  command -v java >/dev/null || apt_install openjdk-17-jre-headless
  command -v mvn >/dev/null || apt_install maven
  log "installing Kafka $KAFKA_VERSION jars from Maven Central into $libs"
  rm -rf "$libs"
  mkdir -p "$libs"
  mvn -q -B -Dstyle.color=never -f "$HERE/kafka/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies -DoutputDirectory="$libs" -DincludeScope=runtime
  touch "$libs/.complete"
}

start() {
  begin_start || return 0
  cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=3
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
message.max.bytes=4194304
PROPS
  local java=(java -Xms256m -Xmx768m -XX:+UseG1GC -XX:TieredStopAtLevel=1 -Xshare:auto
    -Dlog4j2.configurationFile="$HERE/kafka/log4j2.properties" -cp "$libs/*")
  if [[ ! -f $dir/data/meta.properties ]]; then
    "${java[@]}" kafka.tools.StorageTool format -t "$(uuidgen 2>/dev/null || cat /proc/sys/kernel/random/uuid)" \
      -c "$dir/server.properties" >"$dir/format.log" 2>&1 || { cat "$dir/format.log" >&2; die "kafka storage format failed"; }
  fi
  port_open 127.0.0.1 "$port" && die "port $port is taken by another process"
  nohup "${java[@]}" kafka.Kafka "$dir/server.properties" >>"$dir/kafka.log" 2>&1 9>&- &
  echo $! >"$pidfile"
  wait_port 127.0.0.1 "$port" 90 "kafka ($inst)"
  log "$inst listening on 127.0.0.1:$port (log: $dir/kafka.log)"
}

dispatch "$cmd"
