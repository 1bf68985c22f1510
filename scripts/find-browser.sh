#!/bin/sh
# Find a Chromium for the review app's browser tests (tests/test_review_browser.py); `make test` runs this.
#
# Looks, in this order, at $IMRI_CHROMIUM, Debian's /usr/bin/chromium and one installed by
# `playwright install chromium`. Installs Debian's package only when it runs as root on a Debian-like
# system with apt-get; otherwise it says exactly what to run. Never fails: without a browser the browser
# tests are skipped (pytest names the reason), everything else runs. `make demo` needs no browser.
#
# usage: scripts/find-browser.sh [PYTHON]   (default .venv/bin/python)

PY="${1:-.venv/bin/python}"

found() {
    echo "browser tests: using $1"
    exit 0
}

if [ -n "${IMRI_CHROMIUM:-}" ]; then
    [ -x "$IMRI_CHROMIUM" ] && found "$IMRI_CHROMIUM (IMRI_CHROMIUM)"
    echo "browser tests: IMRI_CHROMIUM=$IMRI_CHROMIUM is not an executable file; they will be skipped"
    exit 0
fi

[ -x /usr/bin/chromium ] && found /usr/bin/chromium

bundled=$("$PY" - <<'EOF' 2>/dev/null
import os
from playwright.sync_api import sync_playwright

with sync_playwright() as playwright:
    path = playwright.chromium.executable_path
print(path if path and os.access(path, os.X_OK) else "")
EOF
)
[ -n "$bundled" ] && found "$bundled (playwright install chromium)"

if [ "$(id -u)" = 0 ] && [ -f /etc/debian_version ] && command -v apt-get >/dev/null 2>&1; then
    echo "browser tests: installing Debian's chromium (running as root with apt-get)"
    if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
        && [ -x /usr/bin/chromium ]; then
        found /usr/bin/chromium
    fi
    echo "browser tests: apt-get could not install chromium; they will be skipped"
    exit 0
fi

cat <<'EOF'
browser tests: no Chromium found; they will be SKIPPED (everything else runs). To run them, do one of:
  sudo apt-get install chromium              # Debian (its package is named chromium)
  .venv/bin/playwright install chromium      # Playwright's own build, downloaded into ~/.cache/ms-playwright
  IMRI_CHROMIUM=/path/to/chromium make test  # any Chromium or Chrome you already have
EOF
exit 0
