"""A picture the app made, dropped on Settings, brings back its memory mode, VAE and LoRAs with
their weights too, as one undoable step; files it names that this computer lacks are named to the
artist, and the rest is taken (issue 12)."""

from __future__ import annotations

import pytest
from PIL import Image

from stylealigned_desktop.engine.events import RunResult
from stylealigned_desktop.engine.request import (
    GeneratedReference,
    Lora,
    Panel,
    Sampling,
    SetRequest,
)
from stylealigned_desktop.engine.runfolder import write_run_folder
from tests.loras import tiny_lora_state, write_diffusers_lora
from tests.ui.uifakes import FakeEngine, drop_files, storyboard


def _file(path, data=b"{}"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)  # the Settings panel and the restore only look for the file
    return path


@pytest.fixture
def made(tmp_path):
    """A run folder written with memory ``low``, two LoRAs (0.7 and -0.3) and a VAE folder."""
    (tmp_path / "loras").mkdir()
    ink = write_diffusers_lora(tmp_path / "loras" / "ink-wash.safetensors", tiny_lora_state(1))
    paper = write_diffusers_lora(tmp_path / "loras" / "paper.safetensors", tiny_lora_state(2))
    vae = tmp_path / "vaes" / "fp16-fix"
    _file(vae / "config.json")  # a diffusers VAE folder, as far as a drop checks
    request = SetRequest(model="someone/other-sdxl", style=GeneratedReference("a fox, ink", 3),
                         panels=(Panel("a hare, ink", 9),),
                         sampling=Sampling(steps=23, width=128, height=64, scheduler="euler"),
                         memory="low", vae=str(vae), loras=(Lora(str(ink), 0.7), Lora(str(paper), -0.3)))
    image = Image.new("RGB", (128 // 8, 64 // 8), "grey")
    write_run_folder(tmp_path / "run", request, RunResult(image, {0: image}, {}))
    return {"png": tmp_path / "run" / "panel-01.png", "ink": ink, "paper": paper, "vae": vae}


def _window(make_window):
    window, _ = make_window(engine=FakeEngine())
    session = storyboard(window)
    window.sessions.undo.flush()
    window.sessions.undo.stack.clear()  # the drop is the only step
    return window, session


def test_the_drop_restores_memory_vae_and_loras_as_one_undoable_step(qtbot, make_window, made):
    window, session = _window(make_window)
    before = session.settings
    assert (before.memory, before.vae, before.loras) == ("auto", "", ())
    enter, drop = drop_files(window.settings_panel, [made["png"]])
    assert enter.isAccepted() and drop.isAccepted()
    new = session.settings
    assert new.memory == "low" and new.vae == str(made["vae"]) and new.steps == 23
    assert new.loras == (Lora(str(made["ink"]), 0.7), Lora(str(made["paper"]), -0.3))
    panel = window.settings_panel
    assert panel.memory.currentData() == "low" and panel.vae.source() == str(made["vae"])
    assert [row.value.text() for row in panel.loras.rows] == ["0.70", "-0.30"]
    assert window.banner.isHidden()  # every file is here: nothing to say

    window.sessions.undo.flush()
    assert window.sessions.undo.stack.count() == 1
    window.undo_action.trigger()
    assert session.settings == before
    assert panel.memory.currentData() == "auto" and panel.loras.rows == []
    window.redo_action.trigger()
    assert session.settings == new


def test_files_missing_here_are_named_and_everything_else_is_taken(qtbot, make_window, made):
    made["paper"].unlink()
    (made["vae"] / "config.json").unlink()
    made["vae"].rmdir()
    window, session = _window(make_window)
    drop_files(window.settings_panel, [made["png"]])
    new = session.settings
    assert new.steps == 23 and new.memory == "low"
    assert new.loras == (Lora(str(made["ink"]), 0.7),)
    assert new.vae == ""  # the session's own (none), not a folder that is not there
    text = window.banner_text.text()
    assert not window.banner.isHidden()
    assert "panel-01.png" in text and "paper.safetensors" in text and "-0.3" in text
    assert str(made["vae"]) in text and "ink-wash" not in text


def test_a_picture_dropped_on_the_lora_list_uses_its_settings_too(qtbot, make_window, made):
    """The LoRA list fills much of Settings: a picture the app made dropped there is no LoRA
    file; it passes on to the Settings panel around it."""
    window, session = _window(make_window)
    enter, drop = drop_files(window.settings_panel.loras, [made["png"]])
    assert enter.isAccepted() and drop.isAccepted()
    assert session.settings.loras == (Lora(str(made["ink"]), 0.7), Lora(str(made["paper"]), -0.3))
    assert session.settings.memory == "low" and window.banner.isHidden()


def test_the_drop_brings_the_characters_back_as_one_undoable_step(qtbot, make_window, tmp_path):
    """Spec section 13 (issue 25, Records): a panel of a set with characters, dropped on
    Settings, brings back its characters (name, description, words, anchor seeds, the artist's
    anchor text, the anchor picture that is still here) and their settings; an anchor picture
    that is gone is named; a character of the same name is replaced, others stay."""
    import numpy as np

    from stylealigned_desktop.engine.request import Character
    from stylealigned_desktop.engine.settings import StyleAlignedSettings

    design = tmp_path / "mira-design.png"
    Image.fromarray(np.random.default_rng(4).integers(0, 255, (40, 30, 3), dtype=np.uint8)).save(design)
    gone = tmp_path / "bo-design.png"
    mira = Character("Mira", "a red-haired girl in a yellow raincoat", ("girl",), anchor_seeds=(51, 52, 53),
                     anchor_pictures=(None, str(design)), anchor_text=", standing, ink sketch.")
    bo = Character("Bo", "an old man", anchor_seeds=(61, 62, 63), anchor_pictures=(str(gone),),
                   anchor_text=", ink sketch.")
    request = SetRequest(model="tiny", style=GeneratedReference("a fox, ink sketch.", 3),
                         panels=(Panel("[Mira] meets [Bo], ink sketch.", 9),), characters=(mira, bo),
                         sampling=Sampling(steps=7, width=128, height=64),
                         settings=StyleAlignedSettings(character_dropout=0.2, character_layers="all",
                                                       anchors_per_character=3))
    image = Image.new("RGB", (16, 8), "grey")
    write_run_folder(tmp_path / "run", request, RunResult(image, {0: image}, {}))
    window, session = _window(make_window)  # style text "ink sketch."
    session.add_character("Mira", "someone else")
    session.add_character("Ada", "a pilot")
    window.sessions.undo.flush()
    window.sessions.undo.stack.clear()
    before = session.edit_state()

    enter, drop = drop_files(window.settings_panel, [tmp_path / "run" / "panel-01.png"])
    assert enter.isAccepted() and drop.isAccepted()
    assert [c.name for c in session.characters] == ["Mira", "Ada", "Bo"]
    taken = session.character("Mira")
    assert (taken.description, taken.words, taken.anchor_seeds, taken.anchor_text) == (
        mira.description, ("girl",), (51, 52, 53), "standing")
    assert taken.picture(0) is None and taken.picture(1) is not None  # the design, copied in
    assert session.character("Bo").anchor_seeds == (61, 62, 63) and session.character("Bo").picture(0) is None
    assert session.character("Ada").description == "a pilot"
    settings = session.character_settings
    assert (settings.character_dropout, settings.character_layers, settings.anchors_per_character) == (0.2, "all", 3)
    assert session.settings.steps == 7
    assert window.characters.list.count() == 3
    assert str(gone) in window.banner_text.text() and "[Bo]" in window.banner_text.text()

    window.sessions.undo.flush()
    assert window.sessions.undo.stack.count() == 1  # settings and characters: one step
    window.undo_action.trigger()
    assert session.edit_state() == before and window.characters.list.count() == 2
