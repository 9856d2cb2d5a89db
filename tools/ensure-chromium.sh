#!/usr/bin/env bash
# Chromium and ChromeDriver (figure export through kaleido, the browser tests): installed when missing and this
# machine can (root, or sudo without a password); otherwise stop at once with the one command to run.
set -euo pipefail
if [ -n "${PRUNESCOPE_CHROMIUM:-}" ] && [ -x "${PRUNESCOPE_CHROMIUM}" ]; then
  exit 0
fi
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO="sudo -n"
else
  echo "Chromium is missing (figure export and the browser tests need it). Install it with:" >&2
  echo "    sudo apt-get install -y chromium chromium-driver" >&2
  echo "(or set PRUNESCOPE_CHROMIUM to a Chromium binary), then run make test again." >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "Chromium is missing and this machine has no apt-get: install Chromium and ChromeDriver with its package" >&2
  echo "manager, or set PRUNESCOPE_CHROMIUM to a Chromium binary, then run make test again." >&2
  exit 1
fi
echo "installing chromium and chromium-driver (figure export, browser tests)"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
