#!/usr/bin/env bash
# The annotation UI's browser test needs Debian's Chromium and playwright-core from npm
# (no browser download: Playwright drives the system Chromium).
#   deploy/local/browser.sh install
source "$(dirname "$0")/lib.sh"
e2e=$(cd "$HERE/../../pkg/curator/e2e" && pwd)
case ${1:-install} in
  install)
    [[ -x /usr/bin/chromium ]] || apt_install chromium
    command -v npm >/dev/null || apt_install nodejs npm
    if [[ ! -d $e2e/node_modules/playwright-core ]]; then
      log "installing playwright-core into $e2e (npm cache: $EDGELOOP_CACHE/npm)"
      (cd "$e2e" && npm ci --no-audit --no-fund --cache "$EDGELOOP_CACHE/npm" >/dev/null)
    fi ;;
  *) die "usage: $0 install" ;;
esac
