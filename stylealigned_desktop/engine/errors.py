"""Which errors are the user's to act on (a bad LoRA or picture, a server's refusal) and which
are faults of the program; no torch, so the command line and the client can ask cheaply."""

from __future__ import annotations


def is_expected_error(error: BaseException) -> bool:
    """True for an error whose one-line message says everything: input the engine refuses
    (``ValueError`` and its kinds: LoraError, PictureError, ControlError...) and errors marked
    ``expected`` (GenerationError, the client's ServerError). Log these as one line; a
    traceback is for the others, which are bugs."""
    return isinstance(error, ValueError) or bool(getattr(error, "expected", False))
