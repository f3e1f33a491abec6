"""The command line never waits on, or swallows, a file that is not a regular file (issue 23,
item 7), and refuses bad files before it imports torch (item 11): the real CLI in a
subprocess, with a time limit and a memory cap, as a user runs it."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
TIME_LIMIT = 60  # seconds; the refusal itself comes before any model or connection
MEMORY_CAP = 3 * 2**30  # bytes of address space: /dev/zero read whole would pass it
GENERATE = ["generate", "--model", "tiny", "--reference-prompt", "a train", "--prompt", "a car",
            "--steps", "2", "--width", "64", "--height", "64", "--quiet"]

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs and /dev/zero are POSIX")


def _cap_memory() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def run_cli(*args: str, cwd: Path, pythonpath: list[Path] = (), cap_memory: bool = True) -> subprocess.CompletedProcess:
    """The real CLI (this checkout; ``pythonpath`` first) in a subprocess, with a time limit
    and (unless a model is to load) a memory cap."""
    path = [*map(str, pythonpath), str(ROOT), os.environ.get("PYTHONPATH", "")]
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=os.pathsep.join(path))
    try:
        return subprocess.run([sys.executable, "-m", "stylealigned_desktop.cli", *args], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=TIME_LIMIT,
                              preexec_fn=_cap_memory if cap_memory else None)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the command hung (still running after {TIME_LIMIT} s)")


@pytest.mark.parametrize("token", ["pipe", "/dev/zero"])
def test_a_token_file_that_is_a_fifo_or_a_device_is_refused_at_once(tmp_path, token):
    os.mkfifo(tmp_path / "pipe")  # reading it would wait for a writer forever
    done = run_cli(*GENERATE, "--out", "o", "--server", "http://127.0.0.1:9", "--token-file", token,
                   cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip() == (f"stylealigned: error: --token-file: {token}: cannot read the token: "
                                   "not a regular file (a pipe, a device or a socket)")


POISONED_TORCH = 'raise ImportError("torch was imported before the files were checked")\n'


def _damaged_png(path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "white").save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue()[:-40])  # cut in its pixel data


def _ztxt_bomb(path: Path) -> None:
    """A small PNG whose zTXt chunk inflates to 50 MB (Pillow refuses more than 1 MB)."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "white").save(buffer, format="PNG")
    data = zlib.compress(b"\0" * 50_000_000, 9)
    chunk = b"zTXt" + b"Comment\0\0" + data
    bomb = struct.pack(">I", len(chunk) - 4) + chunk + struct.pack(">I", zlib.crc32(chunk))
    png = buffer.getvalue()
    path.write_bytes(png[:33] + bomb + png[33:])  # after IHDR


def _huge_png(path: Path) -> None:
    """A small PNG whose header says 12000 x 12000 pixels (144 million: past the limit)."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "white").save(buffer, format="PNG")
    png = bytearray(buffer.getvalue())
    png[16:24] = struct.pack(">II", 12000, 12000)  # IHDR's width and height
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))
    path.write_bytes(bytes(png))


MIRA = ["--character", "Mira=a girl in a raincoat"]


@pytest.mark.parametrize("case, arguments, words", [
    ("damaged reference", ["--reference-image", "damaged.png"], "damaged.png"),
    # spec section 13: a character's pictures and names (issue 25)
    ("anchor picture FIFO", [*MIRA, "--character-image", "Mira=pipe.png"], "an anchor picture of [Mira]: pipe.png: not a file"),
    ("anchor picture folder", [*MIRA, "--character-image", "Mira=designs"], "an anchor picture of [Mira]: designs: not a file"),
    ("missing anchor picture", [*MIRA, "--character-image", "Mira=gone.png"], "an anchor picture of [Mira]: gone.png: no such file"),
    ("damaged anchor picture", [*MIRA, "--character-image", "Mira=damaged.png"], "[Mira]: damaged.png: the file is damaged"),
    ("huge anchor picture", [*MIRA, "--character-image", "Mira=huge.png"], "[Mira]: huge.png: the picture is 12000x12000"),
    ("zTXt bomb anchor", [*MIRA, "--character-image", "Mira=bomb.png"], "an anchor picture of [Mira]: bomb.png"),
    ("unknown name in a prompt", [*MIRA, "--prompt", "[Bob] runs"], "panel 2: the prompt names the unknown character [Bob]"),
    ("unknown name in a prompts file", [*MIRA, "--prompts-file", "names.txt"], "panel 3: the prompt names the unknown character [Bob]"),
    ("zTXt bomb", ["--reference-image", "bomb.png"], "bomb.png"),
    ("not a LoRA", ["--lora", "notes.safetensors"], "notes.safetensors is not a LoRA file: it cannot be read as .safetensors"),
    ("not a VAE", ["--vae", "notes.txt"], "expected a .safetensors file or a diffusers folder"),
    ("damaged control", ["--control", "canny", "--control-image", "damaged.png"], "damaged.png"),
    ("prompts-file control", ["--prompts-file", "board.txt"], "pipe.png"),
])
def test_bad_files_are_refused_before_torch_is_imported(tmp_path, case, arguments, words):
    """Issue 23, item 11: a bad file is refused as a bad number is, before torch is imported or
    any model built (here torch cannot even be imported: it would fail the command)."""
    poison = tmp_path / "poison" / "torch"
    poison.mkdir(parents=True)
    (poison / "__init__.py").write_text(POISONED_TORCH)
    _damaged_png(tmp_path / "damaged.png")
    _ztxt_bomb(tmp_path / "bomb.png")
    (tmp_path / "notes.safetensors").write_text("my notes, not a LoRA\n")
    (tmp_path / "notes.txt").write_text("my notes\n")
    os.mkfifo(tmp_path / "pipe.png")
    (tmp_path / "board.txt").write_text("a cat | control=canny:pipe.png\n")
    (tmp_path / "designs").mkdir()
    _huge_png(tmp_path / "huge.png")
    (tmp_path / "names.txt").write_text("[Mira] waves\n[Bob] sleeps | seed=3\n")
    done = run_cli(*GENERATE, *arguments, "--out", "o", cwd=tmp_path, pythonpath=[tmp_path / "poison"])
    assert done.returncode == 2, done.stderr[-2000:]
    # one line, from the command line's checks ("stylealigned generate: error: argument ...": the
    # argument's own check when it is read) or its pre-load file checks
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(("stylealigned: error: ", "stylealigned generate: error: ")), done.stderr
    assert words in done.stderr and "torch" not in done.stderr
    assert not (tmp_path / "o").exists()


def test_a_lora_that_does_not_fit_the_model_is_our_one_line_only(tmp_path):
    """Issue 23, item 12: a LoRA whose layers do not fit the model (its attn1.to_q matrices
    twice as wide) passes the header checks and fails in diffusers' loader; diffusers' log of
    the whole state-dict error and PEFT's warnings are not shown, only our line."""
    import torch

    from tests.loras import tiny_lora_state, write_diffusers_lora

    misfit = {key: torch.randn(value.shape[0], value.shape[1] * 2) if "attn1.to_q.lora_A" in key else value
              for key, value in tiny_lora_state(seed=3).items()}
    write_diffusers_lora(tmp_path / "misfit.safetensors", misfit)
    done = run_cli(*GENERATE, "--lora", "misfit.safetensors", "--out", "o", cwd=tmp_path, cap_memory=False)
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stderr.startswith("stylealigned: error: misfit.safetensors: could not load this LoRA into the "
                                  "model"), done.stderr[-3000:]
    assert done.stderr.count("\n") == 1, done.stderr[-3000:]
