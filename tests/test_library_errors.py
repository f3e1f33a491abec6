"""A library that fails to load is named, with what to do, by the command line and the window
(the window's side: tests/ui/test_library_failure_window.py)."""

from __future__ import annotations

import sys

import pytest

from stylealigned_desktop import cli
from stylealigned_desktop.engine import generator
from stylealigned_desktop.library_errors import (
    REPORT_URL,
    describe_library_failure,
    library_failure,
)

from .library_failures import forget, load_pipeline_class, write_broken_libraries


@pytest.fixture
def broken(tmp_path, monkeypatch):
    """``broken(data_missing=True)`` -> the lazy package's name; its dependency is ``brokendep``."""
    monkeypatch.syspath_prepend(str(tmp_path))
    made = []

    def make(data_missing: bool = True, guarded: bool = True) -> str:
        lazy = f"lazylib{len(made)}"
        write_broken_libraries(tmp_path / str(len(made)), lazy, f"brokendep{len(made)}", data_missing,
                               guarded)
        monkeypatch.syspath_prepend(str(tmp_path / str(len(made))))
        made.append(lazy)
        return lazy

    yield make
    forget(*made, *(name.replace("lazylib", "brokendep") for name in made))


def raised(call) -> BaseException:
    with pytest.raises(BaseException) as info:
        call()
    return info.value


def test_a_data_file_missing_at_import_names_the_package_that_reads_it(broken):
    error = raised(lambda: load_pipeline_class(broken()))
    # what the app got before: diffusers' wrapper, naming its own module, not the culprit
    assert isinstance(error, RuntimeError) and "look up to see its traceback" in str(error)
    failure = library_failure(error)
    assert failure.package == failure.distribution == "brokendep0"
    assert failure.error.startswith("FileNotFoundError:") and "depends.json" in failure.error


def test_the_package_at_fault_is_the_innermost_one_not_the_lazy_importer(broken):
    # the error is not caught where it is raised: its traceback runs through diffusers' importer
    # and the lazy package before it reaches the module that read the file
    failure = library_failure(raised(lambda: load_pipeline_class(broken(guarded=False))))
    assert failure.package == "brokendep0"
    assert failure.error.startswith("FileNotFoundError:")


def test_a_missing_package_is_named_by_its_own_name(broken):
    failure = library_failure(raised(lambda: load_pipeline_class(broken(data_missing=False))))
    assert failure.package == "brokendep0"
    assert failure.error == "ModuleNotFoundError: No module named 'brokendep0'"


def test_the_distribution_is_what_pip_calls_it():
    # cv2 is installed by opencv-python-headless; the import system names the module
    failure = library_failure(ImportError("libGL.so.1: cannot open shared object file", name="cv2"))
    assert (failure.package, failure.distribution) == ("cv2", "opencv-python-headless")


def test_errors_that_are_not_failed_imports_are_left_alone():
    def fails_at_run_time():
        raise RuntimeError("Failed to run the pipeline: shapes do not match")

    assert library_failure(raised(fails_at_run_time)) is None
    assert library_failure(ValueError("steps must be positive")) is None


def test_the_message_says_how_to_report_or_repair(broken):
    failure = library_failure(raised(lambda: load_pipeline_class(broken())))
    frozen = describe_library_failure(failure, frozen=True)
    assert "'brokendep0'" in frozen and REPORT_URL in frozen and "built without" in frozen
    assert "look up to see its traceback" not in frozen
    pip = describe_library_failure(failure, frozen=False)
    assert "pip install --force-reinstall brokendep0" in pip


def test_the_command_line_names_the_library(broken, monkeypatch, capsys, tmp_path):
    lazy = broken()

    def load(*args, **kwargs):  # where the engine first imports diffusers' pipelines
        load_pipeline_class(lazy)

    monkeypatch.setattr(generator.Engine, "generate", load)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    code = cli.main(["generate", "--model", "tiny", "--reference-prompt", "a train", "--prompt",
                     "a car", "--steps", "2", "--width", "64", "--height", "64", "--quiet",
                     "--out", str(tmp_path / "set")])
    err = capsys.readouterr().err
    assert code == 1
    assert "The library 'brokendep0' could not be loaded" in err and REPORT_URL in err
    assert "unexpected error" not in err and "look up to see its traceback" not in err
