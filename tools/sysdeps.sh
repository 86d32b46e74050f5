#!/usr/bin/env bash
# System packages a2v needs: ffmpeg (command-line probing) and espeak-ng (speech for the sample data).
# With --test, also what the browser test of the panel needs (tests/test_app.py): Debian's chromium and chromium-driver.
set -euo pipefail
missing=()
command -v ffmpeg >/dev/null || missing+=(ffmpeg)
command -v espeak-ng >/dev/null || missing+=(espeak-ng)
ldconfig -p 2>/dev/null | grep -q libespeak-ng.so || [[ " ${missing[*]} " == *" espeak-ng "* ]] || missing+=(libespeak-ng1)
if [ "${1:-}" = "--test" ]; then
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  [ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
fi
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing ${missing[*]} with apt-get"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "a2v needs ${missing[*]}: please run   sudo apt-get install -y ${missing[*]}   (or your system's equivalent), then re-run make" >&2
  exit 1
fi
