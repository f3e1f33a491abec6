"""Data shipped with the app (style presets, evaluation sets, preview factors, icons).

Installed as the package ``stylealigned_desktop.resources``; read it with
``importlib.resources.files("stylealigned_desktop.resources")``.
"""
