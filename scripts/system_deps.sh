#!/usr/bin/env bash
# Debian packages: the shared libpython the Triton Python backend stub links against, venv
# support, libb64 for perf_analyzer, libchromaprint1 (the audio fingerprints,
# rci/preprocess/audio_prints.py), gnome-backgrounds (the wallpapers the score-normalization
# background is made of, rci/library/background.py); for the benchmark, ffmpeg, fpcalc (its Chromaprint
# peer) and the packages whose photographs and audio its sources are made of: small mode's
# set, and with --full the music and clips the full benchmark adds.
set -euo pipefail
media=(gnome-backgrounds gcompris-qt-data mate-backgrounds asterisk-moh-opsound-wav
       asterisk-core-sounds-en-wav asterisk-core-sounds-fr-wav)
[ "${1:-}" = "--full" ] && media+=(wesnoth-1.16-music drascula-music opencv-doc)
py=$(${PYTHON:-python3} -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
missing=()
# --test: Debian's Chromium, which loads the reviewer report in the tests (tests/test_report.py).
if [ "${1:-}" = "--test" ]; then command -v chromium >/dev/null || missing+=("chromium"); fi
# grep without -q: -q exits early, ldconfig dies of SIGPIPE and pipefail reports a miss.
ldconfig -p | grep "libpython${py}.so.1.0" >/dev/null || missing+=("libpython${py}")
ldconfig -p | grep "libb64.so.0d" >/dev/null || missing+=("libb64-0d")
ldconfig -p | grep "libchromaprint.so.1" >/dev/null || missing+=("libchromaprint1")
${PYTHON:-python3} -c 'import ensurepip' 2>/dev/null || missing+=("python${py}-venv")
command -v ffmpeg >/dev/null || missing+=("ffmpeg")
command -v fpcalc >/dev/null || missing+=("libchromaprint-tools")
for pkg in "${media[@]}"; do
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
