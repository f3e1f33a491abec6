#!/usr/bin/env bash
# Build dist/StyleAlignedDesktop with PyInstaller: one folder holding the window
# (stylealigned-desktop) and the command line (stylealigned); on Linux also share/ with the
# desktop entry, AppStream metainfo, the session MIME type and the icons, and install.sh.
#
#   packaging/build.sh                         installs packaging/requirements-lock-linux.txt
#                                              (exact versions and hashes, PyInstaller included)
#                                              into build/frozen-venv, then builds
#   PYTHON=/path/to/python packaging/build.sh  builds with an environment you already have
#                                              (macOS, Windows, experiments: not reproducible)
#
# The source tree is built, not an installed copy. BASE_PYTHON (default python3, must be 3.11,
# the lock's Python) makes build/frozen-venv; it is remade only when the lock changes.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
if [ -z "${PYTHON:-}" ]; then
  lock=packaging/requirements-lock-linux.txt
  venv=build/frozen-venv
  want=$(sha256sum "$lock" | cut -d' ' -f1)
  if [ "$(cat "$venv/.lock-sha256" 2>/dev/null)" != "$want" ]; then
    base=${BASE_PYTHON:-python3}
    "$base" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
      || { echo "the lock is for Python 3.11; set BASE_PYTHON to a Python 3.11" >&2; exit 1; }
    echo "installing $lock into $venv (exact versions, hashes checked)"
    rm -rf "$venv"
    "$base" -m venv "$venv"
    # -qq: errors only (a machine's pip config may name index folders that are not there).
    "$venv/bin/python" -m pip install -qq --require-hashes --no-deps -r "$lock"
    echo "$want" >"$venv/.lock-sha256"
  fi
  PYTHON=$venv/bin/python
fi
"$PYTHON" -c "import PyInstaller" 2>/dev/null || "$PYTHON" -m pip install --quiet "pyinstaller>=6.10"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"  # PyInstaller's helper processes see the tree too

"$PYTHON" packaging/make_icons.py build/icons
"$PYTHON" -m PyInstaller --noconfirm --log-level WARN --distpath dist --workpath build/pyinstaller \
  packaging/stylealigned-desktop.spec

out=dist/StyleAlignedDesktop
if [ "$(uname)" = "Linux" ]; then
  app_id=io.github.stylealigned.Desktop
  install -Dm644 "packaging/$app_id.desktop" "$out/share/applications/$app_id.desktop"
  install -Dm644 "packaging/$app_id.metainfo.xml" "$out/share/metainfo/$app_id.metainfo.xml"
  install -Dm644 "packaging/$app_id.mime.xml" "$out/share/mime/packages/$app_id.xml"
  mkdir -p "$out/share/icons"
  cp -r build/icons/hicolor "$out/share/icons/"
  install -m755 packaging/install-linux.sh "$out/install.sh"
fi
echo "built $out ($(du -sh "$out" | cut -f1))"
