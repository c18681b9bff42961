"""Loader workers and stop signals (``levyjepa.data.loading.loader_options``): a SIGINT from
another process of the group (a terminal's Ctrl-C) is ignored, the training loop decides when to
stop; a SIGTERM from the main process ends the worker *by the signal*, its default action:
``multiprocessing`` and the DataLoader end leftover workers that way at exit, and an ignored
SIGTERM would hang the exit."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

from levyjepa.data.loading.loader_options import ignore_stop_signals


def _worker(ready) -> None:
    ignore_stop_signals(0)
    ready.set()
    time.sleep(60)


def test_a_worker_ignores_ctrl_c_and_dies_of_its_parents_sigterm() -> None:
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    worker = context.Process(target=_worker, args=(ready,), daemon=True)
    worker.start()
    assert ready.wait(30)
    sender = os.fork()
    if sender == 0:  # another process of the group, as a terminal's Ctrl-C
        os.kill(worker.pid, signal.SIGINT)
        os._exit(0)
    os.waitpid(sender, 0)
    time.sleep(0.3)
    assert worker.is_alive()
    worker.terminate()  # SIGTERM from the parent
    worker.join(10)
    assert worker.exitcode == -signal.SIGTERM
