"""``stylealigned serve`` as a user runs it: a process on a free port (``--port 0``) that
answers /v1/health with its token and stops cleanly on Ctrl+C; without Ray it says how to get it.
(Ray starts in the server process here, after test_server_ray.py's own Ray has stopped.)"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading

import httpx2 as httpx
import pytest

from stylealigned_desktop.cli import main

START_GIVE_UP_S = 600


def _lines(stream, into: queue.Queue) -> None:
    for line in stream:
        into.put(line)
    into.put(None)


@pytest.mark.server
def test_serve_on_a_free_port_answers_health_and_stops_cleanly(tmp_path):
    env = dict(os.environ, STYLEALIGNED_CONFIG_DIR=str(tmp_path / "config"),
               STYLEALIGNED_CACHE_DIR=str(tmp_path / "cache"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    token_file = tmp_path / "token"
    process = subprocess.Popen(
        [sys.executable, "-m", "stylealigned_desktop.cli", "serve", "--model", "tiny", "--port", "0",
         "--replicas", "1", "--token-file", str(token_file)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        # as a shell starts a background job (`stylealigned serve &` in a script, CI runners):
        # SIGINT ignored, which the server inherits; Ctrl+C / `kill -INT` must still stop it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_lines, args=(process.stdout, lines), daemon=True).start()
    output = []
    try:
        while (line := lines.get(timeout=START_GIVE_UP_S)) is not None:
            output.append(line)
            if line.startswith("StyleAligned server at "):
                break
        started = re.match(r"StyleAligned server at (http://127\.0\.0\.1:(\d+)) ", output[-1] if output else "")
        assert started, "".join(output[-30:])
        url, port = started.group(1), int(started.group(2))
        assert port != 0
        token = token_file.read_text().strip()
        assert (token_file.stat().st_mode & 0o777) == 0o600
        assert lines.get(timeout=60).strip() == f"token (shown once; kept in {token_file}):"
        assert lines.get(timeout=60).strip() == token  # printed once, on the first start
        health = httpx.get(f"{url}/v1/health", headers={"Authorization": f"Bearer {token}"}, timeout=60)
        assert health.status_code == 200 and health.json()["replicas"] == 1, health.text
        assert httpx.get(f"{url}/v1/health", timeout=60).status_code == 401

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=300) == 0
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/v1/health", timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_serve_without_the_server_extra_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as without the extra
    assert main(["serve", "--model", "tiny", "--port", "0"]) == 2
    assert capsys.readouterr().err.strip() == (
        "stylealigned: error: the server needs Ray Serve: pip install 'stylealigned-desktop[server]'")
