"""The CLI refusing a generate before any model loads: exit 2, one line, nothing written."""

from __future__ import annotations


def refused_generate(args, tmp_path, monkeypatch, capsys) -> str:
    """Run ``stylealigned generate ARGS --quiet --out TMP/run`` with the model loading spied on;
    check it ends with exit 2 (returned, or argparse's SystemExit), one line on stderr, no model
    loaded and no output folder; return that line."""
    import pytest

    from stylealigned_desktop import cli
    from stylealigned_desktop.engine import models

    loaded = []
    monkeypatch.setattr(models, "_base_pipeline", lambda *args: loaded.append(args))
    try:
        code = cli.main(["generate", *args, "--quiet", "--out", str(tmp_path / "run")])
    except SystemExit as refused:
        code = refused.code
    err = capsys.readouterr().err.strip()
    if code != 2 or len(err.splitlines()) != 1:
        pytest.fail(f"exit {code}, not one line: {err}")
    assert loaded == [] and not (tmp_path / "run").exists()
    return err
