"""Overrides that shrink the quickstart to a few seconds on a CPU, shared by the run tests."""

from __future__ import annotations

from collections.abc import Sequence

from test_train import TINY_VIT

QUIET_LOG = ["log.progress=false", "log.trackers=[]", "log.pictures=false", "log.every=1",
             "log.diagnostics_every=0", "log.first_look=false"]
"""Every step logged; no progress bar, trackers, pictures, diagnostics or first look."""


def tiny_quickstart(*, batch: int = 4, train: int = 16, test: int = 8,
                    extra: Sequence[str] = ()) -> list[str]:
    """Tiny data (16 px, 2 views) and ViT, quiet logging, then ``extra`` (which wins)."""
    return [f"data.batch_size={batch}", "data.workers=0", "data.size=16",
            f"data.train_size={train}", f"data.test_size={test}", "views.global_views=2", *TINY_VIT,
            *QUIET_LOG, *extra]
