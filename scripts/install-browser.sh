#!/usr/bin/env bash
# Install Debian's headless Chromium and its WebDriver for tests/test_leaderboard_browser.py.
# Idempotent: does nothing when both are already installed. Never fails the caller: when it
# cannot install (not root, no apt-get, no network) it says so and exits 0, and the browser
# test then skips with a loud reason.
set -u

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    echo "install-browser: chromium and chromedriver already installed"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-browser: WARNING no apt-get here; the browser test will be skipped" >&2
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "install-browser: WARNING not root and no passwordless sudo; the browser test" \
             "will be skipped (run: apt-get install -y chromium chromium-driver)" >&2
        exit 0
    fi
fi
export DEBIAN_FRONTEND=noninteractive
if $SUDO apt-get update -q && $SUDO apt-get install -y -q --no-install-recommends \
        chromium chromium-driver; then
    echo "install-browser: installed $(chromium --version 2>/dev/null)"
else
    echo "install-browser: WARNING apt-get could not install chromium chromium-driver;" \
         "the browser test will be skipped" >&2
fi
exit 0
