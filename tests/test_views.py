"""The ``views`` section: view pipelines, multi-crop, the views' seed and geometry, refusals.

Everything runs on generated images (``image_tree`` of ``conftest.py``, ``synthetic_shapes``) on
the CPU; device-made views run on CUDA too when a GPU is present.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

import levyjepa
from levyjepa.config.recipe import load_recipe
from levyjepa.core.errors import ConfigError
from levyjepa.data.build import build_splits, splits_from
from levyjepa.data.moved_keys import MOVED_TO_VIEWS

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "recipes" / "quickstart.yaml"
IMAGE = ROOT / "recipes" / "image_baseline.yaml"
VIDEO = ROOT / "recipes" / "video_base.yaml"
SHAPES = {"name": "synthetic_shapes", "size": 16, "train_size": 6, "test_size": 2}
DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


def folder(tree: Path) -> dict:
    return {"name": "image_folder", "root": str(tree)}


def multi_crop(**extra: object) -> dict:
    return {"name": "seed", "global_views": 2, "global_size": 32, "local_views": 3,
            "local_size": 16, **extra}


def load_error(recipe: Path, *overrides: str) -> str:
    with pytest.raises(ConfigError) as err:
        load_recipe(recipe, list(overrides))
    assert "\n" not in str(err.value)
    return str(err.value)


# ---- multi-crop: counts, sizes, batches ---------------------------------------------------------

def test_multi_crop_items_and_batches_on_the_cpu(image_tree: Path) -> None:
    splits = splits_from(folder(image_tree), multi_crop())
    assert splits.view_groups == ((2, 32), (3, 16))
    (global_views, local_views), label = splits.train[0]
    assert global_views.shape == (2, 3, 32, 32) and local_views.shape == (3, 3, 16, 16)
    assert global_views.dtype == local_views.dtype == torch.float32 and label == 0
    assert splits.test[0][0].shape == splits.train_eval[0][0].shape == (3, 32, 32)
    views, labels = next(iter(DataLoader(splits.train, batch_size=4)))  # the default collate
    assert [tuple(v.shape) for v in views] == [(4, 2, 3, 32, 32), (4, 3, 3, 16, 16)]
    assert labels.shape == (4,)


def test_the_lejepa_guide_geometry(image_tree: Path) -> None:
    splits = splits_from(folder(image_tree), {"name": "seed", "global_views": 2,
                                              "global_size": 224, "local_views": 6})
    assert splits.view_groups == ((2, 224), (6, 96))
    (global_views, local_views), _ = splits.train[1]
    assert global_views.shape == (2, 3, 224, 224) and local_views.shape == (6, 3, 96, 96)


def test_one_group_items_are_a_tensor_and_light_sizes_follow_the_source() -> None:
    splits = splits_from(SHAPES, {"name": "light", "global_views": 3})
    assert splits.view_groups == ((3, 16),)
    views, _ = splits.train[0]
    assert isinstance(views, torch.Tensor) and views.shape == (3, 3, 16, 16)
    multi = splits_from(SHAPES, {"name": "light", "global_views": 2, "local_views": 4,
                                 "local_size": 8})
    assert multi.view_groups == ((2, 16), (4, 8))
    (g, local), _ = multi.train[0]
    assert g.shape == (2, 3, 16, 16) and local.shape == (4, 3, 8, 8)


def test_light_views_of_natural_images_need_a_size(image_tree: Path) -> None:
    with pytest.raises(ConfigError, match="views.global_size: the data source's images have "
                                          "no one size"):
        splits_from(folder(image_tree), {"name": "light"})
    splits = splits_from(folder(image_tree), {"name": "light", "global_size": 24})
    assert splits.train[0][0].shape == (2, 3, 24, 24)


@pytest.mark.parametrize("device", DEVICES)
def test_multi_crop_made_on_the_device(image_tree: Path, device: str) -> None:
    splits = splits_from(folder(image_tree), multi_crop(on="device", load_size=24))
    assert splits.view_groups == ((2, 32), (3, 16))
    image, _ = splits.train[0]
    assert image.shape == (3, 24, 24) and image.dtype == torch.uint8
    module = splits.device_views.to(device)
    batch = torch.stack([splits.train[i][0] for i in range(4)]).to(device)
    global_views, local_views = module(batch, step=5)
    assert global_views.shape == (4, 2, 3, 32, 32) and local_views.shape == (4, 3, 3, 16, 16)
    assert global_views.device.type == local_views.device.type == device
    again = module(batch, step=5)
    assert torch.equal(again[0], global_views) and torch.equal(again[1], local_views)
    assert not torch.equal(module(batch, step=6)[1], local_views)
    one = splits_from(folder(image_tree), multi_crop(on="device", load_size=24, local_views=0))
    only = one.device_views.to(device)(batch, step=5)
    assert isinstance(only, torch.Tensor)  # one group: a tensor, as before multi-crop
    torch.testing.assert_close(only, global_views)  # the global views do not see the local ones


def test_device_local_views_have_their_own_stream(image_tree: Path) -> None:
    module = splits_from(folder(image_tree), multi_crop(on="device", load_size=24,
                                                        global_scale=[0.05, 0.3],
                                                        local_views=2)).device_views
    images = torch.zeros(4, 3, 24, 24, dtype=torch.uint8)
    g, local = module.sample(images, step=0), module.sample_local(images, step=0)
    assert g.boxes.shape == local.boxes.shape  # same laws and counts here, other draws
    assert not torch.equal(g.boxes, local.boxes)
    area = (local.boxes[:, 2:] - local.boxes[:, :2]).prod(dim=1) / (24 * 24)
    assert area.max() <= 0.35  # local_scale (0.05, 0.3), pixel rounding aside


# ---- determinism: per (seed, epoch, index), global views first -----------------------------------

def test_views_are_a_function_of_seed_epoch_and_index(image_tree: Path) -> None:
    splits = splits_from(folder(image_tree), multi_crop(), seed=3)
    (g0, l0), _ = splits.train[2]
    (g1, l1), _ = splits.train[2]
    assert torch.equal(g0, g1) and torch.equal(l0, l1)
    splits.train[5]  # reading other items in between changes nothing
    assert torch.equal(splits.train[2][0][1], l0)
    splits.train.set_epoch(1)
    (g2, l2), _ = splits.train[2]
    assert not torch.equal(g0, g2) and not torch.equal(l0, l2)
    splits.train.set_epoch(0)
    other = splits_from(folder(image_tree), multi_crop(), seed=4)
    assert not torch.equal(other.train[2][0][1], l0)
    single = splits_from(folder(image_tree), multi_crop(local_views=0), seed=3)
    assert torch.equal(single.train[2][0], g0)  # the global views are drawn first


def test_the_views_seed_is_the_recipes_unless_set(image_tree: Path) -> None:
    def splits(recipe_seed: int, **views: object):
        cfg = OmegaConf.create({"seed": recipe_seed, "data": {**folder(image_tree), "batch_size": 2,
                                                        "workers": 0},
                                "views": {"name": "seed", "global_size": 16, **views}})
        return build_splits(cfg)

    first = splits(0).train[1][0]
    assert torch.equal(splits(7, seed=0).train[1][0], first)
    assert not torch.equal(splits(7).train[1][0], first)
    assert splits(7).train.seed == 7 and splits(7, seed=2).train.seed == 2


def test_a_plugin_pipeline_without_a_seed_and_inferred_view_groups(image_tree: Path) -> None:
    from levyjepa.data.loading.splits import DataSplits
    from levyjepa.data.views.multi_view import TransformedDataset
    from levyjepa.data.views.transforms import center_view

    if "_test_centre" not in levyjepa.VIEWS:
        @levyjepa.VIEWS.register("_test_centre")
        class Centre:  # one centred view per item, no seed, no view_groups stated
            def __init__(self, *, side: int = 8) -> None:
                self.transform = center_view(side)

            def __call__(self, source):
                images, labels = source.train
                train = TransformedDataset(images, labels, transform=lambda x: self.transform(
                    x).unsqueeze(0))
                return DataSplits(train=train, test=None, num_classes=source.num_classes)

    splits = splits_from(folder(image_tree), {"name": "_test_centre", "side": 12})
    assert splits.view_groups == ((1, 12),)  # read off the first item
    assert load_recipe(QUICKSTART, ["views={name: _test_centre, side: 32}"]).views.side == 32


# ---- view_groups of every kind of source ---------------------------------------------------------

def test_video_sources_state_their_view_groups() -> None:
    splits = splits_from({"name": "synthetic_video", "size": 16, "views": 3, "train_size": 2,
                          "test_size": 0, "frames_per_clip": 4, "video_frames": 8}, None)
    assert splits.view_groups == ((3, 16),)


# ---- refusals ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("recipe", "override", "expected"), [
    (QUICKSTART, "data.views=3", "data.views moved to views.global_views"),
    (QUICKSTART, "data.crop_scale=[0.2,1.0]", "data.crop_scale moved to views.global_scale"),
    (IMAGE, "data.augment_on=device", "data.augment_on moved to views.on"),
    (IMAGE, "data.load_size=24", "data.load_size moved to views.load_size"),
    (IMAGE, "data.size=64", "data.size moved to views.global_size"),
    (IMAGE, "data.seed=3", "data.seed moved to views.seed (unset: the recipe's seed)"),
    (IMAGE, "data.blur_p=0.2", "data.blur_p moved to views.blur_p"),
    (IMAGE, "data.views=2", "data.views moved to views.global_views"),
])
def test_moved_data_keys_name_their_new_key(recipe: Path, override: str, expected: str) -> None:
    assert f": {expected}" in load_error(recipe, override)


def test_every_moved_key_is_refused_on_a_natural_image_source(image_tree: Path) -> None:
    for key in MOVED_TO_VIEWS:
        new = MOVED_TO_VIEWS[key]
        with pytest.raises(ConfigError, match=f"^data.{key} moved to views.{new}"):
            splits_from({**folder(image_tree), key: 1}, {"name": "seed"})


def test_a_recipe_file_with_a_moved_key_is_refused(tmp_path: Path) -> None:
    old = tmp_path / "old.yaml"
    old.write_text(f"base: {QUICKSTART}\ndata: {{views: 4}}\n")
    assert load_error(old).endswith("data.views moved to views.global_views")


def test_generated_sources_keep_their_size_and_seed() -> None:
    cfg = load_recipe(QUICKSTART, ["data.size=24", "encoder.img_size=24", "data.seed=5"])
    assert cfg.data.size == 24 and cfg.data.seed == 5


def test_unknown_view_pipeline_lists_the_known_ones() -> None:
    err = load_error(QUICKSTART, "views.name=sead")
    assert err.endswith("views: unknown view pipeline 'sead' (did you mean 'seed'?); known: "
                       f"{', '.join(levyjepa.VIEWS.names())}")
    assert {"light", "seed"} <= set(levyjepa.VIEWS.names())


def test_bad_views_values_are_refused_when_the_recipe_loads() -> None:
    assert load_error(QUICKSTART, "views.local_views=-1").endswith(
        "views.local_views must be an integer >= 0, got -1")
    assert load_error(IMAGE, "views.on=gpu").endswith(
        "views.on must be one of cpu, device, got 'gpu'")
    assert "unknown parameter 'on' for view pipeline 'light'" in load_error(
        QUICKSTART, "views.on=device")


def test_a_video_source_with_a_views_section_is_refused() -> None:
    err = load_error(VIDEO, "data.root=/nowhere", "views={name: light, global_views: 2}")
    assert err.endswith("views: data source 'video_folder' makes its own views (data.views, "
                        "data.crop_scale, ...); remove the views section (views=null on the "
                        "command line)")
    with pytest.raises(ConfigError, match="makes its own views"):
        splits_from({"name": "synthetic_video", "train_size": 2}, {"name": "light"})


def test_an_image_source_without_a_views_section_is_refused(image_tree: Path) -> None:
    err = load_error(QUICKSTART, "views=null")
    assert err.endswith("views: data source 'synthetic_shapes' makes plain images and needs a "
                        "views section saying how training views are made, e.g. views: {name: "
                        "light, global_views: 2} (generated images) or views: {name: seed, "
                        "global_views: 4, global_size: 128} (natural images); view pipelines: "
                        f"{', '.join(levyjepa.VIEWS.names())}")
    with pytest.raises(ConfigError, match="needs a views section"):
        splits_from(folder(image_tree), None)
