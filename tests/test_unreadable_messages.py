"""What a user reads about unreadable data files (issue 23, items 5 and 6).

- A training set none of whose files can be read stops the run before training with one line
  naming the folder, the number of files tried and the first file with its cause, whatever the
  batch size (not the batch-size message of a one-file folder, not a loop over the files).
- A skipped file is reported once, on one line ``levyjepa: skipping unreadable <noun> <file>:
  <cause>`` with no source line after it, also from loader workers; the final ``done:`` line
  gives the count.

Runs are made in this process through :func:`levyjepa.run.main` (the command line's entry
point) where no loader worker starts, so each test takes a few seconds.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_bad_data import TINY_IMAGE_FOLDER
from test_train import ROOT, TINY_VIDEO, tiny
from torch.utils.data import DataLoader

from levyjepa.core.errors import UnreadableFile
from levyjepa.data.build import splits_from
from levyjepa.data.loading.skipped_files import files_where
from levyjepa.run import main

SKIP_LINE = re.compile(r"levyjepa: skipping unreadable (image|video) (\S+): \S.*")
"""A skipped file's one line: the noun, the file, the cause."""


def garbage(path: Path, seed: int = 0) -> Path:
    """Write random bytes to ``path`` (no decoder reads them)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(seed).bytes(3000))
    return path


def good_image(path: Path, seed: int = 0) -> Path:
    """Write a random 32 px PNG to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def run_cli(recipe: str, *overrides: str, capsys: pytest.CaptureFixture[str]
            ) -> tuple[int, list[str], list[str]]:
    """``python -m levyjepa.run recipes/<recipe>.yaml ...`` in this process: the exit status and
    the lines of stdout and stderr."""
    status = main([str(ROOT / "recipes" / f"{recipe}.yaml"), *overrides])
    out, err = capsys.readouterr()
    return status, out.splitlines(), err.splitlines()


def test_a_folder_whose_only_clip_is_unreadable_says_so(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    clip = garbage(tmp_path / "videos" / "x.mp4")
    status, _, err = run_cli("video_baseline", *tiny(
        tmp_path / "run", "data.batch_size=2", data=[f"data.root={clip.parent}", *TINY_VIDEO]),
        capsys=capsys)
    assert status == 2
    assert len(err) == 1, err  # not the batch-size message: the one clip cannot be read
    assert err[0].startswith(f"levyjepa: error: no video in the folder '{clip.parent}' can be "
                             f"read (1 file tried): {clip}: pyav: ")


@pytest.mark.parametrize("workers", [0, 2])
def test_a_folder_of_unreadable_clips_stops_before_training(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], workers: int) -> None:
    root = tmp_path / "videos"
    clips = [garbage(root / f"c{i}.mp4", seed=i) for i in range(3)]
    status, out, err = run_cli("video_baseline", *tiny(
        tmp_path / "run", "data.batch_size=2", f"data.workers={workers}",
        data=[f"data.root={root}", *TINY_VIDEO]), capsys=capsys)
    assert status == 2
    assert len(err) == 1, err  # no line per clip before it
    assert err[0].startswith(f"levyjepa: error: no video in the folder '{root}' can be read "
                             f"(3 files tried); the first: {clips[0]}: pyav: ")
    assert not any(line.startswith("done:") for line in out)


def test_a_folder_of_corrupt_images_stops_with_one_line(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    folder = tmp_path / "tree" / "train" / "class_0"
    first = garbage(folder / "img_00.jpg")
    for i in range(1, 12):
        garbage(folder / f"img_{i:02d}.jpg", seed=i)
    status, _, err = run_cli("image_baseline", "data.name=image_folder", *tiny(
        tmp_path / "run", "data.workers=2", "data.test_split=null",
        data=[f"data.root={tmp_path / 'tree'}", *TINY_IMAGE_FOLDER]), capsys=capsys)
    assert status == 2
    assert err == [f"levyjepa: error: no image in the folder '{folder}' can be read (12 files "
                   f"tried); the first: {first}: not an image file PIL can identify "
                   "(UnidentifiedImageError)"]


def test_a_readable_folder_smaller_than_the_batch_keeps_the_batch_size_message(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "tree" / "train" / "class_0"
    good_image(folder / "a.png")
    bad = garbage(folder / "b.jpg")
    status, _, err = run_cli("image_baseline", "data.name=image_folder", *tiny(
        tmp_path / "run", "data.test_split=null",
        data=[f"data.root={tmp_path / 'tree'}", *TINY_IMAGE_FOLDER]), capsys=capsys)
    assert status == 2
    # a.png reads, so the batch is what is wrong (b.jpg is not met: the run stops first)
    assert err == ["levyjepa: error: data.batch_size=4 is larger than the training set "
                   "(2 samples)"], err
    assert str(bad) not in "".join(err)


def test_skipped_files_get_one_line_each_and_a_count_at_the_end(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "tree" / "train" / "class_0"
    for i in range(6):
        good_image(folder / f"a{i}.png", seed=i)
    bad = [garbage(folder / "b0.jpg"), garbage(folder / "b1.jpg", seed=1)]
    status, out, err = run_cli("image_baseline", "data.name=image_folder", *tiny(
        tmp_path / "run", "trainer.max_steps=2", "data.test_split=null",
        data=[f"data.root={tmp_path / 'tree'}", *TINY_IMAGE_FOLDER]), capsys=capsys)
    assert status == 0, err
    # 8 items, 2 steps of 4: every item is read once, so both bad files are met
    assert sorted(err) == [f"levyjepa: skipping unreadable image {path}: not an image file PIL "
                           "can identify (UnidentifiedImageError)" for path in bad]
    done = [line for line in out if line.startswith("done:")]
    assert len(done) == 1 and ", 2 unreadable files skipped -> " in done[0]


def test_loader_workers_report_each_file_once(tmp_path: Path,
                                              capfd: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "tree" / "train" / "class_0"
    good_image(folder / "a.png")
    bad = [garbage(folder / f"b{i:02d}.jpg", seed=i) for i in range(10)]
    good_image(folder / "c.png", seed=1)
    splits = splits_from({"name": "image_folder", "root": str(tmp_path / "tree"),
                          "test_split": None},
                         {"name": "seed", "global_size": 16, "global_views": 2})
    # every item but the two good ones wraps around through the same bad files, in two workers
    loader = DataLoader(splits.train, batch_size=3, num_workers=2)
    for _ in range(2):  # a second epoch: flagged files are skipped without a word
        assert sum(len(labels) for _, labels in loader) == 12
    for i in range(len(splits.train_eval)):  # the same files, sharing the flags: no new line
        splits.train_eval[i]
    lines = capfd.readouterr().err.splitlines()
    assert all(SKIP_LINE.fullmatch(line) for line in lines), lines
    assert sorted(SKIP_LINE.fullmatch(line).group(2) for line in lines) == [str(p) for p in bad]
    assert splits.train.skipped_files == 10


def test_the_message_names_a_file_even_when_other_workers_flagged_them_all(
        tmp_path: Path) -> None:
    folder = tmp_path / "tree" / "train" / "class_0"
    first, second = garbage(folder / "a.jpg"), garbage(folder / "b.jpg", seed=1)
    splits = splits_from({"name": "image_folder", "root": str(tmp_path / "tree"),
                          "test_split": None},
                         {"name": "seed", "global_size": 16, "global_views": 2})
    splits.train.unreadable.fill_(1)  # as if flagged by another worker: read one again
    with pytest.raises(UnreadableFile) as caught:
        splits.train[1]
    assert str(caught.value) == (f"no image in the folder '{folder}' can be read (2 files "
                                 f"tried); the first: {first}: not an image file PIL can "
                                 "identify (UnidentifiedImageError)")
    assert str(second) not in str(caught.value)


def test_files_where_names_the_common_folder() -> None:
    class Files:
        def __init__(self, paths: list[str]) -> None:
            self.paths = paths

    assert files_where(Files(["/d/train/a/x.jpg", "/d/train/b/y.jpg"])) == "the folder '/d/train'"
    assert files_where(Files(["/d/v/x.mp4"])) == "the folder '/d/v'"
    assert files_where(Files(["/d/v/x.mp4", "/d/v/x.mp4"])) == "the folder '/d/v'"
    assert files_where(Files(["a.mp4", "/d/b.mp4"])) == "the data set"

    class Named:
        name = "imagenette"

    assert files_where(Named()) == "'imagenette'"
    assert files_where(None) == "the data set"
