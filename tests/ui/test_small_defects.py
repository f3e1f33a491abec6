"""Issue 30, item 10: the smaller defects an artist met on the second day."""

from __future__ import annotations

from .uifakes import storyboard


def test_custom_size_starts_at_the_sets_size(qtbot, make_window):
    window, _ = make_window()
    session = storyboard(window, prompts=("a fox", "a crow"), width=768, height=512)
    card = window.storyboard.card_at(1)
    card.size_choice.setCurrentIndex(card.size_choice.findText("Custom…"))
    assert (card.custom_width.value(), card.custom_height.value()) == (768, 512)
    assert session.panels[1].size == (768, 512)
    session.update_settings(width=640, height=896)  # the set changes: Custom… there now
    other = window.storyboard.card_at(0)
    other.size_choice.setCurrentIndex(other.size_choice.findText("Custom…"))
    assert session.panels[0].size == (640, 896)


def test_a_deleted_panel_is_named_by_whole_words_and_an_ellipsis(qtbot, make_window):
    window, _ = make_window()
    long_prompt = "a lighthouse keeper climbing the spiral stairs at midnight with a lantern"
    storyboard(window, prompts=("a fox", long_prompt))
    window.storyboard.card_at(1).delete_button.click()
    message = window.statusBar().currentMessage()
    shown = message.removeprefix("Deleted “").removesuffix("”")
    assert shown.endswith("…") and len(shown) <= 40
    assert long_prompt.startswith(shown[:-1].rstrip())
    assert long_prompt[len(shown[:-1].rstrip())] == " "  # the cut falls between two words
