"""Generate in a frozen build that left part of a library out: the window names the library and
says how to report it (issue 29), and works again once the library loads."""

from __future__ import annotations

import sys

from PySide6.QtCore import Qt

from stylealigned_desktop.library_errors import REPORT_URL
from stylealigned_desktop.ui.threads import JobState
from tests.library_failures import forget, load_pipeline_class, write_broken_libraries
from tests.ui.uifakes import FakeEngine, storyboard


def test_generate_names_the_library_that_failed_to_load_and_how_to_report_it(
        qtbot, make_window, tmp_path, monkeypatch):
    write_broken_libraries(tmp_path, "lazypipelines", "datadep")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "frozen", True, raising=False)

    class LoadsItsLibraries(FakeEngine):
        def generate(self, request, on_event, cancel):
            load_pipeline_class("lazypipelines")  # as the engine loads diffusers' pipeline
            return super().generate(request, on_event, cancel)

    window, _ = make_window(engine=LoadsItsLibraries())
    storyboard(window)
    try:
        with qtbot.waitSignal(window.worker.job_ended, timeout=60000) as ended:
            qtbot.mouseClick(window.run_bar.generate_button, Qt.MouseButton.LeftButton)
    finally:
        forget("lazypipelines", "datadep")
    assert ended.args[0].state is JobState.failed
    banner = window.banner_text.text()
    assert not window.banner.isHidden()
    assert "The library 'datadep' could not be loaded" in banner
    assert "depends.json" in banner  # the first error, not diffusers' wrapper
    assert f"report it at {REPORT_URL}" in banner
    assert "look up to see its traceback" not in banner and "RuntimeError" not in banner
