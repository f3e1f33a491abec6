"""The main window: its docks, menus and command table, the run bar, and the controllers that do
its jobs (the session, runs, the grid's pictures, exports, consistency scores, control maps)
through the ``Host`` interface.

Imports every other ``ui`` subpackage (their ``__init__`` names only); none imports it."""

from .main_window import MainWindow

__all__ = ["MainWindow"]
