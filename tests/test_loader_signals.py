"""Loader workers and stop signals (``levyjepa.data.loading.loader_options``): a SIGINT or
SIGTERM from anyone but the main process is ignored (a terminal or a cluster signals the whole
process group; the training loop decides when to stop); a SIGTERM from the main process ends
the worker *by the signal*, as without the handler: ``multiprocessing`` and the DataLoader end
leftover workers that way at exit, and an ignored SIGTERM would hang the exit, an exit status
143 would make the DataLoader report a failed worker."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import pytest

from levyjepa.data.loading.loader_options import ignore_stop_signals


def _worker(ready) -> None:
    ignore_stop_signals(0)
    ready.set()
    time.sleep(60)


@pytest.mark.skipif(not hasattr(signal, "sigwaitinfo"), reason="SIGTERM keeps its default "
                    "action in workers where sigwaitinfo does not exist (macOS, Windows)")
def test_a_worker_ignores_others_signals_and_dies_of_its_parents_sigterm() -> None:
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    worker = context.Process(target=_worker, args=(ready,), daemon=True)
    worker.start()
    assert ready.wait(30)
    sender = os.fork()
    if sender == 0:  # another process of the group, as a terminal's Ctrl-C or a scheduler
        os.kill(worker.pid, signal.SIGTERM)
        os.kill(worker.pid, signal.SIGINT)
        os._exit(0)
    os.waitpid(sender, 0)
    time.sleep(0.3)
    assert worker.is_alive()
    worker.terminate()  # SIGTERM from the parent
    worker.join(10)
    assert worker.exitcode == -signal.SIGTERM
