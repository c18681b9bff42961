"""Training runs: every recipe for 2 steps, the run directory, resume, several processes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from levyjepa.config.recipe import load_recipe
from levyjepa.core.errors import ConfigError
from levyjepa.core.registry import ENCODERS
from levyjepa.training.checkpoint import list_checkpoints, resolve_resume
from levyjepa.training.loop import train

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "recipes").rglob("*.yaml"))  # recipes/methods/ too

# Shrinks any recipe to a few seconds on a CPU; encoder keys a recipe's encoder lacks are dropped.
TINY_DATA = ["data.batch_size=4", "data.workers=0"]
TINY_SYNTHETIC = ["data.size=16", "data.train_size=16", "data.test_size=8",
                  "views.global_views=2"]
TINY_IMAGES = ["views.global_size=16", "views.global_views=2"]  # plus data.root: an image tree
IMAGE_SOURCES = ("image_folder", "imagenette")
# plus data.root and data.test_root: generated clips written to .mp4 (the video_tree fixture)
TINY_VIDEO = ["data.size=16", "data.views=2", "data.frames_per_clip=4", "data.frame_step=2"]
VIDEO_SOURCES = ("video_folder",)
GENERATED_VIDEO_SOURCES = ("synthetic_video", "scene_video")
TINY_GENERATED_CLIPS = ["data.size=16", "data.train_size=16", "data.test_size=8", "data.views=2"]
TINY_SCENES = ["data.size=32", "data.train_size=16", "data.test_size=8", "views.global_views=2",
               "encoder.img_size=32", "encoder.patch_size=8"]
TINY_VIT = ["encoder.img_size=16", "encoder.patch_size=4", "encoder.embed_dim=32",
            "encoder.depth=1", "encoder.num_heads=2", "encoder.pool_heads=2", "encoder.emb_dim=32",
            "encoder.proj_hidden=32", "method.sigreg.slices=16"]


def tiny(out_dir: Path, *extra: str, data: Sequence[str] = TINY_SYNTHETIC) -> list[str]:
    # no end-of-run pictures (about 2 s of plotting each); tests/test_pictures.py draws them
    encoder = [d for d in data if d.startswith("encoder.")]  # a source's own size wins
    return [*TINY_DATA, *data, *TINY_VIT, *encoder, f"out_dir={out_dir}", "log.progress=false",
            "log.trackers=[]", "log.pictures=false", "log.first_look=false", *extra]


def tiny_data(recipe: Path, image_root: Path, video_root: Path | None = None) -> list[str]:
    """Tiny data overrides for the recipe's data source; image sources read ``image_root``,
    video sources ``video_root`` (``train/`` and ``val/`` class folders of clips)."""
    source = load_recipe(recipe).data.name
    if source in IMAGE_SOURCES:
        return [f"data.root={image_root}", *TINY_IMAGES]
    if source in VIDEO_SOURCES and video_root is not None:
        return tiny_video(video_root)
    if source == "cifar":  # tiny files in torchvision's format, written once
        return [f"data.root={cifar_files(image_root.parent / 'cifar')}", *TINY_IMAGES,
                "encoder.emb_dim=null",  # a mean-pooled ResNet: emb is its field's width
                "encoder.model_args={layers: [1, 1, 1, 1], channels: [8, 16, 16, 16], "
                "stem_width: 8}"]  # a small ResNet-18
    if source == "scenes":  # scenes are 32 px at least
        return TINY_SCENES
    if source in GENERATED_VIDEO_SOURCES:  # they make their own clip views (data.views)
        return TINY_GENERATED_CLIPS
    return TINY_SYNTHETIC


def cifar_files(root: Path) -> Path:
    """Tiny CIFAR-100 files under ``root`` (written once per session)."""
    from test_cifar_source import write_cifar

    if not (root / "cifar-100-python").is_dir():
        write_cifar(root, "cifar100", per_file=8)
    return root


def tiny_video(video_root: Path) -> list[str]:
    """Tiny ``video_folder`` overrides reading the ``video_tree`` fixture's clips."""
    return [f"data.root={video_root / 'train'}", f"data.test_root={video_root / 'val'}",
            *TINY_VIDEO]


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("recipe", RECIPES,
                         ids=[str(p.relative_to(ROOT / "recipes")) for p in RECIPES])
def test_every_recipe_runs_two_steps(recipe: Path, tmp_path: Path, image_tree: Path,
                                     video_tree: Path) -> None:
    method = load_recipe(recipe).method.name
    overrides = tiny(tmp_path / "run", "trainer.max_steps=2",
                     data=tiny_data(recipe, image_tree, video_tree))
    if "sigreg" not in load_recipe(recipe).method:  # TINY_VIT shrinks LeJEPA's SIGReg
        overrides = [o for o in overrides if not o.startswith("method.sigreg.")]
    takes = ENCODERS.parameters(load_recipe(recipe).encoder.name)  # a timm encoder: no patch_size
    overrides = [o for o in overrides
                 if not o.startswith("encoder.") or o.partition("=")[0][8:] in takes]
    if load_recipe(recipe).trainer.strategy == "fsdp":  # recipes/scale: one process, a ViT-Ti
        overrides += ["trainer.strategy=ddp", "encoder.arch=vit_tiny_patch16_224"]  # (test_fsdp)
    if method in ("ijepa", "vjepa"):  # a 4x4 token grid keeps fewer than 10 context patches
        overrides.append("method.min_keep=2")
    if method == "hjepa" and load_recipe(recipe).data.name in VIDEO_SOURCES:
        overrides.append("data.frames_per_clip=8")  # 4 tubelet steps: two windows of 2 fit
    cfg = load_recipe(recipe, overrides)
    summary = train(cfg)
    assert summary["steps"] == 2
    events = read_metrics(tmp_path / "run")
    last_train = [e for e in events if "train/loss" in e][-1]
    own = {"lejepa": ["inv", "sigreg", "orig_lejepa_loss"], "vicreg": ["inv", "var", "cov"],
           "supervised": [],  # its loss is the probe's cross-entropy
           **{name: ["pred_loss", *(["sigreg"] if load_recipe(recipe).method.get("sigreg")
                                    else [])] for name in ("ijepa", "vjepa")},
           "hjepa": ["pred_loss", "sigreg", "q_pr", "p_pr", "q_std_min", "q2", "p2", "V_var",
                     "energy_drift"],
           "hjepa_views": ["pred", "sigreg", "budget", "logdet", "q_pr", "energy_drift"],
           "saccade": ["pred", "cycle", "inv", "var", "cov"]}
    keys = [f"train/{k}" for k in ("loss", "probe_loss", "grad_norm", "lr", *own[method])]
    # every attached prior is logged under its term (within: the Lévy prior, even at weight 0)
    keys += [f"train/{term}" for term, entry in cfg.priors.items() if entry is not None]
    for key in keys:
        assert key in last_train and torch.isfinite(torch.tensor(last_train[key]))
    assert any("test/acc" in e for e in events)


def test_run_directory_contents(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cfg = load_recipe(ROOT / "recipes" / "quickstart.yaml",
                      tiny(run, "trainer.epochs=2", "log.every=1", "trainer.keep_checkpoints=1"))
    summary = train(cfg)
    assert (run / "config.yaml").is_file()
    assert load_recipe(run / "config.yaml").trainer.epochs == 2  # the resolved recipe reloads
    events = read_metrics(run)
    steps_per_epoch = 16 // 4
    train_events = [e for e in events if "train/inv" in e]
    assert [e["step"] for e in train_events] == list(range(1, 2 * steps_per_epoch + 1))
    assert all(e["epoch"] == (e["step"] - 1) // steps_per_epoch for e in train_events)
    acc = [e for e in events if "test/acc" in e]
    assert [(e["step"], e["epoch"]) for e in acc] == [(4, 1), (8, 2)]
    assert all(0.0 <= e["test/acc"] <= 1.0 for e in acc)
    on_disk = json.loads((run / "summary.json").read_text())
    assert on_disk["steps"] == 8 and on_disk["world_size"] == 1
    assert on_disk["views_per_s"] > 0 and on_disk["wall_time_s"] > 0
    assert on_disk["final"]["test/acc"] == acc[-1]["test/acc"]
    assert summary["final"] == on_disk["final"]
    # one checkpoint kept, complete, no partial folder left behind
    ckpts = list_checkpoints(run)
    assert [p.name for p in ckpts] == ["step_00000008"]
    assert not list((run / "checkpoints").glob(".partial-*"))


def test_max_steps_and_epochs_overrides(tmp_path: Path) -> None:
    cfg = load_recipe(ROOT / "recipes" / "quickstart.yaml",
                      tiny(tmp_path / "a", "trainer.epochs=3", "trainer.max_steps=5"))
    assert train(cfg)["steps"] == 5
    cfg = load_recipe(ROOT / "recipes" / "quickstart.yaml",
                      tiny(tmp_path / "b", "trainer.epochs=1"))
    assert train(cfg)["steps"] == 4


def _encoder_state(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(list_checkpoints(run)[-1] / "model.safetensors"))


def test_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    """4 straight steps vs 2 steps, stop, resume to 4: same losses and parameters.

    Tolerance: exact equality is expected on CPU (same kernels, same order, restored RNG
    states and seeded data order); we allow 1e-6 relative to absorb any reduction-order change.
    """
    common = ["trainer.epochs=2", "log.every=1", "data.train_size=12", "trainer.eval_every=0"]
    recipe = ROOT / "recipes" / "quickstart.yaml"
    straight = tmp_path / "straight"
    train(load_recipe(recipe, tiny(straight, *common, "trainer.max_steps=4")))
    parted = tmp_path / "parted"
    train(load_recipe(recipe, tiny(parted, *common, "trainer.max_steps=2")))
    # a partial checkpoint from a "crash" must be ignored by resume=auto
    (parted / "checkpoints" / ".partial-step_00000003").mkdir()
    train(load_recipe(recipe, tiny(parted, *common, "trainer.max_steps=4", "resume=auto")))
    a = [e for e in read_metrics(straight) if "train/inv" in e]
    b = [e for e in read_metrics(parted) if "train/inv" in e]
    assert [e["step"] for e in a] == [e["step"] for e in b] == [1, 2, 3, 4]
    for ea, eb in zip(a, b):
        for key in ("train/loss", "train/probe_loss", "train/sigreg", "train/lr"):
            assert eb[key] == pytest.approx(ea[key], rel=1e-6, abs=1e-9), (ea["step"], key)
    sa, sb = _encoder_state(straight), _encoder_state(parted)
    assert sa.keys() == sb.keys()
    for key in sa:
        torch.testing.assert_close(sb[key], sa[key], rtol=1e-6, atol=1e-7)
    # mid-epoch resume (12 samples / batch 4 = 3 steps per epoch: step 2 is inside epoch 0)
    state = json.loads((list_checkpoints(parted)[-1] / "trainer_state.json").read_text())
    assert state == {"step": 4, "epoch": 1, "steps_per_epoch": 3}


def test_resume_from_explicit_path_and_errors(tmp_path: Path) -> None:
    recipe = ROOT / "recipes" / "quickstart.yaml"
    first = tmp_path / "first"
    train(load_recipe(recipe, tiny(first, "trainer.max_steps=2")))
    ckpt = resolve_resume(str(first), first)
    assert ckpt is not None and ckpt.name == "step_00000002"
    second = tmp_path / "second"
    summary = train(load_recipe(recipe, tiny(second, "trainer.max_steps=3", f"resume={ckpt}")))
    assert summary["steps"] == 3 and summary["steps_this_session"] == 1
    with pytest.raises(ConfigError, match="no complete checkpoint"):
        train(load_recipe(recipe, tiny(tmp_path / "x", f"resume={tmp_path / 'nothing'}")))
    with pytest.raises(ConfigError, match="resume=auto needs out_dir"):
        cfg = load_recipe(recipe, [*TINY_DATA, "resume=auto"])
        train(cfg)


@pytest.mark.skipif(shutil.which("torchrun") is None and not (Path(sys.executable).parent /
                    "torchrun").exists(), reason="torchrun is installed with torch")
def test_two_processes_on_cpu(tmp_path: Path) -> None:
    """torchrun with 2 gloo processes: 2 steps complete, metrics are written once."""
    torchrun = str(Path(sys.executable).parent / "torchrun")
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [torchrun, "--nproc_per_node", "2", "--master_port", "29517", "-m", "levyjepa.run",
         str(ROOT / "recipes" / "quickstart.yaml"), *tiny(run, "trainer.max_steps=2",
                                                          "log.every=1")],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the cross-process reductions (levyjepa/core/dist.py) use no deprecated torch API
    assert "FutureWarning" not in proc.stderr, proc.stderr[-3000:]
    events = read_metrics(run)
    steps = [e["step"] for e in events if "train/inv" in e]
    assert steps == [1, 2]  # once each: only the main process writes
    assert len([e for e in events if "test/acc" in e]) == 1
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 2
    ckpt = list_checkpoints(run)[-1]
    assert (ckpt / "random_states_0.pkl").is_file() and (ckpt / "random_states_1.pkl").is_file()


def test_two_processes_video_recipe_on_cpu(tmp_path: Path, video_tree: Path) -> None:
    """torchrun with 2 gloo processes on video_levy3d (tiny video_vit, levy3d with gamma 1,
    generated .mp4 clips decoded in each process): 2 steps, metrics written once."""
    torchrun = str(Path(sys.executable).parent / "torchrun")
    run = tmp_path / "ddp_video"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [torchrun, "--nproc_per_node", "2", "--master_port", "29518", "-m", "levyjepa.run",
         str(ROOT / "recipes" / "video_levy3d.yaml"),
         *tiny(run, "trainer.max_steps=2", "log.every=1", data=tiny_video(video_tree))],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = read_metrics(run)
    train_events = [e for e in events if "train/inv" in e]
    assert [e["step"] for e in train_events] == [1, 2]
    assert all(e["data/skipped_files"] == 0 and "train/within" in e for e in train_events)
    assert [e["step"] for e in events if "test/acc" in e] == [1, 2]  # 6 clips: 1 step/epoch
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 2
