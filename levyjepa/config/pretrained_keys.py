"""The encoder section's ``pretrained`` keys: where an encoder's first weights come from.

``encoder.pretrained`` (a local path, or ``null``: the encoder's own random initialisation) and
``encoder.pretrained_strict`` (default ``true``) are valid for every encoder. They are not
parameters of the encoder's constructor, so :func:`split_pretrained` takes them off the section
before it is checked or built. levyjepa never downloads weights: the path is a local file (a
timm/PyTorch state dict, or a timm model folder holding one), an exported encoder folder or a
run directory; a relative path is
relative to the current directory, and :func:`absolute_pretrained` fixes it when the recipe is
loaded, so that the run's saved recipe names the same file from anywhere. Loading the weights is
:mod:`levyjepa.training.pretrained`'s.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

PRETRAINED_KEYS = ("pretrained", "pretrained_strict")
"""Keys of ``encoder`` that every encoder takes and no constructor sees."""

# what a folder must hold to be an exported encoder (levyjepa.export) or a run directory
EXPORT_MARKER, RUN_MARKER = "encoder.yaml", "config.yaml"
# the weights of a model folder in the Hugging Face hub layout (an export's timm/ folder)
HUB_WEIGHTS = ("model.safetensors", "pytorch_model.bin")

LOCAL_ONLY = ("levyjepa never downloads weights; pass a local file: a timm state dict "
              "(.safetensors or .pth), an exported levyjepa encoder folder (python -m "
              "levyjepa.export) or a levyjepa run directory")


def split_pretrained(section: Mapping[str, Any]) -> tuple[dict[str, Any], Any, Any]:
    """The encoder section without the ``pretrained`` keys, and their values.

    Args:
        section: A recipe's ``encoder`` section (a plain mapping).

    Returns:
        ``(section without PRETRAINED_KEYS, pretrained, pretrained_strict)``; ``pretrained`` is
        ``None`` and ``pretrained_strict`` ``True`` when absent (values are not checked here:
        :func:`pretrained_problem` does).
    """
    rest = {k: v for k, v in section.items() if k not in PRETRAINED_KEYS}
    return rest, section.get("pretrained"), section.get("pretrained_strict", True)


def pretrained_problem(section: Mapping[str, Any], *, need_file: bool) -> Optional[str]:
    """What is wrong with the section's ``pretrained`` keys, as one line, or ``None``.

    Args:
        section: A recipe's ``encoder`` section.
        need_file: Check that the path exists and is a state dict file, an exported encoder or a
            run directory (off where the weights come from elsewhere: a resumed run's
            checkpoint, a trained run's).
    """
    _, path, strict = split_pretrained(section)
    if not isinstance(strict, bool):
        return f"encoder.pretrained_strict must be true or false, got {strict!r}"
    if path is None:
        return None
    if not isinstance(path, str) or not path.strip():
        shown = str(path).lower() if isinstance(path, bool) else repr(path)
        return f"encoder.pretrained: {shown} is not a path: {LOCAL_ONLY}"
    if not need_file:
        return None
    found = Path(path).expanduser()
    if not found.exists():
        return (f"encoder.pretrained: '{path}' not found (a relative path is relative to the "
                f"current directory, {Path.cwd()})")
    if found.is_dir() and not any((found / m).is_file()
                                  for m in (EXPORT_MARKER, RUN_MARKER, *HUB_WEIGHTS)):
        return (f"encoder.pretrained: '{path}' is a folder but neither an exported encoder "
                f"({EXPORT_MARKER}), a run directory ({RUN_MARKER}) nor a timm model folder "
                f"({HUB_WEIGHTS[0]}); {LOCAL_ONLY}")
    return None


def absolute_pretrained(path: str) -> str:
    """``path`` (``~`` expanded) made absolute against the current directory."""
    return os.path.abspath(os.path.expanduser(path))
