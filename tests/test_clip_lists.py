"""The ``clip_list`` source: V-JEPA 2's ``path label`` clip lists over tiny generated videos."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_train import ROOT, tiny

from levyjepa.core.errors import ConfigError
from levyjepa.data.build import splits_from
from levyjepa.data.video.clip_lists import CLIP_LIST_FORMAT, read_clip_list
from levyjepa.data.video.video_folder import scan_videos
from levyjepa.eval.benchmarks.video_classification import (
    benchmark_items,
    clip_list_items,
    dataset_items,
)

TINY = {"size": 16, "views": 2, "frames_per_clip": 4, "frame_step": 2}


def write_lists(video_tree: Path, folder: Path) -> tuple[Path, Path]:
    """``train.csv``: the first training video copied under ``folder/clips`` (a relative path),
    the others absolute; ``val.csv``: the validation videos by paths relative to ``folder``
    through ``..``; a blank line in each."""
    train_paths, train_labels, classes = scan_videos(video_tree / "train")
    val_paths, val_labels, _ = scan_videos(video_tree / "val", classes)
    (folder / "clips").mkdir(parents=True)
    shutil.copy(train_paths[0], folder / "clips" / "first clip.mp4")  # a space in the name
    lines = [f"clips/first clip.mp4 {train_labels[0]}", ""]
    lines += [f"{p} {label}" for p, label in zip(train_paths[1:], train_labels[1:])]
    (folder / "train.csv").write_text("\n".join(lines) + "\n")
    val = [f"{os.path.relpath(p, folder)} {label}" for p, label in zip(val_paths, val_labels)]
    (folder / "val.csv").write_text("\n\n".join(val) + "\n")
    return folder / "train.csv", folder / "val.csv"


def test_reads_relative_and_absolute_paths_like_video_folder(video_tree: Path,
                                                             tmp_path: Path) -> None:
    train_list, val_list = write_lists(video_tree, tmp_path / "lists")
    folder_paths, folder_labels, classes = scan_videos(video_tree / "train")
    paths, labels = read_clip_list(train_list)
    assert paths[0] == tmp_path / "lists" / "clips" / "first clip.mp4"
    assert paths[1:] == folder_paths[1:] and labels == folder_labels
    val_paths, _ = read_clip_list(val_list)
    assert [p.resolve() for p in val_paths] == scan_videos(video_tree / "val", classes)[0]

    made = splits_from({"name": "clip_list", "train_list": str(train_list),
                        "val_list": str(val_list), **TINY}, None)
    same = splits_from({"name": "video_folder", "root": str(video_tree / "train"),
                        "test_root": str(video_tree / "val"), **TINY}, None)
    assert made.num_classes == same.num_classes == 2 and made.view_groups == ((2, 16),)
    assert len(made.train) == 6 and len(made.test) == 2
    for i in range(len(made.train)):  # the same decoder, sampling and augmentation
        assert torch.equal(made.train[i][0], same.train[i][0])
        assert made.train[i][1] == same.train[i][1]
        assert torch.equal(made.train_eval[i][0], same.train_eval[i][0])
    assert made.train[0][0].shape == (2, 3, 4, 16, 16)
    assert made.test[1][0].shape == (3, 4, 16, 16)
    assert all(torch.equal(made.test[i][0], same.test[i][0]) for i in range(2))
    # the evaluation's items, from a clip list or from either source's splits
    assert clip_list_items(train_list) == list(zip(paths, labels))
    train_items, val_items, num_classes = benchmark_items(tmp_path / "lists")
    assert len(train_items) == 6 and len(val_items) == 2 and num_classes == 2
    assert [label for _, label in dataset_items(same.test)] == [label for _, label in
                                                                clip_list_items(val_list)]


@pytest.mark.parametrize("line", ["clips/a.mp4 zero", "clips/a.mp4", "clips/a.mp4 -1",
                                  " 3", "clips/a.mp4 1.5"])
def test_bad_line_is_one_config_error_naming_file_line_and_format(tmp_path: Path,
                                                                  line: str) -> None:
    bad = tmp_path / "train.csv"
    bad.write_text(f"clips/ok.mp4 0\n\n{line}\nclips/later.mp4 1\n")
    with pytest.raises(ConfigError) as err:
        splits_from({"name": "clip_list", "train_list": str(bad), **TINY}, None)
    expected = (f"data.train_list: clip list '{bad}', line 3: expected '<path> <label>' per "
                "line, separated by a space, no header (path absolute or relative to the "
                f"list's folder, label an integer >= 0); got {line.strip()!r}")
    assert str(err.value) == expected
    assert CLIP_LIST_FORMAT in expected and "\n" not in str(err.value)


def test_missing_keys_and_files_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^data\.train_list: set data\.train_list=FILE"):
        splits_from({"name": "clip_list", **TINY}, None)
    with pytest.raises(ConfigError, match=r"^data\.val_list: clip list '.*nope\.csv' does not "
                                          "exist"):
        good = tmp_path / "train.csv"
        good.write_text("a.mp4 0\n")
        splits_from({"name": "clip_list", "train_list": str(good),
                     "val_list": str(tmp_path / "nope.csv"), **TINY}, None)
    (tmp_path / "empty.csv").write_text("\n\n")
    with pytest.raises(ConfigError, match="holds no videos"):
        read_clip_list(tmp_path / "empty.csv")
    with pytest.raises(ConfigError, match=r"data\.num_classes=1 but the clip lists hold label 1"):
        (tmp_path / "two.csv").write_text("a.mp4 0\nb.mp4 1\n")
        splits_from({"name": "clip_list", "train_list": str(tmp_path / "two.csv"),
                     "num_classes": 1, **TINY}, None)


def test_trains_two_steps_through_the_command_line(video_tree: Path, tmp_path: Path) -> None:
    """``python -m levyjepa.run`` on the video recipe, its data section replaced by a clip list:
    2 steps, test accuracy on the validation list."""
    train_list, val_list = write_lists(video_tree, tmp_path / "lists")
    run = tmp_path / "run"
    data = ["data.name=clip_list", f"data.train_list={train_list}",
            f"data.val_list={val_list}", *(f"data.{k}={v}" for k, v in TINY.items())]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "levyjepa.run", str(ROOT / "recipes" / "video_levy3d.yaml"),
         *tiny(run, "trainer.max_steps=2", "log.every=1", data=data)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [e["step"] for e in events if "train/loss" in e] == [1, 2]
    assert all(e["data/skipped_files"] == 0 for e in events if "train/loss" in e)
    assert any("test/acc" in e for e in events)
    assert json.loads((run / "summary.json").read_text())["steps"] == 2
