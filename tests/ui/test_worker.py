"""The engine worker: one thread, queued jobs, cancel, errors as messages, coalesced previews."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import QThread

from stylealigned_desktop.engine import events as ev
from stylealigned_desktop.engine.request import GeneratedReference, Panel, Sampling, SetRequest
from stylealigned_desktop.ui.threads import EngineWorker, JobState
from tests.ui.uifakes import FakeEngine


def make_request(steps=3, seeds=(1, 2), only=None) -> SetRequest:
    return SetRequest(
        model="fake",
        style=GeneratedReference("a teapot, ink", 0),
        panels=tuple(Panel(f"panel {s}", s) for s in seeds),
        sampling=Sampling(steps=steps, width=64, height=64),
        only=only,
    )


@pytest.fixture
def collect(qtbot):
    def make(engine):
        worker = EngineWorker(lambda: engine)
        seen = []
        ui_threads = set()

        def on_event(wevent):
            ui_threads.add(QThread.currentThread() is worker.thread())
            seen.append(wevent)

        worker.event.connect(on_event)
        return worker, seen, ui_threads

    return make


def test_job_runs_in_the_worker_thread_and_events_reach_the_ui_thread(qtbot, collect):
    engine = FakeEngine()
    worker, seen, ui_threads = collect(engine)
    with qtbot.waitSignal(worker.job_ended, timeout=60000) as ended:
        job = worker.submit(make_request())
    assert ended.args[0] is job and job.state is JobState.finished
    assert engine.thread_names == ["stylealigned-engine"]
    assert ui_threads == {True}  # every slot ran on the UI thread
    kinds = [type(w.event) for w in seen]
    assert kinds.count(ev.Step) == 3 and kinds[-1] is ev.Finished
    finished = seen[-1]
    assert set(finished.images) == {None, 0, 1}
    assert finished.images[1].pixelColor(3, 3).red() == FakeEngine.colour(2)[0]
    worker.shutdown()


def test_jobs_queue_and_a_queued_job_can_be_cancelled(qtbot, collect):
    engine = FakeEngine(held=True)
    worker, seen, _ = collect(engine)
    first = worker.submit(make_request(steps=4))
    second = worker.submit(make_request(seeds=(5,)))
    third = worker.submit(make_request(seeds=(6,)))
    assert worker.pending[-2:] == [second, third]
    worker.cancel(third)  # the first job waits for its steps: the third has not started
    engine.allow_steps(4 + 3)
    qtbot.waitUntil(lambda: second.state is JobState.finished, timeout=60000)
    assert first.state is JobState.finished and third.state is JobState.cancelled
    # the engine saw the jobs one after the other, never the cancelled one
    assert [r.panels[0].seed for r in engine.requests] == [1, 5]
    worker.shutdown()


def test_cancel_stops_the_running_job_within_a_step(qtbot, collect):
    engine = FakeEngine(held=True)
    worker, seen, _ = collect(engine)
    job = worker.submit(make_request(steps=200))
    engine.allow_steps(1)
    qtbot.waitUntil(lambda: any(isinstance(w.event, ev.Step) for w in seen), timeout=60000)
    # the engine takes no further step without the test: ending at all means the cancel did it
    with qtbot.waitSignal(worker.job_ended, timeout=60000):
        worker.cancel()
    assert job.state is JobState.cancelled
    steps = [w.event.step for w in seen if isinstance(w.event, ev.Step)]
    assert steps == [1]
    assert isinstance(seen[-1].event, ev.Cancelled)
    worker.shutdown()


def test_an_engine_exception_becomes_a_readable_failure_and_the_worker_goes_on(qtbot, collect):
    engine = FakeEngine(fail_with=RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"))
    worker, seen, _ = collect(engine)
    with qtbot.waitSignal(worker.job_ended, timeout=60000):
        job = worker.submit(make_request())
    assert job.state is JobState.failed
    assert "ran out of memory" in job.error and "smaller" in job.error
    engine.fail_with = None
    with qtbot.waitSignal(worker.job_ended, timeout=60000):
        job = worker.submit(make_request())
    assert job.state is JobState.finished
    worker.shutdown()


def test_a_failing_engine_factory_is_reported_and_retried(qtbot):
    calls = []

    def factory():
        calls.append(threading.current_thread().name)
        if len(calls) == 1:
            raise ImportError("No module named 'diffusers'")
        return FakeEngine()

    worker = EngineWorker(factory)
    with qtbot.waitSignal(worker.job_ended, timeout=60000):
        job = worker.submit(make_request())
    assert job.state is JobState.failed and "diffusers" in job.error
    with qtbot.waitSignal(worker.job_ended, timeout=60000):
        job = worker.submit(make_request())
    assert job.state is JobState.finished
    assert calls == ["stylealigned-engine"] * 2
    worker.shutdown()


def test_previews_are_coalesced_to_the_newest_per_picture(qtbot):
    engine = FakeEngine(step_s=0.0)
    worker = EngineWorker(lambda: engine)
    signals = []
    worker.previews_ready.connect(lambda: signals.append(1))
    with qtbot.waitSignal(worker.job_ended, timeout=60000):
        worker.submit(make_request(steps=30, seeds=(1, 2, 3)))
    qtbot.wait(50)
    previews = worker.take_previews()
    # 30 steps x 4 pictures were reported; the UI got far fewer signals, and the newest image
    assert len(signals) < 120
    assert set(previews) == {None, 0, 1, 2}
    assert all(step == 30 for _, step, _ in previews.values())
    assert worker.take_previews() == {}
    worker.shutdown()


def test_after_finish_runs_in_the_worker_and_its_failure_is_reported(qtbot):
    worker = EngineWorker(FakeEngine)
    where = []

    def save(result):
        where.append(threading.current_thread().name)
        raise PermissionError(13, "Permission denied", "/read-only/outputs")

    with qtbot.waitSignal(worker.job_ended, timeout=60000):
        job = worker.submit(make_request(), after_finish=save)
    assert where == ["stylealigned-engine"]
    assert job.state is JobState.failed
    assert "could not be saved" in job.error and "/read-only/outputs" in job.error
    worker.shutdown()


def test_a_refused_lora_is_logged_as_one_line_and_a_fault_with_its_traceback(qtbot, collect, caplog):
    from stylealigned_desktop.engine.lora import LoraError

    refusal = LoraError("flux.safetensors is not a LoRA for SDXL: it was made for a transformer model")
    engine = FakeEngine(fail_with=refusal)
    worker, _seen, _ = collect(engine)
    with caplog.at_level("INFO", logger="stylealigned_desktop"):
        with qtbot.waitSignal(worker.job_ended, timeout=60000):
            job = worker.submit(make_request())
        assert job.error == str(refusal)
        said = [r for r in caplog.records if "flux.safetensors" in r.getMessage()]
        assert len(said) == 1 and said[0].levelname == "WARNING" and said[0].exc_info is None
        assert "Traceback" not in said[0].getMessage() and "\n" not in said[0].getMessage()
        caplog.clear()
        engine.fail_with = KeyError("down_blocks.0")  # a bug: its traceback is what a report needs
        with qtbot.waitSignal(worker.job_ended, timeout=60000):
            worker.submit(make_request())
        faults = [r for r in caplog.records if "down_blocks.0" in r.getMessage()]
        assert len(faults) == 1 and faults[0].levelname == "ERROR" and "Traceback" in faults[0].getMessage()
    worker.shutdown()
