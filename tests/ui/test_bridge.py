"""The thread bridge: calls from other threads run on the UI thread, in order, none lost."""

from __future__ import annotations

import threading

from PySide6.QtCore import QThread

from stylealigned_desktop.ui.threads.bridge import FAST_MS, IDLE_MS, ThreadBridge


def test_calls_from_threads_run_on_the_ui_thread_in_order(qtbot):
    bridge = ThreadBridge()
    received = []
    ui_thread = QThread.currentThread()

    def record(thread_index, i):
        assert QThread.currentThread() is ui_thread
        received.append((thread_index, i))

    def produce(thread_index):
        for i in range(5000):
            bridge.post(record, thread_index, i)

    threads = [threading.Thread(target=produce, args=(k,)) for k in range(3)]
    bridge.wake()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    qtbot.waitUntil(lambda: len(received) == 15000, timeout=60000)
    for k in range(3):
        assert [i for t, i in received if t == k] == list(range(5000))


def test_the_timer_slows_down_when_idle_and_a_failing_call_does_not_stop_the_others(qtbot):
    bridge = ThreadBridge()
    bridge.wake()
    assert bridge._timer.interval() == FAST_MS
    ran = []
    bridge.post(lambda: 1 / 0)
    bridge.post(ran.append, "after")
    assert bridge.drain() == 2 and ran == ["after"]
    for _ in range(100):
        bridge.drain()
    assert bridge._timer.interval() == IDLE_MS
