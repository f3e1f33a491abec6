#!/usr/bin/env bash
# Build the frozen folder, then use it as a person would: version, a tiny generation (files
# checked), a canny map, the window started headless, the desktop files validated, install.sh
# into a scratch prefix. Not in CI: the build takes many minutes and gigabytes.
#
#   packaging/smoke.sh                 build (packaging/build.sh), then check
#   SKIP_BUILD=1 packaging/smoke.sh    check an existing dist/StyleAlignedDesktop
set -euo pipefail
cd "$(dirname "$0")/.."
dist=dist/StyleAlignedDesktop
started=$SECONDS
step() { printf '\n== %s\n' "$*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
timed() {  # timed LABEL COMMAND...: run, print its wall time
  local label=$1 t0=$SECONDS; shift
  "$@"
  echo "[$label: $((SECONDS - t0)) s]"
}

if [ -z "${SKIP_BUILD:-}" ]; then
  step "build"
  timed build packaging/build.sh
fi
[ -x "$dist/stylealigned" ] && [ -x "$dist/stylealigned-desktop" ] || fail "no executables in $dist"
echo "size: $(du -sh "$dist" | cut -f1) ($(du -sh "$dist"/_internal/nvidia 2>/dev/null | cut -f1 || echo 0) of it NVIDIA CUDA libraries)"
for plugin in xcb offscreen; do
  ls "$dist"/_internal/PySide6/Qt/plugins/platforms/libq"$plugin".so >/dev/null || fail "no Qt $plugin plugin"
done

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 QT_QPA_PLATFORM=offscreen
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export HOME="$scratch/home" XDG_CONFIG_HOME="$scratch/config" XDG_DATA_HOME="$scratch/data"
mkdir -p "$HOME"

step "stylealigned --version"
version=$(grep -m1 '^__version__' stylealigned_desktop/__init__.py | cut -d'"' -f2)
timed version "$dist/stylealigned" --version | tee "$scratch/version.txt"
grep -q "$version" "$scratch/version.txt" || fail "--version does not say $version"

step "stylealigned generate (tiny model, 2 steps, 64x64)"
set_dir="$scratch/set"
timed generate "$dist/stylealigned" generate --model tiny --steps 2 --width 64 --height 64 \
  --reference-prompt "a toy train" --prompt "a toy car" --prompt "a toy boat" \
  --style "macro photo" --seed 1 --out "$set_dir"
for name in reference.png panel-01.png panel-02.png; do
  file "$set_dir/$name" | grep -q "PNG image data, 64 x 64" || fail "$name is not a 64x64 PNG"
done
file "$set_dir/contact-sheet.png" | grep -q "PNG image data" || fail "no contact sheet"
grep -q '"a toy boat"' "$set_dir/run.json" || fail "run.json does not record the prompts"
ls -l "$set_dir"

step "stylealigned preprocess (canny: OpenCV and controlnet-aux in the build)"
timed canny "$dist/stylealigned" preprocess "$set_dir/panel-01.png" --mode canny --out "$scratch/edges.png"
file "$scratch/edges.png" | grep -q "PNG image data, 64 x 64" || fail "no 64x64 canny map"

step "stylealigned-desktop --quit-after-show (offscreen)"
timed window "$dist/stylealigned-desktop" --quit-after-show | tee "$scratch/window.txt"
grep -q "window shown after" "$scratch/window.txt" || fail "the window did not show"

step "desktop integration"
for tool in desktop-file-validate appstreamcli; do
  command -v "$tool" >/dev/null || echo "($tool not installed: apt-get install desktop-file-utils appstream)"
done
if command -v desktop-file-validate >/dev/null; then
  desktop-file-validate "$dist/share/applications/io.github.stylealigned.Desktop.desktop"
fi
if command -v appstreamcli >/dev/null; then
  appstreamcli validate --no-net "$dist/share/metainfo/io.github.stylealigned.Desktop.metainfo.xml"
fi
PREFIX="$scratch/prefix" "$dist/install.sh"
"$scratch/prefix/bin/stylealigned" --version >/dev/null || fail "installed stylealigned does not run"
grep -q "^Exec=$PWD/$dist/stylealigned-desktop %f" \
  "$scratch/prefix/share/applications/io.github.stylealigned.Desktop.desktop" || fail "desktop entry Exec"
ls "$scratch/prefix/share/icons/hicolor/48x48/apps/io.github.stylealigned.Desktop.png" >/dev/null
PREFIX="$scratch/prefix" "$dist/install.sh" --uninstall
[ ! -e "$scratch/prefix/bin/stylealigned" ] || fail "uninstall left the program"

printf '\nsmoke: all passed in %d s\n' "$((SECONDS - started))"
