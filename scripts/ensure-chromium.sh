#!/usr/bin/env bash
# Make sure a headless Chromium (Debian's `chromium` package) is there for the browser test.
# As root, install it when missing; otherwise say how to get it. Playwright drives this
# binary (never `playwright install`, which downloads browsers from the internet).
# Usage: scripts/ensure-chromium.sh [--required]
set -u
if command -v chromium >/dev/null; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian package chromium (headless browser for the end-to-end test)..."
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  command -v chromium >/dev/null && exit 0
fi
echo "chromium is not installed: run 'sudo apt-get install chromium'." >&2
[ "${1:-}" = "--required" ] && exit 1
echo "(the browser test will be skipped)" >&2
exit 0
