"""The storyboard document: panels, references, styles, history, autosave (no Qt, no torch).

Import the submodules you need (``from stylealigned_desktop.session.model import Session``);
this package file stays empty of imports so importing it costs nothing.
"""
