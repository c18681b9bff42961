"""Recipes that moved: an old path a user may have typed gets one line naming the new one.

Recipes are grouped by purpose (``recipes/studies/``, ``recipes/methods/``, ``recipes/video/``),
and a recipe's GPU-sized variant (real data, the seed's ViT) is its name with ``_gpu``. The
quickstart and the seed reproductions (``recipes/image_*.yaml``, ``recipes/video_*.yaml``) did
not move.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

# old path -> new path, both relative to recipes/
MOVED_RECIPES: dict[str, str] = {
    "study_image_base.yaml": "studies/image_base.yaml",
    "study_image_levy2d.yaml": "studies/image_levy2d.yaml",
    "study_image_ijepa.yaml": "studies/image_ijepa.yaml",
    "study_image_ijepa_levy2d.yaml": "studies/image_ijepa_levy2d.yaml",
    "study_video_base.yaml": "studies/video_base.yaml",
    "study_video_levy3d.yaml": "studies/video_levy3d.yaml",
    "study_image_base_gpu.yaml": "studies/image_base_gpu.yaml",
    "study_image_levy2d_gpu.yaml": "studies/image_levy2d_gpu.yaml",
    "study_video_base_gpu.yaml": "studies/video_base_gpu.yaml",
    "study_video_levy3d_gpu.yaml": "studies/video_levy3d_gpu.yaml",
    "methods/ijepa_imagenette.yaml": "methods/ijepa_gpu.yaml",
    "methods/ijepa_levy2d_imagenette.yaml": "methods/ijepa_levy2d_gpu.yaml",
    "methods/ijepa_sigreg_imagenette.yaml": "methods/ijepa_sigreg_gpu.yaml",
    "methods/lejepa_multicrop_imagenette.yaml": "methods/lejepa_multicrop_gpu.yaml",
    "methods/vicreg_imagenette.yaml": "methods/vicreg_gpu.yaml",
    "methods/vicreg_levy2d_imagenette.yaml": "methods/vicreg_levy2d_gpu.yaml",
    "methods/vjepa.yaml": "video/vjepa.yaml",
    "methods/vjepa_levy3d.yaml": "video/vjepa_levy3d.yaml",
    "methods/vjepa_video_folder.yaml": "video/vjepa_gpu.yaml",
    "methods/vjepa_levy3d_video_folder.yaml": "video/vjepa_levy3d_gpu.yaml",
    "methods/hjepa.yaml": "video/hjepa.yaml",
    "methods/hjepa_levy3d.yaml": "video/hjepa_levy3d.yaml",
    "methods/hjepa_video_folder.yaml": "video/hjepa_gpu.yaml",
    "methods/hjepa_levy3d_video_folder.yaml": "video/hjepa_levy3d_gpu.yaml",
}


def moved_recipe(path: Path) -> Optional[str]:
    """The message for a missing recipe file that moved, or ``None``.

    ``path`` matches when it ends with an old path (``.../recipes/study_image_base.yaml``,
    ``recipes/methods/vjepa.yaml``, or the old path itself relative to ``recipes/``). The new
    path is given in the same form as the old one was typed.
    """
    typed = path.as_posix()
    for old, new in MOVED_RECIPES.items():
        for prefix in ("recipes/", ""):
            if typed == prefix + old or typed.endswith("/" + prefix + old):
                now = typed[: len(typed) - len(old)] + new
                return f"recipe file not found: {typed}: it moved to {now}"
    return None
