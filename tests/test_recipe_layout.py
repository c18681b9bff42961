"""Recipes by purpose: the top level holds the quickstart and the seed reproductions, studies and
video methods have their folders, a GPU-sized variant is its CPU recipe's name with ``_gpu``,
and an old path gets one line naming the new one."""

from __future__ import annotations

from pathlib import Path

import pytest

from levyjepa.config.moved_recipes import MOVED_RECIPES, moved_recipe
from levyjepa.run import main

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
SEED_REPRODUCTIONS = {"image_base", "image_baseline", "image_levy2d", "image_noinv_baseline",
                      "image_noinv_levy2d", "video_base", "video_baseline", "video_levy3d"}


def test_the_top_level_holds_the_quickstart_and_the_seed_reproductions() -> None:
    assert {p.stem for p in RECIPES.glob("*.yaml")} == {"quickstart", *SEED_REPRODUCTIONS}
    folders = {p.name for p in RECIPES.iterdir() if p.is_dir()}
    assert folders == {"methods", "scale", "studies", "video"}


def test_every_gpu_variant_is_named_after_its_cpu_recipe() -> None:
    recipes = sorted(RECIPES.rglob("*.yaml"))
    for path in recipes:
        assert not path.stem.endswith(("_imagenette", "_video_folder")), path
        if path.stem.endswith("_gpu"):
            assert path.with_name(path.stem[: -len("_gpu")] + ".yaml").is_file(), path
    assert sum(p.stem.endswith("_gpu") for p in recipes) >= 10


@pytest.mark.parametrize("old", sorted(MOVED_RECIPES))
def test_an_old_path_names_its_new_path(old: str, capsys: pytest.CaptureFixture[str]) -> None:
    new = RECIPES / MOVED_RECIPES[old]
    assert new.is_file() and not (RECIPES / old).exists()
    assert main([f"recipes/{old}", "--print-config"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"levyjepa: error: recipe file not found: recipes/{old}: it moved to "
                   f"recipes/{MOVED_RECIPES[old]}")


def test_the_new_path_keeps_the_form_the_old_one_was_typed_in() -> None:
    typed = Path("/home/me/levyjepa/recipes/study_video_levy3d.yaml")
    assert moved_recipe(typed) == (f"recipe file not found: {typed}: it moved to "
                                   "/home/me/levyjepa/recipes/studies/video_levy3d.yaml")
    assert moved_recipe(Path("methods/hjepa.yaml")).endswith("it moved to video/hjepa.yaml")
    assert moved_recipe(Path("recipes/nothing.yaml")) is None
    assert moved_recipe(Path("recipes/quickstart.yaml")) is None
