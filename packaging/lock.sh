#!/usr/bin/env bash
# Refresh packaging/requirements-lock-linux.txt: every package of the frozen build (the app's
# dependencies from pyproject.toml, its ranges, plus PyInstaller) at one exact version, with the
# hashes of its files. packaging/build.sh installs only from this lock. After refreshing, run
# `make smoke` before committing the new lock (packaging/README.md).
#
#   packaging/lock.sh                 resolve the newest versions the ranges allow
#   packaging/lock.sh --upgrade-package torch   (any extra arguments go to `uv pip compile`)
#
# A pip constraint file named in this machine's pip configuration (pip config get
# global.constraint) is honoured, so the lock can be installed where it was made.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=build/lock-tools
if [ ! -x "$tools/bin/uv" ]; then
  python3 -m venv "$tools"
  "$tools/bin/python" -m pip install -qq "uv>=0.5"
fi
constraint=$(python3 -m pip config list 2>/dev/null | sed -n "s/^global.constraint='\(.*\)'$/\1/p")
# The frozen build is Python 3.11 on x86-64 Linux with glibc 2.34 or newer (PySide6 6.10+ wheels).
"$tools/bin/uv" pip compile pyproject.toml packaging/requirements-build.in \
  --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_34 \
  --custom-compile-command packaging/lock.sh \
  ${constraint:+--constraint "$constraint"} \
  --output-file packaging/requirements-lock-linux.txt "$@"
