#!/usr/bin/env bash
# Adds (or resets) MQTT credentials, and confines a device to its project.
#   deploy/mosquitto/add-device.sh PROJECT DEVICE_ID [PASSWORD]   a device of PROJECT
#   deploy/mosquitto/add-device.sh --bridge [PASSWORD]            the bridges' user
# A generated password is printed. A device's user name is its device id, unique across
# projects; the ACL lets it publish only edgeloop/v1/PROJECT/DEVICE_ID/{examples,status}
# and read only edgeloop/v1/PROJECT/release, its site release
# edgeloop/v1/PROJECT/DEVICE_ID/release and its confirmations,
# edgeloop/v1/PROJECT/DEVICE_ID/acks. Reload a running broker afterwards:
# docker compose kill -s HUP mosquitto.
# EDGELOOP_MOSQUITTO_DIR: the directory of passwd and acl (default: this script's).
set -euo pipefail
usage="usage: add-device.sh PROJECT DEVICE_ID [PASSWORD] | add-device.sh --bridge [PASSWORD]"
die() { echo "add-device.sh: $*" >&2; exit 2; }
id_re='^[a-z0-9][a-z0-9-]{0,62}$'
dir=${EDGELOOP_MOSQUITTO_DIR:-$(cd "$(dirname "$0")" && pwd)}
acl=$dir/acl
gen() { head -c 18 /dev/urandom | base64 | tr -d '/+='; }

if [[ ${1:-} == --bridge ]]; then
  user=bridge project="" pw=${2:-$(gen)}
else
  project=${1:?$usage} user=${2:?$usage}
  pw=${3:-$(gen)}
  [[ $project =~ $id_re ]] || die "project id $project: want [a-z0-9][a-z0-9-]{0,62}"
  [[ $user =~ $id_re ]] || die "device id $user: want [a-z0-9][a-z0-9-]{0,62}"
  [[ $user != bridge ]] || die "device id bridge is the bridges' user"
  [[ -f $acl ]] || die "$acl is missing"
  # A device id belongs to one project: its ACL block is written once.
  have=$(awk -v u="user $user" '$0 == u { getline; split($3, p, "/"); print p[3]; exit }' "$acl")
  if [[ -z $have ]]; then
    printf '\n# device %s of project %s\nuser %s\ntopic write edgeloop/v1/%s/%s/examples\ntopic write edgeloop/v1/%s/%s/status\ntopic read edgeloop/v1/%s/release\ntopic read edgeloop/v1/%s/%s/release\ntopic read edgeloop/v1/%s/%s/acks\n' \
      "$user" "$project" "$user" "$project" "$user" "$project" "$user" "$project" "$project" "$user" "$project" "$user" >>"$acl"
  elif [[ $have != "$project" ]]; then
    die "device $user belongs to project $have; pick another device id"
  fi
fi

passwd=$dir/passwd
touch "$passwd"
if command -v mosquitto_passwd >/dev/null; then
  mosquitto_passwd -b "$passwd" "$user" "$pw"
else
  docker compose run --rm --no-deps -v "$dir:/mosquitto/config" mosquitto \
    mosquitto_passwd -b /mosquitto/config/passwd "$user" "$pw"
fi
if [[ -n $project ]]; then
  echo "device $user of project $project password: $pw"
else
  echo "bridge password: $pw"
fi
