"""Checks of constructor arguments shared by components (one-line ``ValueError`` naming the key)."""

from __future__ import annotations


def check_positive_int(name: str, value: int) -> None:
    """Refuse ``value`` unless it is a positive ``int`` (not a ``bool``).

    Raises:
        ValueError: naming ``name`` and the value.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def float_pair(name: str, value: tuple[float, float]) -> tuple[float, float]:
    """``value`` as a pair of floats ``(low, high)``.

    Raises:
        ValueError: naming ``name`` when ``value`` does not have two items.
    """
    if len(value) != 2:
        raise ValueError(f"{name} must be [low, high], got {list(value)}")
    return float(value[0]), float(value[1])
