#!/usr/bin/env bash
# The annotation UI's browser test needs Debian's Chromium and playwright-core from npm
# (no browser download: Playwright drives the system Chromium).
#   deploy/local/browser.sh install
source "$(dirname "$0")/lib.sh"
e2e=$(cd "$HERE/../../pkg/curator/e2e" && pwd)
case ${1:-install} in
  install)
    if [[ ! -x /usr/bin/chromium ]]; then
      log "installing chromium from Debian's packages"
      as_root apt-get update -qq
      DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends chromium >/dev/null
    fi
    command -v node >/dev/null || die "node not found: install Node.js 20 (apt-get install nodejs npm)"
    if [[ ! -d $e2e/node_modules/playwright-core ]]; then
      log "installing playwright-core into $e2e (npm cache: $EDGELOOP_CACHE/npm)"
      (cd "$e2e" && npm ci --no-audit --no-fund --cache "$EDGELOOP_CACHE/npm" >/dev/null)
    fi ;;
  *) die "usage: $0 install" ;;
esac
