"""Spies on the engine's UNet calls, for tests that check what the UNet was given."""

from __future__ import annotations


def reference_row_inputs(engine, request) -> list:
    """Generate ``request`` and return the reference row's UNet input at each step: row 0 of
    the call that records (the one the references ride in)."""
    seen = []
    original = engine._unet

    def spy(pipe, latents, t, *args, **kwargs):
        state = next(p.state for p in pipe.unet.attn_processors.values() if hasattr(p, "state"))
        if state.mode == "record":
            seen.append(latents[0].clone())
        return original(pipe, latents, t, *args, **kwargs)

    engine._unet = spy
    try:
        engine.generate(request)
    finally:
        del engine._unet
    return seen
