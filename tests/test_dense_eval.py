"""The dense tasks of ``python -m levyjepa.eval`` on a tiny run, and the ``scenes`` source."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_train import ROOT, tiny, tiny_data

from levyjepa.config.recipe import load_recipe
from levyjepa.core.errors import ConfigError
from levyjepa.core.registry import DATA, ENCODERS
from levyjepa.data.build import splits_from
from levyjepa.data.generated.scene_images import TEST_START, largest_shape_class
from levyjepa.data.generated.scenes import render_scenes
from levyjepa.eval.command import main, parse_overrides
from levyjepa.eval.dense_features import clip_field, image_fields, pixel_field
from levyjepa.eval.tasks import parse_tasks
from levyjepa.training.loop import train

IMAGE_RECIPE = ROOT / "recipes" / "studies" / "image_levy2d.yaml"
SMALL_DENSE = ["seg_train=16", "seg_test=8", "seg_iterations=20", "progress=false"]


def test_largest_shape_class_by_hand() -> None:
    semantic = torch.tensor([[[0, 1, 1], [0, 3, 3], [0, 3, 0]],    # class 2 has 3 pixels
                             [[2, 2, 0], [1, 1, 0], [0, 0, 0]]])   # tie 1 vs 0: smaller wins
    assert largest_shape_class(semantic, 3).tolist() == [2, 0]


def test_scenes_source_labels_and_disjoint_test_split() -> None:
    splits = splits_from({"name": "scenes", "train_size": 12, "test_size": 6, "classes": 4,
                          "shapes": [2, 3], "seed": 3}, {"name": "light", "global_views": 2})
    views, label = splits.train[0]
    assert views.shape == (2, 3, 32, 32) and splits.num_classes == 4
    scenes = render_scenes(12, seed=3, classes=4, shapes=(2, 3))
    expected = largest_shape_class(scenes.semantic, 4)
    assert [int(splits.train_eval[i][1]) for i in range(12)] == expected.tolist()
    assert label == expected[0]
    test = render_scenes(6, seed=3, classes=4, shapes=(2, 3), first=TEST_START)
    assert not torch.equal(test.images, scenes.images[:6])
    assert [int(splits.test[i][1]) for i in range(6)] == largest_shape_class(
        test.semantic, 4).tolist()


def test_scenes_source_refuses_a_small_size() -> None:
    with pytest.raises(ValueError, match="size"):
        DATA.build({"name": "scenes", "size": 16}, where="data")


def test_parse_tasks_orders_and_refuses_unknown() -> None:
    assert parse_tasks("tracking,segmentation") == ("segmentation", "tracking")
    assert parse_tasks(["classification"]) == ("classification",)
    with pytest.raises(ConfigError, match="unknown task 'segmentaton'; valid: classification"):
        parse_tasks("segmentaton")
    with pytest.raises(ConfigError, match="features='tok'.*valid: tokens, tokens_proj"):
        parse_overrides(["features=tok"])


def test_pixel_field_is_the_patch_pixels() -> None:
    images = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    field = pixel_field(images, patch_size=4)
    assert field.shape == (2, 2, 2, 48)
    assert torch.allclose(field[1, 0, 1], images[1, :, 0:4, 4:8].reshape(-1).float() / 255)


def test_video_encoder_fields_stand_for_the_first_frame_of_each_tubelet() -> None:
    torch.manual_seed(0)
    encoder = ENCODERS.build({"name": "video_vit", "arch": "vit_small", "img_size": 16,
                              "num_frames": 4, "patch_size": 8, "tubelet_size": 2,
                              "embed_dim": 16, "depth": 1, "num_heads": 2, "emb_dim": 8,
                              "pool_heads": 2, "proj_hidden": 8, "proj_dim": 4},
                             where="encoder", with_tokens_proj=True)
    frames = torch.randint(0, 256, (4, 16, 16, 3), dtype=torch.uint8)
    field, index = clip_field(encoder, frames)
    assert field.shape == (2, 2, 2, 16) and index.tolist() == [0, 2]
    proj, _ = clip_field(encoder, frames, which="tokens_proj")
    assert proj.shape == (2, 2, 2, 4)
    still = image_fields(encoder, frames[:2].permute(0, 3, 1, 2))  # a still clip per image
    assert still.shape == (2, 2, 2, 16)
    with pytest.raises(ValueError, match="clips of 4 frames, got 3"):
        clip_field(encoder, frames[:3])


@pytest.fixture(scope="module")
def image_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("dense") / "run"
    cfg = load_recipe(IMAGE_RECIPE, tiny(run, "trainer.max_steps=2",
                                         data=tiny_data(IMAGE_RECIPE, run, None)))
    train(cfg)
    return run


def test_segmentation_task_writes_keys_baselines_and_pictures(image_run: Path,
                                                             capsys) -> None:
    import json

    assert main([str(image_run), "task=segmentation,classification", *SMALL_DENSE,
                 "log.trackers=[tensorboard]"]) == 0
    line = capsys.readouterr().out
    assert "segmentation/miou" in line and "untrained" in line and "pixels" in line
    result = json.loads((image_run / "eval.json").read_text())
    assert result["tasks"] == ["classification", "segmentation"]
    for key in ("segmentation/miou", "segmentation/pixel_acc", "classification/knn_top1",
                "classification/linear_top1"):
        assert 0.0 <= result[key] <= 1.0
    for source in ("untrained", "pixels"):
        assert 0.0 <= result["baselines"][source]["segmentation/miou"] <= 1.0
    assert result["segmentation"]["patch"] == 8 and result["segmentation"]["classes"] == 5
    picture = Path(result["pictures"]["eval_segmentation"])
    assert picture.is_file() and picture.read_bytes()[:4] == b"\x89PNG"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = list((image_run / "tensorboard").rglob("events.out.tfevents*"))
    tags = set()
    for path in events:
        acc = EventAccumulator(str(path))
        acc.Reload()
        tags |= set(acc.Tags()["images"])
    assert "eval/segmentation" in tags


def test_untrained_dense_eval_has_only_the_pixel_baseline(image_run: Path) -> None:
    import json

    out = image_run / "u.json"
    assert main([str(image_run), "task=segmentation", "untrained=true", f"out={out}",
                 *SMALL_DENSE]) == 0
    result = json.loads(out.read_text())
    assert result["untrained"] and set(result["baselines"]) == {"pixels"}


def test_tiny_dense_study_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The image study's own recipes, 1 seed per arm, 2 steps, the segmentation task."""
    import json

    from test_train import TINY_SCENES, TINY_VIT
    from tiny_overrides import QUIET_LOG

    from levyjepa.study import main as study_main

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "study"
    tiny_run = ["data.batch_size=4", "data.workers=0", *TINY_SCENES[:4], *TINY_VIT,
                *TINY_SCENES[4:], *QUIET_LOG, "trainer.max_steps=2"]
    args = [str(ROOT / "recipes" / "studies" / "image_base.yaml"), str(IMAGE_RECIPE),
            "--seeds", "1",
            "--out", str(out), "--tasks", "segmentation",
            *(f"--eval={item}" for item in ["pictures=false", *SMALL_DENSE[:3]]), *tiny_run]
    assert study_main(args) == 0
    saved = json.loads((out / "study.json").read_text())
    assert saved["metrics"] == ["segmentation/miou", "segmentation/pixel_acc"]
    text = (out / "study.md").read_text()
    assert "| segmentation/miou" in text and "raw pixels" in text


VIDEO_RECIPE = ROOT / "recipes" / "studies" / "video_levy3d.yaml"


@pytest.fixture(scope="module")
def video_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("dense_video") / "run"
    cfg = load_recipe(VIDEO_RECIPE, tiny(run, "trainer.max_steps=2", "data.frames_per_clip=4",
                                         data=tiny_data(VIDEO_RECIPE, run, None)))
    train(cfg)
    return run


def test_video_tasks_write_keys_baselines_and_pictures(video_run: Path) -> None:
    import json

    assert main([str(video_run), "task=propagation,tracking", "clips=2", "progress=false"]) == 0
    result = json.loads((video_run / "eval.json").read_text())
    keys = ["propagation/j_mean", "propagation/f_mean", "propagation/j_and_f",
            "tracking/delta_avg", "tracking/occlusion_acc"]
    for key in keys:
        assert 0.0 <= result[key] <= 1.0
        for source in ("untrained", "pixels"):
            assert 0.0 <= result["baselines"][source][key] <= 1.0
    assert result["propagation/j_and_f"] == pytest.approx(
        (result["propagation/j_mean"] + result["propagation/f_mean"]) / 2)
    assert result["video"]["frames"] == 4 and result["video"]["clips"] == 2
    for name in ("eval_propagation", "eval_tracks"):
        assert Path(result["pictures"][name]).read_bytes()[:4] == b"\x89PNG"


def test_image_encoder_runs_the_video_tasks_frame_by_frame(image_run: Path) -> None:
    import json

    out = image_run / "video.json"
    assert main([str(image_run), "task=tracking", "clips=2", "clip_frames=3", f"out={out}",
                 "pictures=false", "progress=false"]) == 0
    result = json.loads(out.read_text())
    assert result["video"]["frames"] == 3 and 0.0 <= result["tracking/delta_avg"] <= 1.0


def test_a_bad_scenes_parameter_names_the_recipe_section() -> None:
    with pytest.raises(ConfigError) as err:
        DATA.build({"name": "scenes", "classes": 4, "shapes": [1, 12]}, where="data")
    assert str(err.value) == "data: data source 'scenes': shapes[1] must be in 1..4, got 12"
