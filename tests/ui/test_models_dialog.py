"""The model dialog: every source kind, download progress, cancel (resumable) and offline errors."""

from __future__ import annotations

import json
import threading
import time

from PySide6.QtWidgets import QDialog

from stylealigned_desktop.ui.models_dialog import TINY_LABEL, ModelDialog


def test_tiny_is_clearly_labelled_and_chosen(qtbot):
    dialog = ModelDialog(first_run=True)
    qtbot.addWidget(dialog)
    assert "noise" in dialog.tiny_radio.text() and "random weights" in dialog.tiny_radio.text()
    assert dialog.tiny_radio.text() == TINY_LABEL
    dialog.tiny_radio.setChecked(True)
    dialog.try_accept()
    assert dialog.result() == QDialog.DialogCode.Accepted
    assert dialog.source() == "tiny"


def test_a_folder_without_model_index_is_refused_with_its_name(qtbot, tmp_path):
    dialog = ModelDialog()
    qtbot.addWidget(dialog)
    dialog.folder_radio.setChecked(True)
    dialog.folder_path.setText(str(tmp_path))
    dialog.try_accept()
    assert dialog.result() != QDialog.DialogCode.Accepted
    assert not dialog.message.isHidden()
    assert str(tmp_path) in dialog.message.text() and "model_index.json" in dialog.message.text()
    (tmp_path / "model_index.json").write_text("{}")
    dialog.try_accept()
    assert dialog.source() == str(tmp_path)


def test_a_pickle_checkpoint_is_refused(qtbot, tmp_path):
    checkpoint = tmp_path / "model.ckpt"
    checkpoint.write_bytes(b"x")
    dialog = ModelDialog()
    qtbot.addWidget(dialog)
    dialog.file_radio.setChecked(True)
    dialog.file_path.setText(str(checkpoint))
    dialog.try_accept()
    assert dialog.source() == "" and "pickle" in dialog.message.text()


def test_a_hub_id_must_be_downloaded_before_use(qtbot):
    dialog = ModelDialog()
    qtbot.addWidget(dialog)
    dialog.hub_id.setText("someone/not-downloaded-model")
    dialog.try_accept()
    assert dialog.source() == "" and "Download" in dialog.message.text()


def test_offline_download_fails_with_a_readable_message(qtbot):
    dialog = ModelDialog()  # the real snapshot_download; tests run with HF_HUB_OFFLINE=1
    qtbot.addWidget(dialog)
    dialog.hub_id.setText("someone/not-downloaded-model")
    with qtbot.waitSignal(dialog.download.failed, timeout=20000):
        dialog.start_download()
    text = dialog.message.text()
    assert "someone/not-downloaded-model" in text and "connection" in text
    assert dialog.download_button.isEnabled()


def fake_hub(tmp_path, chunks=10, delay=0.0, calls=None):
    """A stand-in for snapshot_download that writes a snapshot and reports bytes like it."""

    def download(repo_id, ignore_patterns, tqdm_class):
        if calls is not None:
            calls.append((repo_id, tuple(ignore_patterns), threading.current_thread().name))
        bar = tqdm_class(name="huggingface_hub.snapshot_download", total=chunks * 100, unit="B")
        for _ in range(chunks):
            time.sleep(delay)
            bar.update(100)
        folder = tmp_path / "snapshot"
        (folder / "unet").mkdir(parents=True, exist_ok=True)
        (folder / "unet" / "diffusion_pytorch_model.fp16.safetensors").write_bytes(b"w")
        (folder / "model_index.json").write_text("{}")
        return str(folder)

    return download


def test_download_reports_progress_and_then_uses_the_model(qtbot, tmp_path):
    calls = []
    dialog = ModelDialog(download_fn=fake_hub(tmp_path, calls=calls))
    qtbot.addWidget(dialog)
    dialog.half_precision.setChecked(True)
    seen = []
    dialog.download.progress.connect(lambda done, total, rate: seen.append((done, total)))
    with qtbot.waitSignal(dialog.download.finished, timeout=5000):
        dialog.start_download()
    assert seen[-1] == (1000.0, 1000.0)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert dialog.result() == QDialog.DialogCode.Accepted
    assert dialog.source() == "stabilityai/stable-diffusion-xl-base-1.0"
    repo, patterns, thread = calls[0]
    assert thread == "stylealigned-download"
    assert "*/diffusion_pytorch_model.safetensors" in patterns  # fp16 only: full weights skipped
    assert "*.bin" in patterns and "*.ckpt" in patterns


def test_cancel_stops_the_download_and_offers_to_resume(qtbot, tmp_path):
    dialog = ModelDialog(download_fn=fake_hub(tmp_path, chunks=1000, delay=0.01))
    qtbot.addWidget(dialog)
    dialog.start_download()
    qtbot.waitUntil(lambda: dialog.progress.value() > 0, timeout=5000)
    assert not dialog.ok_button.isEnabled()
    with qtbot.waitSignal(dialog.download.cancelled, timeout=5000):
        dialog.cancel_download_button.click()
    assert "resume" in dialog.progress_text.text()
    assert dialog.result() != QDialog.DialogCode.Accepted
    assert dialog.download_button.isEnabled() and dialog.ok_button.isEnabled()
    assert not (tmp_path / "snapshot").exists()


def test_a_cancelled_download_is_not_taken_as_present(qtbot, tmp_path, monkeypatch):
    """snapshot_download records the commit and the small files first; after a cancel the
    snapshot has model_index.json but not every component's weights: not downloaded yet."""
    from huggingface_hub import constants

    from tests.test_hub import PIPELINE_INDEX, write_snapshot

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    repo = "someone/half-downloaded"
    snapshot = write_snapshot(tmp_path, repo, "1" * 40, {"model_index.json": json.dumps(PIPELINE_INDEX),
                                                          "scheduler/scheduler_config.json": "{}",
                                                          "unet/config.json": "{}"})
    dialog = ModelDialog()
    qtbot.addWidget(dialog)
    dialog.hub_id.setText(repo)
    dialog.try_accept()
    assert dialog.source() == "" and "not downloaded" in dialog.message.text()
    (snapshot / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"w")
    dialog.try_accept()
    assert dialog.source() == repo
