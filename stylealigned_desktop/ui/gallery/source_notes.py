"""What a change of the style's source moved besides, said in the gallery's message."""

from __future__ import annotations

from ...session.generation import GenerationSettings
from ...session.model import Session


def source_note(before: GenerationSettings, was_picture: bool, session: Session) -> str:
    """The rest of a message after a change of source, so that nothing changes silently: when
    the pictures left, that the generated reference took over; and what the session moved with
    it (guidance and the StyleAligned settings still at the authors' defaults for the old kind
    of source move to the new kind's). '' if nothing of that happened."""
    fell_back = was_picture and not session.style.uses_picture
    note = "; the style now comes from the generated reference" if fell_back else ""
    return note + moved_defaults(before, session)


def moved_defaults(before: GenerationSettings, session: Session) -> str:
    """The settings a change of source moved, e.g. " (guidance 10 → 5: the authors' defaults
    for a generated reference)"; '' if none."""
    after, picture = session.settings, session.style.uses_picture
    moved = []
    if after.guidance != before.guidance:
        moved.append(f"guidance {before.guidance:g} → {after.guidance:g}")
    if after.style_aligned != before.style_aligned:
        moved.append("the StyleAligned settings")
    if moved:
        kind = "reference pictures" if picture else "a generated reference"
        return f" ({' and '.join(moved)}: the authors' defaults for {kind})"
    return ""
