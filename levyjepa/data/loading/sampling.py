"""Epoch-seeded shuffling, identical on every process."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

from levyjepa.data.views.multi_view import item_seed


class EpochShuffleSampler(Sampler[int]):
    """A random permutation of ``range(size)`` that depends only on ``(seed, epoch)``.

    Every process draws the same order (Accelerate then gives each its slice of every batch),
    and a resumed run can skip the batches it has already seen.

    Args:
        size: Dataset length.
        seed: Base seed.
    """

    def __init__(self, size: int, *, seed: int) -> None:
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose permutation ``__iter__`` yields."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        gen = torch.Generator().manual_seed(item_seed(self.seed, self.epoch, -1))
        return iter(torch.randperm(self.size, generator=gen).tolist())

    def __len__(self) -> int:
        return self.size
