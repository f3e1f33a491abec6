"""From a session's state to the engine's request: pure functions, nothing changes.

:func:`plan_run` turns the document (style, active references, panels, settings) into a
:class:`~stylealigned_desktop.session.history.RunPlan`: the immutable ``SetRequest`` plus what
the session needs to file the results. It raises :class:`SessionError` with a message for the
user when the session cannot be generated (no panels, no model, a missing picture, a bad value).
``Session.build_request`` / ``prepare_generate`` / ``prepare_reroll`` call it; seeds are drawn
by the session, never here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..engine import request as engine_request
from ..engine.request import GeneratedReference, PanelControl, ReferencePicture, SetRequest
from ..engine.request import Panel as RequestPanel
from .characters import Character, CharacterSettings, unknown_names
from .errors import SessionError
from .generation import GenerationSettings
from .history import RunPlan, RunStyle, new_run_id
from .values import Control, Panel, Reference, Style

FileOf = Callable[[str], "Path | None"]
"""The real path of a session-relative regular file inside the session, else None (``Session.file``)."""


def compose_prompt(subject: str, style_text: str) -> str:
    """The final prompt: ``subject + ", " + style_text`` (either alone when the other is empty)."""
    subject, style_text = subject.strip(), style_text.strip()
    if subject and style_text:
        return f"{subject}, {style_text}"
    return subject or style_text


def style_sources(
    style: Style, gallery: Callable[[str], Reference | None], settings: GenerationSettings,
    file_of: FileOf,
) -> tuple[tuple[GeneratedReference | ReferencePicture, ...], tuple[RunStyle, ...]]:
    """The request's references (spec section 11: each with its weight) and how the history
    records them, in the order of ``style.sources``.

    ``gallery`` finds a gallery entry by id (``Session.reference``).
    """
    total = sum(x.weight for x in style.sources)
    sources, records = [], []
    for source in style.sources:
        weight = source.weight / total
        if source.picture is not None:
            reference = gallery(source.picture)
            if reference is None:
                raise SessionError("an active reference picture is no longer in the gallery")
            path = file_of(reference.file)
            if path is None:
                raise SessionError(
                    f"the reference picture {reference.name or reference.file} is missing from "
                    f"the session folder ({reference.file}); remove it or add it again"
                )
            sources.append(ReferencePicture(
                path=str(path),
                caption=reference.caption,
                inversion_guidance=settings.inversion_guidance,
                inversion_offset=settings.inversion_offset,
                weight=source.weight,
            ))
            records.append(RunStyle(kind="picture", reference_id=reference.id, file=reference.file,
                                    caption=reference.caption, weight=weight))
            continue
        prompt = compose_prompt(style.reference_prompt, style.text)
        if not prompt:
            raise SessionError(
                "there is no style yet: write a style text or a reference prompt, "
                "or choose a reference picture"
            )
        sources.append(GeneratedReference(prompt=prompt, seed=style.reference_seed, weight=source.weight))
        records.append(RunStyle(kind="generated", prompt=prompt, subject=style.reference_prompt.strip(),
                                seed=style.reference_seed, weight=weight))
    return tuple(sources), tuple(records)


def request_panel(
    index: int, panel: Panel, style_text: str, file_of: FileOf
) -> tuple[RequestPanel, Control | None]:
    """Panel ``index`` as the engine sees it, and its control (None without a picture)."""
    prompt = compose_prompt(panel.prompt, style_text)
    if not prompt:
        raise SessionError(f"panel {index + 1} has no prompt and there is no style text")
    control = panel.control if panel.control.image else None
    request_control = None
    if control is not None:
        path = file_of(control.image)
        if path is None:
            raise SessionError(
                f"panel {index + 1}'s control picture is missing from the session folder "
                f"({control.image}); choose it again or remove it"
            )
        request_control = PanelControl(
            image=str(path),
            mode=control.mode,
            scale=control.scale,
            guidance_start=control.guidance_start,
            guidance_end=control.guidance_end,
            canny_low=control.canny_low,
            canny_high=control.canny_high,
            map_kind=control.map_kind,
        )
    return RequestPanel(prompt=prompt, seed=panel.seed, control=request_control, size=panel.size), control


def check_characters(panels: Sequence[Panel], characters: Sequence[Character]) -> None:
    """Refuse a storyboard whose panel names a character the session does not have (a typo
    would otherwise reach the text encoders as the literal ``[Name]``), and a character
    without a description (the text its name stands for)."""
    for character in characters:
        if not character.description.strip():
            raise SessionError(f"{character.name} has no description yet: say who "
                               f"{character.name} is in Characters")
    known = [c.name for c in characters]
    for i, panel in enumerate(panels):
        unknown = unknown_names(panel.prompt, known)
        if unknown:
            raise SessionError(
                f"panel {i + 1} names [{unknown[0]}], who is not among the characters: add "
                f"{unknown[0]} in Characters or correct the name"
            )


def _anchor_pictures(character: Character, count: int, file_of: FileOf) -> tuple[str | None, ...]:
    pictures = []
    for anchor in range(count):
        relative = character.picture(anchor)
        path = None if relative is None else file_of(relative)
        if relative is not None and path is None:
            raise SessionError(
                f"{character.name}'s anchor picture {anchor + 1} is missing from the session "
                f"folder ({relative}); choose it again or remove it"
            )
        pictures.append(None if path is None else str(path))
    return tuple(pictures) if any(pictures) else ()


def anchor_text(character: Character, style_text: str) -> str:
    """What the engine adds to the description in an anchor's prompt: the character's anchor
    text and the style text, each after ", " (the engine knows no style text: its prompts
    arrive final, docs/characters.md)."""
    return "".join(f", {part}" for part in (character.anchor_text.strip(), style_text.strip())
                   if part)


def character_choices(
    characters: Sequence[Character], settings: CharacterSettings, style_text: str,
    file_of: FileOf,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The session's characters and their settings as the engine takes them (spec section 13):
    (keyword arguments of ``SetRequest``, changes of its ``StyleAlignedSettings``). Every
    character is sent, named by a panel or not, so its anchors show before a panel uses it.
    A character the engine refuses (a subject word not in its description) is a
    :class:`SessionError`."""
    count = settings.anchors_per_character
    request: dict[str, Any] = {}
    try:
        request["characters"] = tuple(
            engine_request.Character(
                name=c.name, description=c.description.strip(), words=c.words,
                anchor_seeds=c.anchor_seeds, anchor_pictures=_anchor_pictures(c, count, file_of),
                anchor_text=anchor_text(c, style_text))
            for c in characters)
    except ValueError as exc:
        raise SessionError(str(exc)) from None
    return request, settings.to_dict()  # StyleAlignedSettings' fields by the same names


def _chosen_model(panels: Sequence[Panel], settings: GenerationSettings, default_model: str,
                  only: Sequence[int] | None) -> str:
    """The model a run uses, once the storyboard has panels and ``only`` names some of them."""
    if not panels:
        raise SessionError("the storyboard has no panels: add at least one")
    model = settings.model.strip() or default_model.strip()
    if not model:
        raise SessionError("no model is chosen: pick one in the model dialog")
    if only is not None:
        for i in only:
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(panels):
                raise SessionError(f"panel {i!r} does not exist (the storyboard has {len(panels)} panels)")
    return model


def plan_run(
    *,
    style: Style,
    gallery: Callable[[str], Reference | None],
    panels: Sequence[Panel],
    settings: GenerationSettings,
    outputs: Path,
    cache_dir: Path,
    file_of: FileOf,
    taken_run_ids: Iterable[str],
    only: Sequence[int] | None = None,
    default_model: str = "",
    device: str = "auto",
    dtype: str = "auto",
    characters: Sequence[Character] = (),
    character_settings: CharacterSettings | None = None,
) -> RunPlan:
    """The plan of a run of ``panels`` (all, or the indices in ``only``) as they are now.

    Prompts are ``panel prompt + ", " + style text``; ``default_model`` is used when the
    settings name no model. The run gets an id not in ``taken_run_ids`` and the folder
    ``outputs/<id>``.
    """
    model = _chosen_model(panels, settings, default_model, only)
    sources, run_styles = style_sources(style, gallery, settings, file_of)
    built = [request_panel(i, p, style.text, file_of) for i, p in enumerate(panels)]
    check_characters(panels, characters)
    with_characters, aligned = character_choices(
        characters, character_settings or CharacterSettings(), style.text, file_of)
    try:
        request = SetRequest(
            model=model,
            style=sources,
            panels=tuple(b[0] for b in built),
            sampling=settings.sampling(),
            settings=settings.style_aligned.replace(**aligned),
            micro_batch=settings.micro_batch,
            device=device,
            dtype=dtype,
            only=None if only is None else tuple(only),
            cache_dir=str(cache_dir),  # a reference picture is inverted once per session
            **settings.engine_choices(),
            **with_characters,
        )
    except ValueError as exc:
        raise SessionError(str(exc)) from None
    run_id = new_run_id(taken_run_ids)
    return RunPlan(
        run_id=run_id,
        folder=outputs / run_id,
        request=request,
        panel_ids=tuple(p.id for p in panels),
        subjects=tuple(p.prompt.strip() for p in panels),
        controls=tuple(b[1] for b in built),
        references=run_styles,
        style_text=style.text.strip(),
        settings=replace(settings, model=model),
        characters=tuple(characters),
        character_settings=character_settings or CharacterSettings(),
    )
