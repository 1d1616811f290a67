#!/usr/bin/env bash
# Debian packages: the shared libpython the Triton Python backend stub links against, venv
# support, libb64 for perf_analyzer; for the benchmark, ffmpeg and the packages whose
# photographs and audio its sources are made of (small mode's set).
set -euo pipefail
py=$(${PYTHON:-python3} -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
missing=()
ldconfig -p | grep -q "libpython${py}.so.1.0" || missing+=("libpython${py}")
ldconfig -p | grep -q "libb64.so.0d" || missing+=("libb64-0d")
${PYTHON:-python3} -c 'import ensurepip' 2>/dev/null || missing+=("python${py}-venv")
command -v ffmpeg >/dev/null || missing+=("ffmpeg")
for pkg in gcompris-qt-data mate-backgrounds asterisk-moh-opsound-wav asterisk-core-sounds-en-wav; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
elif command -v sudo >/dev/null; then
  sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
else
  echo "missing Debian packages: ${missing[*]}; install them with apt-get" >&2
  exit 1
fi
