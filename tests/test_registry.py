"""The component registry: register, build, and every way of getting it wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import pytest
import torch
from test_cifar_source import write_cifar

import levyjepa
from levyjepa import DATA, ENCODERS, METHODS, PRIORS, Registry
from levyjepa.core.errors import ConfigError
from levyjepa.data.build import source_kind, splits_from
from levyjepa.data.loading.image_source import ImageSource
from levyjepa.data.shards.writer import write_shards


@pytest.fixture
def reg() -> Registry:
    reg = Registry("widget")

    @reg.register("gear")
    class Gear:
        def __init__(self, *, teeth: int, radius: float = 1.0,
                     kind: Literal["spur", "bevel"] = "spur", tags: Optional[list[str]] = None,
                     size: tuple[int, int] = (1, 2)) -> None:
            self.teeth, self.radius, self.kind = teeth, radius, kind
            self.tags, self.size = tags, size

    @reg.register("spring")
    def spring(*, stiffness: float = 2.0) -> dict:
        return {"stiffness": stiffness}

    return reg


def test_register_returns_object_unchanged_and_builds(reg: Registry) -> None:
    gear = reg.build({"name": "gear", "teeth": 12, "radius": 3})
    assert (gear.teeth, gear.radius, gear.kind) == (12, 3, "spur")
    assert reg.build({"name": "spring"}) == {"stiffness": 2.0}
    assert reg.names() == ["gear", "spring"] and "gear" in reg and len(reg) == 2

    def f() -> None: ...

    assert reg.register("f")(f) is f


def test_unknown_name_lists_known_and_closest(reg: Registry) -> None:
    with pytest.raises(ConfigError) as err:
        reg.build({"name": "gaer", "teeth": 1}, where="encoder")
    msg = str(err.value)
    assert "\n" not in msg
    assert "unknown widget 'gaer'" in msg and "did you mean 'gear'" in msg
    assert "known: gear, spring" in msg and msg.startswith("encoder: ")


def test_unknown_kwarg_names_kwarg_component_and_valid_parameters(reg: Registry) -> None:
    with pytest.raises(ConfigError) as err:
        reg.build({"name": "gear", "teeth": 3, "radiuss": 2.0})
    msg = str(err.value)
    assert "unknown parameter 'radiuss'" in msg and "widget 'gear'" in msg
    assert "did you mean 'radius'" in msg
    assert "valid parameters: teeth, radius, kind, tags, size" in msg


@pytest.mark.parametrize(
    ("key", "value", "expects"),
    [
        ("teeth", "many", "int"),
        ("teeth", 2.5, "int"),
        ("teeth", True, "int"),
        ("radius", "big", "float"),
        ("kind", "worm", "Literal"),
        ("tags", "a", "list"),
        ("tags", [1], "list"),
        ("size", [1, 2, 3], "tuple"),
    ],
)
def test_ill_typed_kwarg_is_refused(reg: Registry, key: str, value: object, expects: str) -> None:
    section = {"name": "gear", "teeth": 3, key: value}
    pattern = rf"parameter '{key}' of widget 'gear' expects .*{expects}"
    with pytest.raises(ConfigError, match=pattern):
        reg.build(section)


def test_well_typed_values_pass(reg: Registry) -> None:
    gear = reg.build({"name": "gear", "teeth": 3, "radius": 2, "tags": ["x"], "size": [3, 4],
                      "kind": "bevel"})
    assert gear.size == [3, 4] and gear.kind == "bevel"


def test_missing_required_kwarg(reg: Registry) -> None:
    with pytest.raises(ConfigError, match="widget 'gear' needs parameter.*teeth"):
        reg.build({"name": "gear"})


def test_missing_name(reg: Registry) -> None:
    with pytest.raises(ConfigError, match="needs a 'name' key; known: gear, spring"):
        reg.build({"teeth": 3})


def test_duplicate_registration_is_an_error(reg: Registry) -> None:
    with pytest.raises(ValueError, match="widget 'gear' is already registered"):
        reg.register("gear")(lambda: None)


def test_runtime_kwargs_cannot_be_set_by_recipe(reg: Registry) -> None:
    assert reg.build({"name": "spring"}, stiffness=5.0) == {"stiffness": 5.0}
    with pytest.raises(ConfigError, match="'stiffness' is set by the runner"):
        reg.build({"name": "spring", "stiffness": 1.0}, stiffness=5.0)
    with pytest.raises(ConfigError, match="parameter 'stiffness' of widget 'spring' expects"):
        reg.build({"name": "spring"}, stiffness="stiff")  # runtime values are type-checked too


def test_declared_runtime_parameters_are_the_runners_alone(reg: Registry) -> None:
    """A parameter declared with ``register(runtime=...)`` is refused in a recipe when the
    section is checked (before any build), is not listed among the valid parameters, is not
    reported missing, and is accepted from the runner."""

    @reg.register("clock", runtime=("ticks",))
    def clock(*, ticks: int, hands: int = 2) -> tuple[int, int]:
        return ticks, hands

    with pytest.raises(ConfigError, match="enc: 'ticks' is set by the runner; remove it"):
        reg.check({"name": "clock", "ticks": 3}, where="enc")
    assert reg.check({"name": "clock"}) == ("clock", {})
    with pytest.raises(ConfigError) as err:
        reg.check({"name": "clock", "hnads": 3})
    assert str(err.value).endswith("valid parameters: hands")
    assert reg.build({"name": "clock", "hands": 3}, ticks=60) == (60, 3)


def test_encoders_declare_the_token_projector_switch_as_runtime() -> None:
    for name in ("vit", "video_vit"):
        with pytest.raises(ConfigError, match="'with_tokens_proj' is set by the runner"):
            ENCODERS.check({"name": name, "with_tokens_proj": False}, where="encoder")
        with pytest.raises(ConfigError) as err:
            ENCODERS.check({"name": name, "dpeth": 1}, where="encoder")
        assert "with_tokens_proj" not in str(err.value) and "depth" in str(err.value)


def test_constructor_value_errors_become_config_errors() -> None:
    pattern = r"method.sigreg: prior 'sigreg': .*slices must be >= 1"
    with pytest.raises(ConfigError, match=pattern):
        PRIORS.build({"name": "sigreg", "slices": 0}, where="method.sigreg")


def test_package_exports_the_registries() -> None:
    assert levyjepa.ENCODERS is ENCODERS and levyjepa.PRIORS is PRIORS and levyjepa.DATA is DATA
    assert levyjepa.METHODS is METHODS
    assert {"vit"} <= set(ENCODERS.names())
    assert {"sigreg"} <= set(PRIORS.names())
    assert {"synthetic_shapes"} <= set(DATA.names())
    assert {"lejepa", "vicreg"} <= set(METHODS.names())


# ---- every registered component, built with its defaults or tiny settings -------------------

TINY_ENCODER = {"img_size": 16, "patch_size": 4, "embed_dim": 32, "depth": 1, "num_heads": 2,
                "emb_dim": 32, "pool_heads": 2, "proj_hidden": 32, "proj_dim": 8,
                "num_frames": 4, "tubelet_size": 2}  # the last two: clip encoders only


@pytest.mark.parametrize("name", ENCODERS.names())
def test_every_encoder_honours_the_output_contract(name: str) -> None:
    tiny = {k: v for k, v in TINY_ENCODER.items() if k in ENCODERS.parameters(name)}
    enc = ENCODERS.build({"name": name, **tiny}, with_tokens_proj=True)
    n, v = 3, 2
    frames = (tiny["num_frames"],) if "num_frames" in tiny else ()  # clips (N, V, C, T, H, W)
    out = enc(torch.randn(n, v, 3, *frames, 16, 16))
    grid = out.tokens.shape[1:-1]
    assert out.emb.shape == (n * v, enc.emb_dim)
    assert out.proj.shape == (v, n, 8)
    assert out.tokens.shape[0] == n * v and len(grid) == 2 + len(frames)
    assert out.tokens_proj.shape == (n * v, *grid, 8)
    out.proj.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in enc.parameters() if p.grad is not None)
    no_tokens = ENCODERS.build({"name": name, **tiny}, with_tokens_proj=False)
    assert no_tokens(torch.randn(n, v, 3, *frames, 16, 16)).tokens_proj is None


# Every registered prior (plugins included) is exercised in tests/test_priors_registry.py,
# with the input each one reads.


@pytest.mark.parametrize("name", DATA.names())
def test_every_data_source_yields_views_and_labels(name: str, image_tree: Path,
                                                   video_tree: Path, tmp_path: Path) -> None:
    params = DATA.parameters(name)
    # sources reading files get the generated image tree or video clips of conftest.py
    clips = "frames_per_clip" in params
    files = {"root": str(video_tree / "train"), "test_root": str(video_tree / "val"),
             "frames_per_clip": 4, "frame_step": 1} if clips else {"root": str(image_tree)}
    if "train_list" in params:  # clip lists: "path label" lines naming the same clips
        lists = {}
        for split in ("train", "val"):
            classes = sorted(d.name for d in (video_tree / split).iterdir() if d.is_dir())
            lines = [f"{clip} {label}" for label, c in enumerate(classes)
                     for clip in sorted((video_tree / split / c).iterdir())]
            lists[split] = tmp_path / f"{split}.csv"
            lists[split].write_text("\n".join(lines) + "\n")
        files = {"train_list": str(lists["train"]), "val_list": str(lists["val"]),
                 "frames_per_clip": 4, "frame_step": 1}
    if name == "cifar":  # tiny files in torchvision's format
        write_cifar(tmp_path, "cifar100")
        files = {"root": str(tmp_path)}
    if name.endswith("_shards"):  # the same files written as tar shards (train-*, val-*.tar)
        write_shards(video_tree if clips else image_tree, tmp_path / "shards", shard_size=4)
        files = {**{k: v for k, v in files.items() if k != "test_root"},
                 "root": str(tmp_path / "shards")}
    side = 32 if name == "scenes" else 16  # scenes are 32 px at least
    tiny = {k: v for k, v in {"size": side, "views": 3, "train_size": 20, "test_size": 10,
                              **files}.items() if k in params}
    views = None  # an image source's views: light for generated images, the seed's otherwise
    if source_kind(name) is ImageSource:
        views = ({"name": "light", "global_views": 3} if "size" in params
                 else {"name": "seed", "global_size": side, "global_views": 3})
    splits = splits_from({"name": name, **tiny}, views)
    assert splits.view_groups == ((3, side),)
    frames = (4,) if clips else ()
    views, label = splits.train[0]
    assert views.shape == (3, 3, *frames, side, side) and views.dtype == torch.float32
    assert 0 <= label < splits.num_classes
    image, label = splits.test[0]
    assert image.shape == (3, *frames, side, side)
