"""Which shown panels have no subject masks to show (spec section 13), so that View → Show
subject masks says why instead of showing nothing: a panel drawn as a panorama (MultiDiffusion
windows, e.g. any size above twice the model's own) keeps no masks, nor does a picture made
before its characters were named."""

from __future__ import annotations

from collections.abc import Mapping

from ...session.characters import named_characters


def show_masks(pictures, host, on: bool) -> None:
    """View → Show subject masks: the overlay on or off (``pictures``: the GridController), and
    the panels that have none to show said in ``host``'s status bar."""
    pictures.set_show_masks(on)
    shown = on and pictures.viewing_run is None  # a past run's masks are not kept
    bare = unmasked_panels(host.session, pictures.grid.tiles, pictures.masks) if shown else []
    if bare:  # rather than an overlay that silently is not there
        host.show_message(unmasked_note(bare))


def unmasked_panels(session, tiles: Mapping, masks: Mapping) -> list[int]:
    """1-based numbers of the panels that name a character and show a picture without masks."""
    if session is None:
        return []
    names = {c.name for c in session.characters}
    return [i + 1 for i, panel in enumerate(session.panels)
            if names & set(named_characters(panel.prompt)) and i in tiles
            and tiles[i].image() is not None and not masks.get(panel.id)]


def unmasked_note(numbers: list[int]) -> str:
    which = f"panel {numbers[0]}" if len(numbers) == 1 else "panels " + ", ".join(map(str, numbers))
    return (f"No subject masks for {which}: a panel drawn as a panorama (in windows) keeps none, "
            "nor does a picture made before its characters")
