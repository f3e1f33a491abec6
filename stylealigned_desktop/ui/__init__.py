"""The desktop window (PySide6), one subpackage per part of it (see docs/architecture.md):
``window`` over ``gallery``, ``storyboard``, ``settings``, ``grid`` and ``dialogs``, all over
``threads`` and ``support``; ``app`` starts it."""
