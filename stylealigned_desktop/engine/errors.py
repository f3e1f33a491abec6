"""How a generation stops early, and which errors are the user's to act on (a bad LoRA or
picture, a server's refusal) rather than faults of the program. No torch: the run's plan, the
command line and the client ask cheaply."""

from __future__ import annotations


class GenerationCancelled(Exception):
    """Raised inside the engine when the cancel event is set; the run ends with ``Cancelled``."""


class GenerationError(RuntimeError):
    """A generation that cannot go on, with a message for the user."""

    expected = True  # is_expected_error: one line in the log, no traceback


def raise_if_cancelled(cancel) -> None:
    """Checked before each step, each micro-batch and each decode (a ``threading.Event``)."""
    if cancel.is_set():
        raise GenerationCancelled()


def is_expected_error(error: BaseException) -> bool:
    """True for an error whose one-line message says everything: input the engine refuses
    (``ValueError`` and its kinds: LoraError, PictureError, ControlError...) and errors marked
    ``expected`` (GenerationError, the client's ServerError). Log these as one line; a
    traceback is for the others, which are bugs."""
    return isinstance(error, ValueError) or bool(getattr(error, "expected", False))
