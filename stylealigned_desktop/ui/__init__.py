"""The desktop window (PySide6): widgets, the worker-thread bridge and dialogs."""
