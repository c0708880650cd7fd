#!/usr/bin/env bash
# Install the Debian packages the tests and the console need, when they are missing.
# Run as root (CI and the dev machines are); otherwise print the apt line to run by hand.
# `system-deps.sh run`: only what the console needs to run (translations, Chinese watermark text).
set -euo pipefail

run_packages=(gettext fonts-noto-cjk)
# ICC profiles for the colour tests: colord-data, icc-profiles-free (RGB, gray), libgs-common (CMYK);
# gdk-pixbuf-tests: a corpus of real image files (tests/runtime/test_photo_corpus.py).
packages=("${run_packages[@]}" chromium redis-server pngcheck jpeginfo postgresql colord-data icc-profiles-free libgs-common gdk-pixbuf-tests)
[ "${1:-}" = run ] && packages=("${run_packages[@]}")
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "Missing system packages: ${missing[*]}" >&2
  echo "Install them with: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  # The console runs without them (English only; watermarks in scripts without a font fail with the reason).
  [ "${1:-}" = run ] && exit 0
  exit 1
fi
echo "Installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
