"""The generator. Kept import-light: heavy modules (torch, diffusers) load where used.

The library entry points::

    from stylealigned_desktop.engine.install import style_aligned
    from stylealigned_desktop.engine.settings import StyleAlignedSettings
    from stylealigned_desktop.engine.generator import Engine
"""
