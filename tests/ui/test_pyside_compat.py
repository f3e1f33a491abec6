"""The PySide6 6.12 / Python 3.11 reference-count workaround (see ui/pyside_compat.py)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# Thousands of void calls and signal emissions: without the workaround, an affected
# interpreter aborts with "deallocating None" / "deallocating True or False".
HAMMER = textwrap.dedent("""
    import os, sys
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    {prelude}
    from PySide6.QtCore import QObject, Signal
    from PySide6.QtWidgets import QApplication, QLabel
    app = QApplication([])
    label = QLabel()
    class Sender(QObject):
        changed = Signal(object)
    sender = Sender()
    sender.changed.connect(label.setText)
    for i in range(20000):
        label.setText("x")
        sender.changed.emit("y")
        app.processEvents()
    print("survived")
""")


def run(prelude: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", HAMMER.format(prelude=prelude)],
                          capture_output=True, text=True, timeout=120)


def test_the_window_survives_many_void_calls_and_emits():
    result = run("import stylealigned_desktop.ui")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "survived" in result.stdout


def test_the_workaround_is_needed_exactly_where_it_is_applied():
    from stylealigned_desktop.ui import pyside_compat

    bare = run("")
    if pyside_compat.affected():
        assert bare.returncode != 0 and "dealloc" in bare.stderr
    else:
        assert bare.returncode == 0
