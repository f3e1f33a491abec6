"""Frozen entry point of ``stylealigned`` (the command line).

PyInstaller runs this file as ``__main__`` with no parent package, so it imports the app
absolutely; the console entry points in pyproject.toml name the same ``main``.
"""

from stylealigned_desktop.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
