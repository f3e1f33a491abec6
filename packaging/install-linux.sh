#!/usr/bin/env bash
# Install this StyleAligned Desktop folder for the current user (or PREFIX=/usr/local, as root)
# where it is: the two programs are linked into $PREFIX/bin, and the desktop entry, icons,
# metainfo and session MIME type copied into $PREFIX/share. Keep the folder where it is (move it,
# then run this again); `./install.sh --uninstall` removes the links and the desktop files.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
prefix="${PREFIX:-$HOME/.local}"
app_id=io.github.stylealigned.Desktop
target="$here"
shared=(
  "share/applications/$app_id.desktop"
  "share/metainfo/$app_id.metainfo.xml"
  "share/mime/packages/$app_id.xml"
)
while IFS= read -r icon; do shared+=("$icon"); done < <(cd "$here" && find share/icons -type f)

refresh() {
  command -v update-mime-database >/dev/null && update-mime-database "$prefix/share/mime" || true
  command -v update-desktop-database >/dev/null && update-desktop-database "$prefix/share/applications" || true
  command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -qtf "$prefix/share/icons/hicolor" || true
}

if [ "${1:-}" = "--uninstall" ]; then
  rm -f "$prefix/bin/stylealigned-desktop" "$prefix/bin/stylealigned"
  for file in "${shared[@]}"; do rm -f "$prefix/$file"; done
  refresh
  echo "removed StyleAligned Desktop's links and desktop files from $prefix (this folder stays)"
  exit 0
fi

mkdir -p "$prefix/bin"
ln -sf "$target/stylealigned-desktop" "$prefix/bin/stylealigned-desktop"
ln -sf "$target/stylealigned" "$prefix/bin/stylealigned"
for file in "${shared[@]}"; do install -Dm644 "$here/$file" "$prefix/$file"; done
# The menu starts the program by its full path: ~/.local/bin is not on every desktop's PATH.
sed -i "s|^Exec=stylealigned-desktop|Exec=$target/stylealigned-desktop|; s|^TryExec=stylealigned-desktop|TryExec=$target/stylealigned-desktop|" \
  "$prefix/share/applications/$app_id.desktop"
refresh
echo "installed StyleAligned Desktop from $target: programs linked into $prefix/bin, menu entry in $prefix/share"
