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
cuda=$(find "$dist" -type f \( -name 'libcu*' -o -name 'libnccl*' -o -name 'libnv*' -o -name 'libcudnn*' \
  -o -name 'libtorch_cuda*' -o -name 'libcaffe2_nvrtc*' \) -printf '%s\n' | awk '{s += $1} END {printf "%.1f GiB", s / 2^30}')
echo "size: $(du -sh "$dist" | cut -f1) in $(find "$dist" -type f | wc -l) files, of which CUDA libraries: $cuda"
for plugin in xcb offscreen; do
  ls "$dist"/_internal/PySide6/Qt/plugins/platforms/libq"$plugin".so >/dev/null || fail "no Qt $plugin plugin"
done

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 QT_QPA_PLATFORM=offscreen
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # for the session made below
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
timed canny "$dist/stylealigned" preprocess "$set_dir/panel-01.png" --mode canny \
  --width 64 --height 64 --out "$scratch/edges.png"
file "$scratch/edges.png" | grep -q "PNG image data, 64 x 64" || fail "no 64x64 canny map"

step "stylealigned-desktop --quit-after-show (offscreen)"
timed window "$dist/stylealigned-desktop" --quit-after-show | tee "$scratch/window.txt"
grep -q "window shown after" "$scratch/window.txt" || fail "the window did not show"

step "stylealigned-desktop --quit-after-show SESSION (a session folder on the command line)"
# the session is made with the build's source tree and environment (PYTHON, as build.sh)
"${PYTHON:-.venv/bin/python}" -c "
import sys
from stylealigned_desktop.session import store
from stylealigned_desktop.session.model import Session
session = Session()
for prompt in ('a harbour at dawn', 'a lighthouse in the storm'):
    session.add_panel(prompt)
store.save_session_as(session, sys.argv[1])
session.close()" "$scratch/Harbour.stylealigned"
timed session "$dist/stylealigned-desktop" --quit-after-show "$scratch/Harbour.stylealigned" \
  | tee "$scratch/session.txt"
grep -q "session: Harbour (2 panels)" "$scratch/session.txt" || fail "the session folder did not open"

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
XDG_DATA_HOME="$scratch/prefix/share" PREFIX="$scratch/prefix" "$dist/install.sh"
"$scratch/prefix/bin/stylealigned" --version >/dev/null || fail "installed stylealigned does not run"
grep -q "^Exec=$PWD/$dist/stylealigned-desktop %f" \
  "$scratch/prefix/share/applications/io.github.stylealigned.Desktop.desktop" || fail "desktop entry Exec"
ls "$scratch/prefix/share/icons/hicolor/48x48/apps/io.github.stylealigned.Desktop.png" >/dev/null
XDG_DATA_HOME="$scratch/prefix/share" PREFIX="$scratch/prefix" "$dist/install.sh" --uninstall
[ ! -e "$scratch/prefix/bin/stylealigned" ] || fail "uninstall left the program"

printf '\nsmoke: all passed in %d s\n' "$((SECONDS - started))"
