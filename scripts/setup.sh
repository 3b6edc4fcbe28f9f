#!/usr/bin/env bash
# Sets up everything msaug needs on a fresh Debian/Ubuntu machine, idempotently:
# system tools (ffmpeg for stempeg, rubberband-cli for pyrubberband, python3-venv), a virtual
# environment in .venv, and the package with its dev extras. Safe to run again: it only does
# what is missing. Sourced by demo.sh and test.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python3}
missing=()
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
command -v rubberband >/dev/null 2>&1 || missing+=(rubberband-cli)
"$PYTHON" -c "import ensurepip, venv" >/dev/null 2>&1 || missing+=(python3-venv)
if ((${#missing[@]})); then
  echo "setup: installing system packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi
if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
  echo "setup: installing msaug and its dependencies into .venv (first run takes a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev]"
  touch .venv/.installed
fi
