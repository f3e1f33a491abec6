#!/usr/bin/env bash
# Build a self-contained folder with PyInstaller, plus the Linux desktop entry and metadata.
set -euo pipefail
cd "$(dirname "$0")/.."
make setup
.venv/bin/python -m pip install --quiet "pyinstaller>=6"
.venv/bin/pyinstaller --noconfirm --distpath dist --workpath build/pyinstaller packaging/stylealigned-desktop.spec
if [ "$(uname)" = "Linux" ]; then
  mkdir -p dist/StyleAlignedDesktop/share/applications dist/StyleAlignedDesktop/share/metainfo
  cp packaging/stylealigned-desktop.desktop dist/StyleAlignedDesktop/share/applications/
  cp packaging/io.github.stylealigned.Desktop.metainfo.xml dist/StyleAlignedDesktop/share/metainfo/
fi
echo "built dist/StyleAlignedDesktop"
