#!/usr/bin/env bash
# Build the frozen folder from the lock, then use it as a person would, each step a different
# part of the libraries: a tiny set with a reference picture, a canny ControlNet and a LoRA;
# a DDIM inversion; canny and depth maps (the tiny depth estimator); evaluate with the tiny metric
# models; the storyboard exports (PDF, animatic, timeline); the window started offscreen,
# opening a session and making one tiny set; the desktop files; install.sh into a scratch prefix.
# Every app step also runs unfrozen (the same entry script from source, in the build's
# environment) and the smoke then checks that every module the unfrozen runs imported is
# importable in the frozen folder (packaging/rthook_modules.py).
# Run it after every dependency, lock or spec change (packaging/README.md). Not in CI: minutes
# and gigabytes.
#
#   packaging/smoke.sh                 build (packaging/build.sh), then check
#   SKIP_BUILD=1 packaging/smoke.sh    check an existing dist/StyleAlignedDesktop
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dist=$root/dist/StyleAlignedDesktop
started=$SECONDS
timings=()
step() { printf '\n== %s\n' "$*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
timed() {  # timed LABEL COMMAND...: run, print and remember its wall time; its exit status
  local label=$1 t0=$SECONDS code=0; shift
  "$@" || code=$?
  timings+=("$label: $((SECONDS - t0)) s")
  echo "[$label: $((SECONDS - t0)) s]"
  return "$code"
}

if [ -z "${SKIP_BUILD:-}" ]; then
  step "build"
  timed build packaging/build.sh
fi
# The build's environment (build.sh's default) makes the inputs and runs the app unfrozen.
PYTHON=${PYTHON:-$root/build/frozen-venv/bin/python}
[ -x "$dist/stylealigned" ] && [ -x "$dist/stylealigned-desktop" ] || fail "no executables in $dist"
cuda=$(find "$dist" -type f \( -name 'libcu*' -o -name 'libnccl*' -o -name 'libnv*' -o -name 'libcudnn*' \
  -o -name 'libtorch_cuda*' -o -name 'libcaffe2_nvrtc*' \) -printf '%s\n' | awk '{s += $1} END {printf "%.1f GiB", s / 2^30}')
size="$(du -sh "$dist" | cut -f1) in $(find "$dist" -type f | wc -l) files, of which CUDA libraries: $cuda"
echo "size: $size"
for plugin in xcb offscreen; do
  ls "$dist"/_internal/PySide6/Qt/plugins/platforms/libq"$plugin".so >/dev/null || fail "no Qt $plugin plugin"
done

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 QT_QPA_PLATFORM=offscreen
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"  # the inputs and the unfrozen runs use the tree
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export HOME="$scratch/home" XDG_CONFIG_HOME="$scratch/config" XDG_DATA_HOME="$scratch/data" \
  XDG_CACHE_HOME="$scratch/cache"
mkdir -p "$HOME" "$scratch/frozen" "$scratch/unfrozen"
in=$scratch/in
frozen_modules=$scratch/modules-frozen.txt
unfrozen_modules=$scratch/modules-unfrozen.txt

# both LABEL ENTRY ARGS...: run the frozen program (ENTRY: stylealigned or stylealigned-desktop),
# then the same entry script unfrozen, each recording its modules; @OUT@ in ARGS is replaced by
# $scratch/frozen or $scratch/unfrozen. The frozen run's output stays in $scratch/LABEL.txt.
both() {
  local label=$1 program=$2 script; shift 2
  case $program in
    stylealigned) script=stylealigned_cli.py ;;
    stylealigned-desktop) script=stylealigned_desktop_window.py ;;
  esac
  local frozen_args=("${@//@OUT@/$scratch/frozen}") unfrozen_args=("${@//@OUT@/$scratch/unfrozen}")
  STYLEALIGNED_RECORD_MODULES=$frozen_modules timed "$label" \
    "$dist/$program" "${frozen_args[@]}" >"$scratch/$label.txt" 2>&1 \
    || { cat "$scratch/$label.txt"; fail "frozen $program ${frozen_args[*]}"; }
  cat "$scratch/$label.txt"
  STYLEALIGNED_RECORD_MODULES=$unfrozen_modules timed "$label (unfrozen)" \
    "$PYTHON" packaging/unfrozen.py "$script" "${unfrozen_args[@]}" >"$scratch/$label-unfrozen.txt" 2>&1 \
    || { cat "$scratch/$label-unfrozen.txt"; fail "unfrozen $program ${unfrozen_args[*]}"; }
}
png_size() { "$PYTHON" -c "import sys; from PIL import Image; print('%dx%d' % Image.open(sys.argv[1]).size)" "$1"; }

step "stylealigned --version"
version=$(grep -m1 '^__version__' stylealigned_desktop/__init__.py | cut -d'"' -f2)
timed version "$dist/stylealigned" --version >"$scratch/version.txt"
cat "$scratch/version.txt"
grep -q "$version" "$scratch/version.txt" || fail "--version does not say $version"

step "inputs: a reference picture, a tiny LoRA, the tiny metric models, a session (source tree)"
timed inputs "$PYTHON" packaging/smoke_inputs.py "$in" >"$scratch/inputs.txt" 2>&1 \
  || { cat "$scratch/inputs.txt"; fail "making the inputs"; }

step "stylealigned generate: tiny model, reference picture, canny ControlNet, LoRA (2 steps, 64x64)"
both generate stylealigned generate --model tiny --steps 2 --width 64 --height 64 --quiet \
  --reference-image "$in/reference.png" --reference-caption "shapes" \
  --control canny --control-image "$in/reference.png" --lora "$in/lora.safetensors:0.8" \
  --prompt "a toy car" --prompt "a toy boat" --style "macro photo" --seed 1 --out @OUT@/set
set_dir=$scratch/frozen/set
for name in panel-01.png panel-02.png; do
  [ "$(png_size "$set_dir/$name")" = 64x64 ] || fail "$name is not a 64x64 picture"
done
grep -q '"a toy boat' "$set_dir/run.json" || fail "run.json does not record the prompts"
grep -q 'lora.safetensors' "$set_dir/run.json" || fail "run.json does not record the LoRA"
grep -q 'reference.png' "$set_dir/run.json" || fail "run.json does not record the reference picture"
grep -q "\"stylealigned-desktop\": \"$version\"" "$set_dir/run.json" || fail "run.json does not record the app's version"
ls "$set_dir"

step "stylealigned invert (tiny model, 2 steps)"
both invert stylealigned invert "$in/reference.png" --model tiny --steps 2 --width 64 --height 64 \
  --out @OUT@/trajectory.safetensors
"$PYTHON" -c "import sys; from safetensors import safe_open; safe_open(sys.argv[1], 'pt').keys()" \
  "$scratch/frozen/trajectory.safetensors" || fail "no readable trajectory"

step "stylealigned preprocess: canny (OpenCV, controlnet-aux) and depth (the tiny estimator)"
both canny stylealigned preprocess "$in/reference.png" --mode canny --width 64 --height 64 \
  --out @OUT@/edges.png
[ "$(png_size "$scratch/frozen/edges.png")" = 64x64 ] || fail "no 64x64 canny map"
both depth stylealigned preprocess "$in/reference.png" --mode depth --depth-model tiny \
  --width 64 --height 64 --out @OUT@/depth.png
[ "$(png_size "$scratch/frozen/depth.png")" = 64x64 ] || fail "no 64x64 depth map"

step "stylealigned evaluate (the tiny DINO, CLIP and Inception models)"
both evaluate stylealigned evaluate "$set_dir" --dino "$in/dino" --clip "$in/clip-model" \
  --inception "$in/inception.safetensors" --device cpu --out @OUT@/scores
grep -q "consistency" "$scratch/frozen/scores/metrics.json" || fail "metrics.json has no scores"

step "stylealigned export: storyboard PDF (fpdf2), animatic (PyAV), timeline (OpenTimelineIO), shot list, Storyboarder"
both export stylealigned export "$set_dir" --pdf @OUT@/board.pdf --animatic @OUT@/animatic.mp4 \
  --size 128x72 --otio @OUT@/cuts.otio --shot-list @OUT@/shots.csv --storyboarder @OUT@/storyboarder \
  --quiet
"$PYTHON" - "$scratch/frozen" <<'CHECK' || fail "the exports are not what was asked for"
import sys
from pathlib import Path

import av
import opentimelineio as otio

out = Path(sys.argv[1])
assert (out / "board.pdf").read_bytes().startswith(b"%PDF"), "board.pdf is no PDF"
with av.open(str(out / "animatic.mp4")) as video:
    frame = next(video.decode(video=0))
    assert (frame.width, frame.height) == (128, 72), (frame.width, frame.height)
clips = list(otio.adapters.read_from_file(str(out / "cuts.otio")).find_clips())
assert len(clips) == 2, clips
assert len((out / "shots.csv").read_text(encoding="utf-8-sig").splitlines()) == 3
assert list((out / "storyboarder").glob("*.storyboarder"))
print("exports: PDF, 128x72 animatic, 2 timeline clips, shot list, Storyboarder project")
CHECK

step "stylealigned serve: the server (Ray) is not in the frozen build; it says how to get it"
code=0
"$dist/stylealigned" serve --model tiny >"$scratch/serve.txt" 2>&1 || code=$?
cat "$scratch/serve.txt"
[ "$code" = 2 ] && grep -q "stylealigned-desktop\[server\]" "$scratch/serve.txt" \
  || fail "serve did not point to the server extra (exit $code)"

step "stylealigned-desktop --quit-after-show (offscreen)"
both window stylealigned-desktop --quit-after-show
grep -q "window shown after" "$scratch/window.txt" || fail "the window did not show"

step "stylealigned-desktop SESSION --generate-and-quit: the window opens a session, makes one tiny set"
cp -r "$in/Harbour.stylealigned" "$scratch/frozen/" && cp -r "$in/Harbour.stylealigned" "$scratch/unfrozen/"
both window-set stylealigned-desktop --model tiny --generate-and-quit @OUT@/Harbour.stylealigned
grep -q "set made: .*Harbour.stylealigned" "$scratch/window-set.txt" || fail "the window made no set"
ls "$scratch"/frozen/Harbour.stylealigned/outputs/*/panel-02.png >/dev/null || fail "the set has no panel 2"

step "every module the unfrozen runs imported is importable in the frozen folder"
# Modules the frozen runs did not import (most are): import each in the frozen program. One that
# does not import unfrozen either (in a fresh interpreter) is made at run time by another module
# (shiboken's signature support, ...): not something a build can leave out.
# Modules under bundle.EXCLUDES (triton, test helpers...) are left out on purpose.
"$PYTHON" -c "import sys; sys.path.insert(0, 'packaging'); import bundle; print(*bundle.EXCLUDES, sep='\n')" \
  >"$scratch/excluded.txt"
awk 'NR == FNR {seen[$0] = 1; next} !seen[$0]++' "$frozen_modules" "$unfrozen_modules" \
  | grep -v -E "^($(paste -sd'|' "$scratch/excluded.txt" | sed 's/\./\\./g'))(\.|$)" \
  >"$scratch/modules-to-check.txt" || true
echo "unfrozen runs imported $(sort -u "$unfrozen_modules" | wc -l) modules, the frozen runs" \
  "$(sort -u "$frozen_modules" | wc -l); importing the $(wc -l <"$scratch/modules-to-check.txt") others"
sed 's/^/  /' "$scratch/modules-to-check.txt"
not_importable() {  # the module names of the hook's "not importable: NAME: ..." lines
  sed -n 's/^not importable: \([^:]*\): .*/\1/p' "$1" | sort
}
code=0
STYLEALIGNED_IMPORT_MODULES=$scratch/modules-to-check.txt timed modules "$dist/stylealigned" --version \
  >"$scratch/modules.txt" 2>&1 || code=$?
grep "modules imported" "$scratch/modules.txt" || fail "the module check did not run: $(tail -3 "$scratch/modules.txt")"
if [ "$code" != 0 ]; then
  not_importable "$scratch/modules.txt" >"$scratch/modules-failed.txt"
  STYLEALIGNED_IMPORT_MODULES=$scratch/modules-failed.txt "$PYTHON" -c \
    "import runpy; runpy.run_path('packaging/rthook_modules.py')" >"$scratch/modules-unfrozen.txt" 2>&1 || true
  echo "not importable unfrozen either (made at run time): $(not_importable "$scratch/modules-unfrozen.txt" | tr '\n' ' ')"
  missing=$(comm -23 "$scratch/modules-failed.txt" <(not_importable "$scratch/modules-unfrozen.txt"))
  if [ -n "$missing" ]; then
    grep -F -f <(sed 's/.*/not importable: &:/' <<<"$missing") "$scratch/modules.txt" || true
    fail "modules the unfrozen app imports are missing from the frozen folder (above)"
  fi
fi

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
grep -q "^Exec=$dist/stylealigned-desktop %f" \
  "$scratch/prefix/share/applications/io.github.stylealigned.Desktop.desktop" || fail "desktop entry Exec"
ls "$scratch/prefix/share/icons/hicolor/48x48/apps/io.github.stylealigned.Desktop.png" >/dev/null
XDG_DATA_HOME="$scratch/prefix/share" PREFIX="$scratch/prefix" "$dist/install.sh" --uninstall
[ ! -e "$scratch/prefix/bin/stylealigned" ] || fail "uninstall left the program"

printf '\nsmoke: all passed in %d s\nsize: %s\n' "$((SECONDS - started))" "$size"
printf '  %s\n' "${timings[@]}"
