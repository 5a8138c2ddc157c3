#!/usr/bin/env bash
# Stops the servers up.sh started (their data stays until `<server>.sh purge`).
source "$(dirname "$0")/lib.sh"
for s in kafka minio mosquitto; do "$HERE/$s.sh" stop || true; done
