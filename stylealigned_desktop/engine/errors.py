"""The two ways a generation stops early (torch-free: the run's plan raises them too)."""


class GenerationCancelled(Exception):
    """Raised inside the engine when the cancel event is set; the run ends with ``Cancelled``."""


class GenerationError(RuntimeError):
    """A generation that cannot go on, with a message for the user."""


def raise_if_cancelled(cancel) -> None:
    """Checked before each step, each micro-batch and each decode (a ``threading.Event``)."""
    if cancel.is_set():
        raise GenerationCancelled()
