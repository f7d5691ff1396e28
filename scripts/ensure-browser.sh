#!/usr/bin/env bash
# Installs Debian's headless Chromium for the UI tests when it is missing and we may install it.
# Without it the browser tests skip with a message saying how to enable them.
set -u
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian chromium for the browser tests (apt-get)…"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "could not install chromium; browser tests will be skipped"
else
  echo "chromium not found; browser tests will be skipped (install: sudo apt-get install chromium)"
fi
exit 0
