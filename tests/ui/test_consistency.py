"""The set-consistency score of finished runs in the history: computed in the worker with a
tiny random DINO (a real transformers ViTModel in a folder), a hint when the model is missing,
and a hint (never a dialog) when scoring fails."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt

from stylealigned_desktop.ui.support import DesktopConfig
from stylealigned_desktop.ui.threads import scoring
from tests.ui.uifakes import FakeEngine, run_and_wait, storyboard

TINY_DINO_IMAGE = 32


@pytest.fixture(scope="module")
def tiny_dino(tmp_path_factory):
    """A random ViTModel + ViTImageProcessor saved like facebook/dino-vitb8 (patch 8)."""
    import torch
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    folder = tmp_path_factory.mktemp("tiny-dino")
    torch.manual_seed(7)
    config = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=37, image_size=TINY_DINO_IMAGE, patch_size=8)
    ViTModel(config, add_pooling_layer=False).save_pretrained(folder)
    ViTImageProcessor(size={"height": TINY_DINO_IMAGE, "width": TINY_DINO_IMAGE}
                      ).save_pretrained(folder)
    return folder


@pytest.fixture(autouse=True)
def _empty_hub_cache(tmp_path, monkeypatch):
    """No hub model is cached: the default DINO id is missing whatever this machine holds."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))


def naive_consistency(folder, paths) -> float:
    """CLS embeddings by a plain forward of the saved model, cosine of every pair, mean."""
    import torch
    from transformers import ViTImageProcessor, ViTModel

    model = ViTModel.from_pretrained(str(folder), add_pooling_layer=False).eval()
    processor = ViTImageProcessor.from_pretrained(str(folder))
    pictures = [Image.open(p).convert("RGB") for p in paths]
    with torch.no_grad():
        hidden = model(**processor(images=pictures, return_tensors="pt")).last_hidden_state
    cls = hidden[:, 0].double().numpy()
    cosines = [float(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b))
               for a, b in itertools.combinations(cls, 2)]
    return sum(cosines) / len(cosines)


def generate(qtbot, window):
    assert run_and_wait(qtbot, window).state.value == "finished"


def history_item(window, run_id):
    for row in range(window.history.list.count()):
        item = window.history.list.item(row)
        if item.data(Qt.ItemDataRole.UserRole) == run_id:
            return item
    raise AssertionError(f"run {run_id} is not in the history")


def test_a_finished_run_is_scored_in_the_worker_and_shown_in_the_history(
        qtbot, make_window, tiny_dino, monkeypatch):
    from stylealigned_desktop.ui.window import consistency_controller

    threads = []
    real_score = scoring.score_pictures

    def recording_score(paths, source, device="auto"):
        threads.append(threading.current_thread().name)
        return real_score(paths, source, device)

    monkeypatch.setattr(consistency_controller, "score_pictures", recording_score)
    window, answers = make_window(config=DesktopConfig(model="tiny", dino_model=str(tiny_dino)))
    session = storyboard(window)
    generate(qtbot, window)  # the real tiny SDXL
    record = session.history[-1]
    qtbot.waitUntil(lambda: session.history[-1].consistency is not None, timeout=60000)
    assert threads == ["stylealigned-engine"]

    score = session.history[-1].consistency
    files = [session.path(relative) for _, relative in record.images()]
    assert len(files) == 4  # the reference and three panels: six pairs
    assert score == pytest.approx(naive_consistency(tiny_dino, files), abs=1e-5)
    item = history_item(window, record.id)
    assert item.text().endswith(f"consistency {score:.2f}")
    tip = item.toolTip()
    assert "mean DINO cosine similarity between every pair" in tip and "0.51" in tip
    assert "higher means more alike" in tip
    assert window.history.consistency_hint.isHidden()
    assert answers.asked == []
    # the score is part of the session: it is saved with the run
    assert session.to_dict()["history"][-1]["consistency"] == score


def test_without_the_dino_model_the_history_explains_how_to_get_it(
        qtbot, make_window, tiny_dino, tmp_path):
    window, answers = make_window(engine=FakeEngine())  # DINO: the default hub id, not cached
    session = storyboard(window)
    generate(qtbot, window)
    hint = window.history.consistency_hint
    qtbot.waitUntil(lambda: not hint.isHidden(), timeout=20000)
    assert session.history[-1].consistency is None
    assert "DINO model is missing" in hint.text()
    assert "hf download facebook/dino-vitb8" in hint.toolTip()
    assert "Settings → Advanced" in hint.toolTip()
    assert answers.asked == []  # a hint, no dialog

    answers.queue.append("Close")
    hint.linkActivated.emit("help")  # what a click on "How to get it" sends
    title, text = answers.asked[-1]
    assert title == "Consistency scores"
    assert "hf download facebook/dino-vitb8" in text

    # pointing the setting at a model folder: the hint goes, the next run gets a score
    field = window.settings_panel.dino_source
    assert "facebook/dino-vitb8" in field.placeholderText()
    field.setText(str(tiny_dino))
    field.editingFinished.emit()
    assert DesktopConfig.load().dino_model == str(tiny_dino)
    qtbot.waitUntil(lambda: hint.isHidden(), timeout=20000)
    generate(qtbot, window)
    qtbot.waitUntil(lambda: session.history[-1].consistency is not None, timeout=60000)
    assert session.history[0].consistency is None  # runs are scored when they finish


def test_a_dino_folder_that_fails_to_load_gives_a_hint_not_a_dialog(
        qtbot, make_window, tmp_path):
    broken = tmp_path / "broken-dino"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "vit", "hidden_size": 32}')
    window, answers = make_window(engine=FakeEngine(),
                                  config=DesktopConfig(model="tiny", dino_model=str(broken)))
    session = storyboard(window)
    generate(qtbot, window)
    hint = window.history.consistency_hint
    qtbot.waitUntil(lambda: not hint.isHidden(), timeout=30000)
    assert "could not be computed" in hint.text()
    assert f"from the folder {broken}" in hint.toolTip()
    assert session.history[-1].consistency is None
    assert answers.asked == [] and window.banner.isHidden()
    generate(qtbot, window)  # and the app goes on
    assert len(session.history) == 2


def test_scoring_helpers_agree_with_the_engine(tiny_dino, tmp_path):
    from stylealigned_desktop.engine import metrics

    assert scoring.DEFAULT_DINO == metrics.DEFAULT_DINO
    assert scoring.dino_source("") == scoring.dino_source("  ") == metrics.DEFAULT_DINO
    assert scoring.dino_source(" /models/dino ") == "/models/dino"
    assert str(scoring.PAPER_CONSISTENCY) in scoring.CONSISTENCY_TIP
    # a missing folder names the folder and still says how to download the model
    missing = scoring.dino_missing("/no/such/dino")
    assert missing.startswith("The DINO model folder /no/such/dino is missing")
    assert "hf download facebook/dino-vitb8" in missing
    assert scoring.score_pictures([], "/no/such/dino").missing == missing
    assert scoring.dino_missing(str(tiny_dino)) is None
    one = tmp_path / "one.png"
    Image.new("RGB", (40, 40), "red").save(one)
    with pytest.raises(ValueError, match="at least 2 pictures"):
        scoring.score_pictures([one], str(tiny_dino))
    # identical pictures are perfectly consistent
    assert scoring.score_pictures([one, one, one], str(tiny_dino), "cpu").score == \
        pytest.approx(1.0, abs=1e-6)
