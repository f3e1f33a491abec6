"""A shard that fails ends its set: the server end to end on CPU (Ray started once for this
module, two CPU replicas of the tiny model), with replicas whose stream raises on the panels a
request marks, the way an engine or a replica fails on one shard (a damaged picture, a full disk,
a bug): the exception reaches the ingress wrapped in a ``RayTaskError``.

Marks in a panel's prompt (the fake replica reads them; the engine just sees words):
``[fail at EVENT]`` raises instead of sending the shard's first EVENT (``PanelDone``: its first
panel's picture); ``after KEY`` first waits until the shard marked ``[hold KEY]`` is held (its
engine stopped after step 1 until it is cancelled, a minute at most) or ``[done KEY]`` has
streamed all it had. Every set runs under a deadline, so a set that never ends fails the test
instead of hanging it.
"""

import asyncio
import contextlib
import re
import threading
import time

import pytest
import ray
from ray import serve

from stylealigned_desktop.engine import events as ev
from stylealigned_desktop.engine.request import GeneratedReference, Panel, Sampling, SetRequest
from stylealigned_desktop.server import replica as replica_module
from stylealigned_desktop.server.client import ServerError
from stylealigned_desktop.server.launch import ServerOptions, start
from stylealigned_desktop.ui.dialogs.where_dialog import SERVER, save_token
from stylealigned_desktop.ui.support import DesktopConfig
from stylealigned_desktop.ui.threads import JobState
from tests.server.test_server_ray import _engines, client  # noqa: F401 (the client fixture, on this server)
from tests.ui.conftest import Answers
from tests.ui.uifakes import run_and_wait, storyboard

pytestmark = pytest.mark.server

DEADLINE_S = 180.0
"""A guard against a hang, not a speed goal: sets here take seconds."""
HOLD_S = 60.0
FAIL = re.compile(r"\[fail at (\w+)(?: after (\w+))?\]")
HOLD = re.compile(r"\[hold (\w+)\]")
DONE = re.compile(r"\[done (\w+)\]")
DAMAGED = "panel {} could not be encoded: its picture is damaged"


@ray.remote(num_cpus=0)
class Marks:
    """Which shards are held or done, by key, across the replicas' processes."""

    def __init__(self):
        self.keys = set()

    def mark(self, key):
        self.keys.add(key)

    def has(self, key):
        return key in self.keys


MARKS = {"name": "failure-marks", "namespace": "failure-marks"}  # replicas run in Serve's namespace


def _marks():
    return ray.get_actor(**MARKS)


class FailingEngineReplica(replica_module.EngineReplica.func_or_class):
    """``EngineReplica`` with the marks of the module docstring."""

    async def run(self, wire, pictures, only, trajectory=None, loras=None):
        prompts = " ".join(wire["panels"][i]["prompt"] for i in only)
        fail, hold, done = FAIL.search(prompts), HOLD.search(prompts), DONE.search(prompts)
        self._hold = hold[1] if hold else None
        if hold:
            self._stats["held"] = hold[1]  # /v1/health tells which replica held
        async with contextlib.aclosing(super().run(wire, pictures, only, trajectory, loras)) as items:
            async for item in items:
                if fail and item["event"] == fail[1] and item.get("index", 0) is not None:
                    if fail[2]:
                        deadline = time.monotonic() + HOLD_S
                        while not await _marks().has.remote(fail[2]) and time.monotonic() < deadline:
                            await asyncio.sleep(0.05)
                    raise ValueError(DAMAGED.format(only[0] + 1))
                yield item
        if done:
            await _marks().mark.remote(done[1])

    def _stream(self, work):
        key = getattr(self, "_hold", None)
        if key is None:
            return super()._stream(work)

        def held(sink, cancel):
            def holding_sink(event, value=None):
                sink(event, value)
                if isinstance(event, ev.Step) and event.step == 1:
                    ray.get(_marks().mark.remote(key))
                    cancel.wait(HOLD_S)  # the engine thread stops here until the set is cancelled

            work(holding_sink, cancel)

        return super()._stream(held)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("server")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024**2, log_to_driver=False)
    patch = pytest.MonkeyPatch()
    try:
        marks = Marks.options(**MARKS).remote()  # noqa: F841 (it lives as long as this handle)
        # build_app takes the replica class from its module when it builds the application
        patch.setattr(replica_module, "EngineReplica",
                      serve.deployment(FailingEngineReplica, name="EngineReplica", max_ongoing_requests=1,
                                       health_check_period_s=5))
        yield start(ServerOptions(models=("tiny",), replicas=2, port=0, token_file=str(folder / "token"),
                                  upload_dir=str(folder / "uploads"), replica_wait_s=120))
    finally:
        patch.undo()
        serve.shutdown()
        ray.shutdown()


def _request(*prompts, steps=3):
    return SetRequest(model="tiny", style=GeneratedReference("a lighthouse, ink wash", 3),
                      panels=tuple(Panel(p, 20 + i) for i, p in enumerate(prompts)), micro_batch=1,
                      sampling=Sampling(steps=steps, guidance=4.0, width=128, height=64, scheduler="euler"))


def _within_deadline(function, cancel=None):
    """``function()``'s result or exception; fails the test if it has not ended by the deadline."""
    outcome = {}

    def target():
        try:
            outcome["result"] = function()
        except Exception as error:  # handed to the test
            outcome["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(DEADLINE_S)
    if thread.is_alive():
        if cancel is not None:
            cancel.set()
        pytest.fail(f"the set did not end within {DEADLINE_S:.0f} s (it hangs)")
    return outcome


def _generate(engine, request):
    events, cancel = [], threading.Event()
    outcome = _within_deadline(lambda: engine.generate(request, events.append, cancel), cancel)
    return outcome, events


def _assert_failed_once(outcome, events, message):
    error = outcome.get("error")
    assert isinstance(error, ServerError), outcome
    assert str(error) == message  # the engine's own line, no Ray traceback
    ends = [e for e in events if isinstance(e, (ev.Finished, ev.Failed, ev.Cancelled))]
    assert ends == [ev.Failed(message)]


def test_a_shard_that_fails_ends_the_set_cancels_the_others_and_the_next_set_is_made(client):  # noqa: F811
    before = _engines(client)
    request = _request("a fox [fail at Preview after first]", "a crow [hold first]", steps=4)
    outcome, events = _generate(client, request)
    _assert_failed_once(outcome, events, DAMAGED.format(1))
    after = _engines(client)
    assert {e["pid"] for e in after} == {e["pid"] for e in before}  # the same replicas, healthy
    # The held shard was stopped by the failure, not left to finish a set that cannot complete
    [held] = [e for e in after if e.get("held") == "first"]
    assert held["cancelled"] == {e["pid"]: e["cancelled"] for e in before}[held["pid"]] + 1
    assert held["last_steps"] < 4

    before_sets = sum(e["sets"] for e in after)
    outcome, events = _generate(client, _request("a fox", "a crow"))
    assert "error" not in outcome, outcome
    assert sorted(outcome["result"].panels) == [0, 1]
    assert sum(e["sets"] for e in _engines(client)) == before_sets + 2  # both replicas took a shard


def test_a_shard_failing_after_the_others_streamed_pictures_is_no_finished_set(client):  # noqa: F811
    request = _request("a fox [done second]", "a crow [fail at PanelDone after second]")
    outcome, events = _generate(client, request)
    _assert_failed_once(outcome, events, DAMAGED.format(2))
    pictures = [e.index for e in events if isinstance(e, ev.PanelDone)]
    assert pictures and 1 not in pictures  # pictures came, the failed panel's did not
    assert isinstance(events[-1], ev.Failed)


def test_generate_with_server_and_a_failing_shard_is_one_line_and_exit_2(server, tmp_path, capsys):
    from stylealigned_desktop.cli import main

    token = tmp_path / "token"
    token.write_text(server.token + "\n")
    out = tmp_path / "out"
    outcome = _within_deadline(lambda: main([
        "generate", "--model", "tiny", "--reference-prompt", "a lighthouse", "--prompt", "a fox",
        "--prompt", "a crow [fail at Step]", "--micro-batch", "1", "--steps", "2", "--width", "128",
        "--height", "64", "--out", str(out), "--server", server.url, "--token-file", str(token), "--quiet"]))
    error = capsys.readouterr().err.strip()
    assert outcome == {"result": 2}
    assert error == f"stylealigned: error: server {server.url}: {DAMAGED.format(2)}"
    assert not list(out.glob("*.png")) and not (out / "run.json").exists()


def test_a_shard_failure_is_one_line_of_its_cause_never_the_ray_traceback():
    from ray.exceptions import RayTaskError

    from stylealigned_desktop.server.ingress import shard_failure

    traceback = "Traceback (most recent call last):\n  File \"replica.py\", line 1\nValueError: x"
    assert shard_failure(RayTaskError("run", traceback, ValueError("the picture is damaged\nat byte 4"))) \
        == "the picture is damaged"
    assert shard_failure(RayTaskError("run", traceback, KeyError("sha"))) == "KeyError: 'sha'"
    assert shard_failure(TimeoutError()) == "TimeoutError"


def test_the_window_shows_a_failing_shard_as_a_failed_run_and_makes_the_next_set(qtbot, server):
    from stylealigned_desktop.ui.window import MainWindow

    save_token(server.token)
    window = MainWindow(DesktopConfig(model="tiny", picture_maker=SERVER, server_url=server.url))
    window.ask = Answers()
    qtbot.addWidget(window)
    window.show()
    try:
        session = storyboard(window, prompts=("a fox", "a crow [fail at Step]"), steps=2, width=128,
                             height=64, micro_batch=1)
        job = run_and_wait(qtbot, window, window.runs.generate, timeout=int(DEADLINE_S * 1000))
        assert job.state is JobState.failed and job.error == DAMAGED.format(2)
        message = window.banner_text.text()
        assert not window.banner.isHidden() and DAMAGED.format(2) in message and "Traceback" not in message
        assert session.history == () and all(not tile.final for tile in window.grid.tiles.values())

        session.update_panel(1, prompt="a crow")  # the mark out of the prompt: the next set
        job = run_and_wait(qtbot, window, window.runs.generate, timeout=int(DEADLINE_S * 1000))
        assert job.state is JobState.finished and len(session.history) == 1
    finally:
        window.close()
        window.worker.shutdown(5)
