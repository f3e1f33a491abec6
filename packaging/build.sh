#!/usr/bin/env bash
# Build dist/StyleAlignedDesktop with PyInstaller: one folder holding the window
# (stylealigned-desktop) and the command line (stylealigned); on Linux also share/ with the
# desktop entry, AppStream metainfo, the session MIME type and the icons, and install.sh.
#
#   packaging/build.sh                         sets up .venv (make setup), adds PyInstaller, builds
#   PYTHON=/path/to/python packaging/build.sh  builds with an environment that already has the
#                                              app's dependencies (the source tree is built, not
#                                              the installed copy)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
if [ -z "${PYTHON:-}" ]; then
  make setup
  PYTHON=.venv/bin/python
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
