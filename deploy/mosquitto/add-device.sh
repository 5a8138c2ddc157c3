#!/usr/bin/env bash
# Adds (or resets) a device's MQTT credentials: its user name is its device id.
#   deploy/mosquitto/add-device.sh DEVICE_ID [PASSWORD]   (prints a generated password)
set -euo pipefail
dev=${1:?usage: add-device.sh DEVICE_ID [PASSWORD]}
[[ $dev =~ ^[a-z0-9][a-z0-9-]{0,62}$ ]] || { echo "device id $dev: want [a-z0-9][a-z0-9-]{0,62}" >&2; exit 2; }
pw=${2:-$(head -c 18 /dev/urandom | base64 | tr -d '/+=')}
file=$(dirname "$0")/passwd
touch "$file"
docker compose run --rm --no-deps -v "$(cd "$(dirname "$0")" && pwd):/mosquitto/config" mosquitto \
  mosquitto_passwd -b /mosquitto/config/passwd "$dev" "$pw"
echo "device $dev password: $pw"
