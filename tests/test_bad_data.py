"""Unreadable data files: skipped with one line on stderr and counted (``data.on_error: skip``, the
default), or one line naming the file and exit status 2 (``raise``), in the main process and in
loader workers; skipping keeps the batch size and every other item, also across a resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train import ROOT, TINY_VIDEO, read_metrics, tiny
from torch.utils.data import DataLoader

from levyjepa.core.errors import ConfigError, UnreadableFile
from levyjepa.core.registry import DATA
from levyjepa.data.build import splits_from
from levyjepa.data.images.lazy_images import ImageFiles, UnreadableImage
from levyjepa.data.loading.skipped_files import skipped_files_metric
from levyjepa.data.video.video_sources import UnreadableVideo
from levyjepa.data.views.multi_view import MultiViewDataset

CORRUPT = "train/class_0/img_3.JPEG"  # item 3 of 8: random bytes
TRUNCATED = "train/class_1/img_3.JPEG"  # item 7 of 8 (the last): a real JPEG cut in half
NEXT = {3: 4, 7: 0}  # the item that replaces each (the next readable one, wrapping around)
TINY_IMAGE_FOLDER = ["views.global_size=16", "views.global_views=2"]


def damage(tree: Path) -> list[Path]:
    """Corrupt one training JPEG of a ``make_image_tree`` tree and truncate another."""
    corrupt, truncated = tree / CORRUPT, tree / TRUNCATED
    corrupt.write_bytes(np.random.default_rng(1).bytes(2000))
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    return [corrupt, truncated]


def build(tree: Path, *, views: dict | None = None, **kwargs: object):
    """``image_folder`` on ``tree`` (``kwargs``: its data keys) with 2 seed views of 16 px."""
    return splits_from({"name": "image_folder", "root": str(tree), **kwargs},
                       {"name": "seed", "global_size": 16, "global_views": 2, **(views or {})})


def items(dataset) -> list:
    return [dataset[i] for i in range(len(dataset))]


def assert_same(a: list, b: list) -> None:
    assert len(a) == len(b)
    for (x, y), (u, v) in zip(a, b):
        assert torch.equal(x, u) and y == v


def run(recipe: str, *overrides: str, name: str | None = None) -> subprocess.CompletedProcess:
    """``python -m levyjepa.run recipes/<recipe>.yaml`` (``data.name=<name>`` first)."""
    head = [f"data.name={name}"] if name else []
    return subprocess.run(
        [sys.executable, "-m", "levyjepa.run", str(ROOT / "recipes" / f"{recipe}.yaml"),
         *head, *overrides],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=300,
    )


def error_line(proc: subprocess.CompletedProcess) -> str:
    """The one line a failed run printed on stderr (exit status 2, no traceback)."""
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("levyjepa: error: ")
    return lines[0]


def test_training_skips_bad_images_warns_and_counts_them(fresh_image_tree: Path,
                                                        tmp_path: Path) -> None:
    bad = damage(fresh_image_tree)
    out = tmp_path / "run"
    # 8 training images, batch 4: the 2 steps read every item once
    proc = run("image_baseline", *tiny(out, "trainer.max_steps=2", "log.every=1",
                                       "data.workers=1",
                                       data=[f"data.root={fresh_image_tree}",
                                             *TINY_IMAGE_FOLDER]),
               name="image_folder")
    assert proc.returncode == 0, proc.stderr[-3000:]
    warned = [line for line in proc.stderr.splitlines() if "skipping unreadable image" in line]
    assert len(warned) == 2 and all(w.startswith("levyjepa: skipping unreadable image ")
                                    for w in warned)
    assert "possibly_batched_index" not in proc.stderr  # no source line of torch's after it
    assert str(bad[0]) in warned[0] + warned[1] and str(bad[1]) in warned[0] + warned[1]
    assert "Traceback" not in proc.stderr
    train_events = [e for e in read_metrics(out) if "train/inv" in e]
    assert [e["step"] for e in train_events] == [1, 2]
    assert train_events[-1]["data/skipped_files"] == 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["final"]["data/skipped_files"] == 2


@pytest.mark.parametrize("workers", [0, 1])
def test_on_error_raise_stops_with_one_line(fresh_image_tree: Path, tmp_path: Path,
                                            workers: int) -> None:
    bad = damage(fresh_image_tree)
    proc = run("image_baseline", *tiny(tmp_path / "run", "trainer.max_steps=2",
                                       f"data.workers={workers}", "data.on_error=raise",
                                       data=[f"data.root={fresh_image_tree}",
                                             *TINY_IMAGE_FOLDER]),
               name="image_folder")
    line = error_line(proc)  # names the first bad file the shuffled loader meets
    corrupt = f"{bad[0]}: not an image file PIL can identify (UnidentifiedImageError)"
    assert line == f"levyjepa: error: {corrupt}" or line.startswith(
        f"levyjepa: error: {bad[1]}: OSError: ")


@pytest.mark.parametrize("workers", [0, 1])
def test_bad_video_with_on_error_raise_stops_with_one_line(video_tree: Path, tmp_path: Path,
                                                           workers: int) -> None:
    root = tmp_path / "videos"  # unlabelled: 3 good clips and a bad one, all in the first batch
    root.mkdir()
    for i, clip in enumerate(sorted((video_tree / "train").rglob("*.mp4"))[:3]):
        (root / f"clip_{i}.mp4").write_bytes(clip.read_bytes())
    bad = root / "garbage.mp4"
    bad.write_bytes(np.random.default_rng(0).bytes(5000))
    proc = run("video_baseline", *tiny(tmp_path / "run", "trainer.max_steps=1",
                                       f"data.workers={workers}", "data.on_error=raise",
                                       data=[f"data.root={root}", *TINY_VIDEO]))
    assert error_line(proc).startswith(f"levyjepa: error: {bad}: pyav: ")


@pytest.mark.parametrize("cache", [False, True])
def test_skipping_keeps_other_items_and_reads_the_next_file(
        fresh_image_tree: Path, image_tree: Path, cache: bool,
        capsys: pytest.CaptureFixture[str]) -> None:
    damage(fresh_image_tree)
    splits, clean = build(fresh_image_tree, cache=cache), build(image_tree, cache=cache)
    got = [splits.train[i] for i in range(8)]
    reported = capsys.readouterr().err.splitlines()  # one line per file, in the order met
    assert [line.startswith(f"levyjepa: skipping unreadable image {fresh_image_tree / p}: ")
            for line, p in zip(reported, (CORRUPT, TRUNCATED))] == [True, True]
    assert len(reported) == 2
    assert splits.train.unreadable.tolist() == [0, 0, 0, 1, 0, 0, 0, 1]
    # good items: exactly those of the undamaged tree (same index, same views, same label)
    want = items(clean.train)
    assert_same([got[i] for i in range(8) if i not in NEXT], [want[i] for i in range(8)
                                                               if i not in NEXT])
    # a skipped item: the next readable file, with the augmentation of its own index
    paths, labels = list(clean.train.images.paths), clean.train.labels.clone()
    for i, j in NEXT.items():
        paths[i], labels[i] = paths[j], labels[j]
    reference = MultiViewDataset(ImageFiles(paths), labels, transform=splits.train.transform,
                                 views=2, seed=0)
    assert_same(got, items(reference))
    assert not torch.equal(got[3][0], want[4][0])  # not the item of index 4 itself
    # un-augmented training items: the next readable file's
    train_eval, clean_eval = items(splits.train_eval), items(clean.train_eval)
    assert_same(train_eval, [clean_eval[NEXT.get(i, i)] for i in range(8)])


def test_a_fresh_dataset_returns_the_same_items_as_after_resume(fresh_image_tree: Path) -> None:
    damage(fresh_image_tree)
    first = build(fresh_image_tree)
    first.train.set_epoch(1)
    before = items(first.train)
    resumed = build(fresh_image_tree)  # new state: no file marked unreadable yet
    resumed.train.set_epoch(1)
    assert resumed.train.skipped_files == 0
    after = {i: resumed.train[i] for i in reversed(range(8))}  # another order, too
    assert_same(before, [after[i] for i in range(8)])


def test_loader_workers_keep_the_batch_size_and_share_the_count(fresh_image_tree: Path) -> None:
    damage(fresh_image_tree)
    splits = build(fresh_image_tree)
    loader = DataLoader(splits.train, batch_size=4, num_workers=2)
    batches = [views for views, _ in loader]
    assert [tuple(v.shape) for v in batches] == [(4, 2, 3, 16, 16)] * 2
    assert splits.train.skipped_files == 2  # flags written by the workers
    assert skipped_files_metric(splits.train, device=torch.device("cpu")) == {
        "data/skipped_files": 2.0}
    fresh = torch.stack([views for views, _ in items(build(fresh_image_tree).train)])
    assert torch.equal(torch.cat(batches), fresh)  # the items of a single process


def test_device_views_and_the_test_split_skip_too(fresh_image_tree: Path,
                                                  image_tree: Path) -> None:
    damage(fresh_image_tree)
    (fresh_image_tree / "val/class_0/img_0.png").write_bytes(b"not a png")
    splits = build(fresh_image_tree, views={"on": "device", "load_size": 24})
    clean = build(image_tree, views={"on": "device", "load_size": 24})
    assert_same(items(splits.train), [clean.train[NEXT.get(i, i)] for i in range(8)])
    assert splits.train.skipped_files == 2
    test = items(splits.test)
    assert_same(test, [clean.test[1]] + [clean.test[i] for i in range(1, 4)])
    assert splits.test.unreadable.tolist() == [1, 0, 0, 0]


@pytest.mark.parametrize("workers", [0, 1])
def test_on_error_raise_names_the_file_in_one_line(fresh_image_tree: Path,
                                                   workers: int) -> None:
    bad = damage(fresh_image_tree)
    splits = build(fresh_image_tree, on_error="raise")
    loader = DataLoader(splits.train, batch_size=8, num_workers=workers)
    with pytest.raises(UnreadableImage) as caught:
        next(iter(loader))
    err = caught.value
    assert isinstance(err, ConfigError)
    assert str(err) == f"{bad[0]}: not an image file PIL can identify (UnidentifiedImageError)"
    assert (err.worker_report is not None) == (workers > 0)
    with pytest.raises(UnreadableImage, match="image file is truncated|Truncated File Read"):
        splits.train_eval[7]


def test_a_worker_report_is_reduced_to_the_original_message() -> None:
    report = ("Caught UnreadableVideo in DataLoader worker process 3.\nOriginal Traceback (most "
              "recent call last):\n  File \"x.py\", line 1, in f\n    raise UnreadableVideo(m)\n"
              "levyjepa.data.video.video_sources.UnreadableVideo: /data/a.mp4: pyav: "
              "InvalidDataError: Invalid data\n")
    err = UnreadableVideo(report)
    assert str(err) == "/data/a.mp4: pyav: InvalidDataError: Invalid data"
    assert err.worker_report == report
    assert str(UnreadableVideo("/data/b.mp4: cannot read")) == "/data/b.mp4: cannot read"


def test_on_error_is_validated_and_all_bad_files_stop(tmp_path: Path, image_tree: Path) -> None:
    for name in ("image_folder", "imagenette"):
        with pytest.raises(ConfigError, match="on_error must be one of skip, raise; got 'x'"
                           ) as caught:
            DATA.build({"name": name, "root": str(image_tree), "on_error": "x"}, where="data")
        assert "\n" not in str(caught.value)
    (tmp_path / "only" / "train" / "class_0").mkdir(parents=True)
    (tmp_path / "only" / "train" / "class_0" / "a.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    splits = build(tmp_path / "only", test_split=None)
    with pytest.raises(UnreadableFile, match="no image in the folder '.*' can be read "
                       r"\(1 file tried\): "):
        splits.train[0]
