#!/usr/bin/env bash
# Installs (once, cached) and starts the real servers on loopback: Kafka, MinIO and
# Mosquitto. With arguments, only those. Prints the environment the tests read.
#   deploy/local/up.sh [kafka] [minio] [mosquitto]
source "$(dirname "$0")/lib.sh"
servers=("$@")
[[ ${#servers[@]} -gt 0 ]] || servers=(kafka minio mosquitto)
# Install in parallel (the MinIO build and the Kafka download overlap), then start.
pids=()
for s in "${servers[@]}"; do "$HERE/$s.sh" install & pids+=($!); done
for p in "${pids[@]}"; do wait "$p"; done
for s in "${servers[@]}"; do "$HERE/$s.sh" start; done
cat <<ENV
EDGELOOP_TEST_KAFKA=127.0.0.1:${KAFKA_PORT:-19092}
EDGELOOP_TEST_S3=127.0.0.1:${MINIO_PORT:-19000}
EDGELOOP_TEST_MQTT=tcp://127.0.0.1:${MOSQUITTO_PORT:-11883}
ENV
