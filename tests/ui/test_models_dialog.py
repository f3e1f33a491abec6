"""The model dialog: every source kind, download progress, cancel (resumable) and offline errors."""

from __future__ import annotations

import json
import threading
import time

import pytest
from PySide6.QtWidgets import QDialog

from stylealigned_desktop.ui.dialogs.model_dialog import TINY_LABEL, ModelDialog


def test_tiny_is_clearly_labelled_and_chosen(qtbot):
    dialog = ModelDialog(first_run=True)
    qtbot.addWidget(dialog)
    assert "noise" in dialog.tiny_radio.text() and "random weights" in dialog.tiny_radio.text()
    assert dialog.tiny_radio.text() == TINY_LABEL
    dialog.tiny_radio.setChecked(True)
    dialog.try_accept()
    assert dialog.result() == QDialog.DialogCode.Accepted
    assert dialog.source() == "tiny"


def test_the_tiny_sd_models_are_chosen_beside_the_tiny_button(qtbot):
    from PySide6.QtCore import Qt

    dialog = ModelDialog(current="tiny-sd15")
    qtbot.addWidget(dialog)
    assert dialog.tiny_radio.isChecked() and dialog.tiny_choice.currentData() == "tiny-sd15"
    dialog.hub_radio.setChecked(True)
    qtbot.keyClick(dialog.tiny_choice, Qt.Key.Key_Down)  # the artist picks the next one: the button follows
    qtbot.keyClick(dialog.tiny_choice, Qt.Key.Key_Down)
    assert dialog.tiny_radio.isChecked() and "v-prediction" in dialog.tiny_choice.currentText()
    qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
    assert dialog.result() == QDialog.DialogCode.Accepted and dialog.source() == "tiny-sd2v"


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
    dialog.try_accept()  # a diffusers folder, but of no base the engine runs
    assert dialog.source() == "" and "cannot tell which base model" in dialog.message.text()
    assert "unet/config.json is missing" in dialog.message.text()
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "config.json").write_text(json.dumps({"cross_attention_dim": 768}))
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
    with qtbot.waitSignal(dialog.download.finished, timeout=60000):
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
    # a download of minutes: the cancel comes first however slow the machine
    dialog = ModelDialog(download_fn=fake_hub(tmp_path, chunks=100_000, delay=0.001))
    qtbot.addWidget(dialog)
    dialog.start_download()
    qtbot.waitUntil(lambda: dialog.progress.value() > 0, timeout=60000)
    assert not dialog.ok_button.isEnabled()
    with qtbot.waitSignal(dialog.download.cancelled, timeout=60000):
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


def fake_single_model_hub(cache, files, chunks=10, delay=0.0, calls=None):
    """A stand-in for snapshot_download of a one-model repository into a Hugging Face cache:
    the commit and the config first (as the real one does), the weights last."""
    from tests.test_hub import write_snapshot

    def download(repo_id, ignore_patterns, tqdm_class):
        if calls is not None:
            calls.append((repo_id, tuple(ignore_patterns)))
        snapshot = write_snapshot(cache, repo_id, "2" * 40, {"config.json": "{}"})
        bar = tqdm_class(name="huggingface_hub.snapshot_download", total=chunks * 100, unit="B")
        for _ in range(chunks):
            time.sleep(delay)
            bar.update(100)
        write_snapshot(cache, repo_id, "2" * 40, files)
        return str(snapshot)

    return download


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"


def test_every_other_model_can_be_downloaded_from_the_dialog(qtbot, hub_cache):
    from stylealigned_desktop.engine.hub import OPTIONAL_MODELS, complete_snapshot

    calls = []
    dialog = ModelDialog(download_fn=fake_single_model_hub(hub_cache, {"model.safetensors": b"w"}, calls=calls))
    qtbot.addWidget(dialog)
    box = dialog.other_models
    assert dialog.isAncestorOf(box) and box.isVisibleTo(dialog)
    repos = [repo for _, repo in OPTIONAL_MODELS]
    assert {"diffusers/controlnet-canny-sdxl-1.0", "diffusers/controlnet-depth-sdxl-1.0", "Intel/dpt-hybrid-midas",
            "facebook/dino-vitb8", "openai/clip-vit-large-patch14"} <= set(repos)
    assert all(box.status[r].text() == "not downloaded" and box.buttons[r].isEnabled() for r in repos)
    seen = []
    box.download.progress.connect(lambda done, total, rate: seen.append(done))
    with qtbot.waitSignal(box.download.finished, timeout=60000):
        box.buttons["facebook/dino-vitb8"].click()
    qtbot.waitUntil(lambda: box.status["facebook/dino-vitb8"].text() == "on this computer", timeout=60000)
    assert seen[-1] == 1000.0 and box.progress.value() == 1000
    assert not box.buttons["facebook/dino-vitb8"].isEnabled() and box.buttons["openai/clip-vit-large-patch14"].isEnabled()
    assert complete_snapshot("facebook/dino-vitb8") is not None
    repo, patterns = calls[0]
    assert repo == "facebook/dino-vitb8" and "*.bin" in patterns and "*.ckpt" in patterns


def test_a_cancelled_other_model_stays_not_downloaded(qtbot, hub_cache):
    dialog = ModelDialog(download_fn=fake_single_model_hub(hub_cache, {"model.safetensors": b"w"},
                                                           chunks=100_000, delay=0.001))  # minutes
    qtbot.addWidget(dialog)
    box = dialog.other_models
    repo = "Intel/dpt-hybrid-midas"
    box.buttons[repo].click()
    qtbot.waitUntil(lambda: box.progress.value() > 0, timeout=60000)
    assert not any(button.isEnabled() for button in box.buttons.values())  # one download at a time
    with qtbot.waitSignal(box.download.cancelled, timeout=60000):
        box.cancel_button.click()
    qtbot.waitUntil(lambda: box.buttons[repo].isEnabled(), timeout=60000)
    assert box.status[repo].text() == "not downloaded"  # its config.json is there, its weights are not
    assert "resume" in box.progress_text.text()


@pytest.mark.parametrize("files", [{}, {"pytorch_model.bin": b"pickle"}])
def test_an_other_model_without_safetensors_weights_is_not_taken(qtbot, hub_cache, files):
    """A repository with pickle weights only: the download skips them (or finds them), the
    model stays "not downloaded" and the message says why."""
    dialog = ModelDialog(download_fn=fake_single_model_hub(hub_cache, files))
    qtbot.addWidget(dialog)
    box = dialog.other_models
    with qtbot.waitSignal(box.download.finished, timeout=60000):
        box.buttons["facebook/dino-vitb8"].click()
    qtbot.waitUntil(lambda: "pickle" in box.progress_text.text(), timeout=60000)
    assert "safetensors" in box.progress_text.text()
    assert box.status["facebook/dino-vitb8"].text() == "not downloaded"


def test_the_tiny_autoencoder_downloaded_in_the_dialog_is_what_auto_previews_with_offline(qtbot, hub_cache, tmp_path):
    """Issue 27: TAESDXL comes through Other models' Download like every model; after it Auto
    takes it (and says so) and the engine loads it from the cache, offline (tests run with
    HF_HUB_OFFLINE=1): its previews are that decoder's, weight for weight."""
    import torch

    from stylealigned_desktop.engine.hub import DEFAULT_TINY_DECODER as repo
    from stylealigned_desktop.engine.preview_choice import choose_preview
    from stylealigned_desktop.engine.preview_decoders import TinyAutoencoder, make_preview_decoder
    from stylealigned_desktop.engine.tiny import build_tiny_pipeline, build_tiny_preview_decoder

    published = build_tiny_preview_decoder()  # stands in for TAESDXL's weights
    published.save_pretrained(tmp_path / "taesdxl", safe_serialization=True)
    files = {path.name: path.read_bytes() for path in (tmp_path / "taesdxl").iterdir()}
    assert choose_preview("auto", "some/sdxl").decoder == "factors"  # not downloaded yet
    dialog = ModelDialog(download_fn=fake_single_model_hub(hub_cache, files))
    qtbot.addWidget(dialog)
    box = dialog.other_models
    with qtbot.waitSignal(box.download.finished, timeout=60000):
        box.buttons[repo].click()
    qtbot.waitUntil(lambda: box.status[repo].text() == "on this computer", timeout=60000)
    choice = choose_preview("auto", "some/sdxl")
    assert (choice.decoder, choice.source) == ("tiny", repo) and repo in choice.said
    decoder = make_preview_decoder(choice, build_tiny_pipeline(), full_vae=None)
    x0 = torch.randn(4, 6, 5)
    assert decoder.decode(x0).tobytes() == TinyAutoencoder(published).decode(x0).tobytes()
