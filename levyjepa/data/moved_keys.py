"""``data`` keys of image sources that moved to the ``views`` section, refused with their new key.

An image source (``image_folder``, ``imagenette``, ``synthetic_shapes``, ``scenes``) says where
images come from; how training views are made moved to the recipe's ``views`` section. A recipe
or override that still sets such a key on an image source that no longer takes it is refused
with one line naming the new key (``data.views moved to views.global_views``). Video sources
keep their own views, so their ``data.views``, ``data.crop_scale``, ... are not refused; nor
are ``data.size`` and ``data.seed`` of the generated sources (the rendered images' side and
seed).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from levyjepa.core.errors import ConfigError

MOVED_TO_VIEWS: dict[str, str] = {
    "views": "global_views",
    "crop_scale": "global_scale",
    "color_jitter": "color_jitter",
    "color_jitter_p": "color_jitter_p",
    "grayscale_p": "grayscale_p",
    "blur_kernel": "blur_kernel",
    "blur_sigma": "blur_sigma",
    "blur_p": "blur_p",
    "solarize_threshold": "solarize_threshold",
    "solarize_p": "solarize_p",
    "flip_p": "flip_p",
    "augment_on": "on",
    "load_size": "load_size",
    "size": "global_size",
    "seed": "seed",
}
"""Old ``data`` key of an image source -> its key in the ``views`` section."""

_NOTES = {"seed": " (unset: the recipe's seed)",
          "size": " (the side of the views)"}


def refuse_moved_data_keys(data: Mapping[str, Any], *, accepted: Collection[str]) -> None:
    """Raise if the ``data`` section of an image source sets a key that moved to ``views``.

    Args:
        data: The recipe's ``data`` section.
        accepted: The parameters the data source takes (a key it still takes is its own).

    Raises:
        ConfigError: ``data.<key> moved to views.<new key>``.
    """
    for key in data:
        if key in MOVED_TO_VIEWS and key not in accepted:
            raise ConfigError(f"data.{key} moved to views.{MOVED_TO_VIEWS[key]}"
                              f"{_NOTES.get(key, '')}")
