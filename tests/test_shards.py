"""Tar shards (WebDataset layout): the writer ``python -m levyjepa.data.shards`` and the
``image_shards`` / ``video_shards`` sources (issue item 4).

Written and read back, shards give the folder source's items, labels and views item for item;
2 processes x 2 loader workers see every sample once per epoch; a run stopped mid-epoch resumes
exactly; a truncated shard keeps the samples before the cut, its damaged one skipped and
counted (``skip``) or one line (``raise``); a corrupt member is skipped and counted like a
corrupt file; the writer refuses bad input in one line and leaves no partial output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate.data_loader import prepare_data_loader
from PIL import Image
from torch.utils.data import DataLoader

from levyjepa.config.recipe import load_recipe
from levyjepa.core.errors import ConfigError, UnreadableFile
from levyjepa.data.build import splits_from
from levyjepa.data.images.image_shards import image_shards
from levyjepa.data.loading.sampling import EpochShuffleSampler
from levyjepa.data.loading.skipped_files import skipped_files_metric
from levyjepa.data.shards.writer import main as write_main
from levyjepa.training.loop import train

wds = pytest.importorskip("webdataset")  # the test extra installs it

ROOT = Path(__file__).resolve().parents[1]
VIEWS = {"name": "seed", "global_views": 2, "global_size": 16, "local_views": 2,
         "local_size": 8}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def shards(image_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``image_tree`` (8 training and 4 validation images, 2 classes) in shards of 3."""
    out = tmp_path_factory.mktemp("shards") / "out"
    assert write_main([str(image_tree), str(out), "--shard-size", "3"]) == 0
    return out


def write(src: Path, out: Path, *args: str) -> None:
    assert write_main([str(src), str(out), *args]) == 0


def same_items(a, b) -> None:
    """Two datasets give equal items (tensors or pairs of them, and labels)."""
    assert len(a) == len(b)
    for i in range(len(a)):
        (xa, ya), (xb, yb) = a[i], b[i]
        xa, xb = (xa, xb) if isinstance(xa, tuple) else ((xa,), (xb,))
        assert ya == yb and all(torch.equal(p, q) for p, q in zip(xa, xb)), i


# ---- round trip -------------------------------------------------------------------------------

def test_written_shards_hold_the_files_bytes_in_the_webdataset_layout(image_tree: Path,
                                                                      shards: Path) -> None:
    names = sorted(p.name for p in shards.iterdir())
    assert names == ["classes.json", "train-000000.tar", "train-000001.tar", "train-000002.tar",
                     "val-000000.tar", "val-000001.tar"]
    assert json.loads((shards / "classes.json").read_text())["classes"] == ["class_0", "class_1"]
    # webdataset's own streaming reader sees the files' bytes as they are, and the labels
    files = sorted((image_tree / "train").rglob("*.*"))  # class_0 first, names sorted
    read = list(wds.WebDataset(str(shards / "train-{000000..000002}.tar"), shardshuffle=False))
    assert len(read) == len(files) == 8
    for k, (sample, path) in enumerate(zip(read, files)):
        ext = path.suffix.lower().lstrip(".")
        assert sample[ext] == path.read_bytes() and sample["__key__"].startswith(f"{k:08d}_")
        assert int(sample["cls"]) == int(path.parent.name[-1])


def test_round_trip_equals_the_folder_source_item_for_item(image_tree: Path,
                                                            shards: Path) -> None:
    folder = splits_from({"name": "image_folder", "root": str(image_tree)}, VIEWS, seed=3)
    sharded = splits_from({"name": "image_shards", "root": str(shards)}, VIEWS, seed=3)
    assert sharded.num_classes == folder.num_classes == 2
    for epoch in (0, 1):
        folder.train.set_epoch(epoch)
        sharded.train.set_epoch(epoch)
        same_items(folder.train, sharded.train)
    same_items(folder.test, sharded.test)
    same_items(folder.train_eval, sharded.train_eval)


def test_patterns_lists_and_folders_name_the_same_shards(shards: Path) -> None:
    by_folder = image_shards(root=str(shards))
    pattern = image_shards(root=str(shards / "train-{000000..000002}.tar"),
                           test_root=str(shards / "val-{000000..000001}.tar"))
    listed = image_shards(root=[str(p) for p in sorted(shards.glob("train-*.tar"))],
                          test_root=str(shards), test_split="val")
    for source in (pattern, listed):
        assert torch.equal(source.train.labels, by_folder.train.labels)
        assert torch.equal(source.test.labels, by_folder.test.labels)
        assert [np.asarray(source.train.images[i]).tobytes() for i in range(8)] == \
            [np.asarray(by_folder.train.images[i]).tobytes() for i in range(8)]
    with pytest.raises(ConfigError, match=r"^data.root: shard '.*train-000003.tar' does not "):
        image_shards(root=str(shards / "train-{000000..000009}.tar"))
    with pytest.raises(ConfigError, match="compressed"):
        image_shards(root=str(shards / "train.tar.gz"))


def test_a_flat_folder_is_unlabelled(tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    flat.mkdir()
    rng = np.random.default_rng(1)
    pixels = [rng.integers(0, 256, (6, 5, 3), dtype=np.uint8) for _ in range(3)]
    for i, p in enumerate(pixels):
        Image.fromarray(p).save(flat / f"pic.{i}.png")  # dots in the stem: keys drop them
    write(flat, tmp_path / "out")
    source = image_shards(root=str(tmp_path / "out"))
    assert source.num_classes == 0 and source.test is None
    assert source.train.labels.tolist() == [-1, -1, -1]
    assert all(np.array_equal(np.asarray(source.train.images[i]), pixels[i]) for i in range(3))


# ---- processes, workers, resume --------------------------------------------------------------

def test_two_processes_with_two_workers_see_every_sample_once_per_epoch(shards: Path) -> None:
    """The training loader's layout: the epoch-seeded sampler, batches of 4 sliced by Accelerate
    (split_batches) into 2 per process, each process's loader with 2 workers."""
    data = splits_from({"name": "image_shards", "root": str(shards)}, VIEWS, seed=0).train
    n, batch = len(data), 4
    data.images[0]  # the parent has a shard open before the workers fork
    for epoch in (0, 1):
        data.set_epoch(epoch)
        expected = [data[i] for i in range(n)]
        sampler = EpochShuffleSampler(n, seed=0)
        sampler.set_epoch(epoch)
        order = list(sampler)
        seen: list[int] = []
        for rank in (0, 1):
            sampler = EpochShuffleSampler(n, seed=0)
            loader = DataLoader(data, batch_size=batch, sampler=sampler, drop_last=True,
                                num_workers=2)
            shard = prepare_data_loader(loader, num_processes=2, process_index=rank,
                                        split_batches=True, put_on_device=False)
            shard.set_epoch(epoch)
            sampler.set_epoch(epoch)
            for b, ((views, _), labels) in enumerate(shard):
                assert len(labels) == batch // 2
                for j in range(len(labels)):
                    match = [i for i in range(n) if torch.equal(expected[i][0][0], views[j])]
                    assert len(match) == 1 and int(labels[j]) == expected[match[0]][1]
                    assert match[0] == order[b * batch + rank * 2 + j]  # its slice of the batch
                    seen.append(match[0])
        assert sorted(seen) == list(range(n)), epoch


RECIPE = ROOT / "recipes" / "image_levy2d.yaml"


def tiny_run(shards: Path, epochs: int = 2) -> list[str]:
    """A tiny ViT on 16 px views of the shards, batch 4, one loader worker, every step logged."""
    return ["data.name=image_shards", f"data.root={shards}", "data.batch_size=4",
            "data.workers=1", "views.global_size=16", "views.global_views=2",
            "encoder.img_size=16", "encoder.patch_size=4", "encoder.embed_dim=32",
            "encoder.depth=1", "encoder.num_heads=2", "encoder.pool_heads=2",
            "encoder.emb_dim=32", "encoder.proj_hidden=32", "method.sigreg.slices=16",
            "log.progress=false", "log.trackers=[]", "log.diagnostics_every=0",
            "log.pictures=false", "log.first_look=false", "log.every=1",
            "trainer.eval_every=0", "trainer.cpu_threads=1", f"trainer.epochs={epochs}"]


def losses(out: Path) -> tuple[list[int], list[float]]:
    """The steps and losses ``out/metrics.jsonl`` logged."""
    events = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    events = [e for e in events if "train/loss" in e]
    return [e["step"] for e in events], [e["train/loss"] for e in events]


def test_a_run_stopped_mid_epoch_resumes_exactly(shards: Path, tmp_path: Path) -> None:
    """8 training images, batch 4: a run stopped after step 1 (mid-epoch 0) and resumed to
    step 3 logs the losses of an uninterrupted 3-step run (loader worker reading the shards)."""

    def run(out: Path, steps: int, *extra: str) -> tuple[list[int], list[float]]:
        train(load_recipe(RECIPE, [*tiny_run(shards), f"out_dir={out}",
                                   f"trainer.max_steps={steps}", *extra]))
        return losses(out)

    straight_steps, straight = run(tmp_path / "straight", 3)
    run(tmp_path / "parted", 1)
    resumed_steps, resumed = run(tmp_path / "parted", 3, "resume=auto")
    assert straight_steps == resumed_steps == [1, 2, 3]  # step 1 logged once: not redone
    assert resumed == pytest.approx(straight, rel=1e-6)


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_exactly(shards: Path, tmp_path: Path) -> None:
    """SIGKILL after step 4 of a run checkpointed at step 3 (mid-epoch 1); resumed to step 5,
    it logs the losses of an uninterrupted run (about 20 s: a training subprocess)."""
    common = [*tiny_run(shards, epochs=500), "trainer.keep_steps=[3]"]
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "levyjepa.run", str(RECIPE), *common,
                             f"out_dir={killed}"], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 240
    while not (killed / "metrics.jsonl").is_file() or max(losses(killed)[0], default=0) < 4:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
        time.sleep(0.05)
    proc.kill()
    proc.communicate()
    assert "step_00000003" in [c.name for c in (killed / "checkpoints").iterdir()]
    train(load_recipe(RECIPE, [*common, f"out_dir={killed}", "trainer.max_steps=5",
                               "resume=auto"]))
    straight = tmp_path / "straight"
    train(load_recipe(RECIPE, [*common, f"out_dir={straight}", "trainer.max_steps=5"]))
    resumed_steps, resumed = losses(killed)
    straight_steps, expected = losses(straight)
    assert resumed_steps == straight_steps == [1, 2, 3, 4, 5]
    assert resumed == pytest.approx(expected, rel=1e-6)


# ---- damaged shards and members ---------------------------------------------------------------

def cut_inside_the_image_of(shard: Path, sample: int) -> None:
    """Truncate ``shard`` in the middle of the image bytes of its ``sample``-th sample."""
    with tarfile.open(shard) as tar:
        images = [m for m in tar.getmembers() if not m.name.endswith(".cls")]
    member = images[sample]
    data = shard.read_bytes()
    shard.write_bytes(data[:member.offset_data + member.size // 2])


@pytest.fixture
def fours(image_tree: Path, tmp_path: Path) -> Path:
    """``image_tree``'s training split in two shards of 4 samples (no test split)."""
    out = tmp_path / "fours"
    write(image_tree / "train", out, "--shard-size", "4")
    return out


def test_a_truncated_shard_keeps_its_samples_before_the_cut_and_counts_the_damaged_one(
        image_tree: Path, fours: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cut_inside_the_image_of(fours / "train-000001.tar", 2)  # item 6 damaged, item 7 gone
    splits = splits_from({"name": "image_shards", "root": str(fours)}, VIEWS, seed=0)
    built = capsys.readouterr().err.splitlines()
    assert built == [f"levyjepa: skipping unreadable shard {fours / 'train-000001.tar'}: "
                     f"truncated at byte {(fours / 'train-000001.tar').stat().st_size} (its "
                     "first 3 samples are indexed)"]
    folder = splits_from({"name": "image_folder", "root": str(image_tree), "test_split": None},
                         VIEWS, seed=0)
    assert len(splits.train) == 7
    for i in range(6):  # every sample before the damaged one: the folder's items
        (a, _), ya = folder.train[i]
        (b, _), yb = splits.train[i]
        assert torch.equal(a, b) and ya == yb
    assert splits.train[6][1] == folder.train[0][1]  # replaced by the next readable (wrapping)
    line = capsys.readouterr().err.strip()
    assert line.startswith(f"levyjepa: skipping unreadable image {fours / 'train-000001.tar'}:"
                           "00000006_img_2.png: truncated shard: ")
    assert skipped_files_metric(splits.train, device=torch.device("cpu")) == {
        "data/skipped_files": 1.0}
    with pytest.raises(ConfigError, match=r"^data.root: damaged shard '.*train-000001.tar': "
                                          r"truncated at byte \d+$"):
        image_shards(root=str(fours), on_error="raise")


def test_a_corrupt_or_missing_image_member_is_skipped_and_counted(
        fours: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shard = fours / "extra.tar"
    good = (fours / "train-000000.tar")
    with tarfile.open(good) as tar:
        first = tar.extractfile(next(m for m in tar if m.name.endswith(".png"))).read()
    with wds.TarWriter(str(shard), encoder=False) as writer:
        writer.write({"__key__": "a", "png": first, "cls": b"0"})
        writer.write({"__key__": "b", "jpg": b"not a jpeg at all", "cls": b"1"})
        writer.write({"__key__": "c", "cls": b"1"})  # no image member
        writer.write({"__key__": "d", "png": first, "cls": b"0"})
    splits = splits_from({"name": "image_shards", "root": str(shard)}, VIEWS, seed=0)
    got = [splits.train[i][1] for i in range(4)]
    assert got == [0, 0, 0, 0]  # items 1 and 2 replaced by the next readable one, item 3
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"levyjepa: skipping unreadable image {shard}:b.jpg: not an image file "
                     "PIL can identify (UnidentifiedImageError)",
                     f"levyjepa: skipping unreadable image {shard}:c: the sample has no "
                     "jpg/jpeg/png/webp/bmp/gif/tif/tiff member"]
    assert splits.train.skipped_files == 2
    strict = splits_from({"name": "image_shards", "root": str(shard), "on_error": "raise"},
                         VIEWS, seed=0)
    with pytest.raises(UnreadableFile, match=rf"^{shard}:b.jpg: not an image file PIL can "):
        strict.train[1]


def test_a_shard_that_is_not_a_tar_file(fours: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (fours / "train-000002.tar").write_bytes(b"garbage" * 100)
    assert len(image_shards(root=str(fours)).train.labels) == 8
    assert capsys.readouterr().err.startswith(
        f"levyjepa: skipping unreadable shard {fours / 'train-000002.tar'}: not a readable tar "
        "file (ReadError: ")
    with pytest.raises(ConfigError, match="^data.root: damaged shard .*: not a readable tar"):
        image_shards(root=str(fours), on_error="raise")


# ---- the writer -------------------------------------------------------------------------------

def error_of(capsys: pytest.CaptureFixture[str], *argv: object) -> str:
    """Run the writer, expecting exit status 2 and one line on stderr; return it."""
    assert write_main([str(a) for a in argv]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("levyjepa: error: "), lines
    return lines[0].removeprefix("levyjepa: error: ")


def test_the_writer_refuses_bad_input_in_one_line(image_tree: Path, shards: Path,
                                                  tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert error_of(capsys, tmp_path / "none", tmp_path / "o").startswith(
        f"SRC '{tmp_path / 'none'}' is not a folder; give an image or video folder")
    assert error_of(capsys, image_tree, shards) == (
        f"OUT '{shards}' exists; pass --overwrite to replace it, or name a new folder")
    assert error_of(capsys, image_tree, tmp_path / "o", "--shard-size", "0") == (
        "--shard-size must be a positive integer, got 0")
    assert error_of(capsys, image_tree, image_tree / "out").startswith("OUT '")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "a.png").write_bytes(b"x")
    (mixed / "b.mp4").write_bytes(b"x")
    assert error_of(capsys, mixed, tmp_path / "o") == (
        f"SRC '{mixed}' holds images and videos: pass --kind images or --kind video")
    (mixed / "a.png").unlink()
    (mixed / "b.mp4").unlink()
    assert error_of(capsys, mixed, tmp_path / "o").startswith(f"SRC '{mixed}' holds no images")
    assert not (tmp_path / "o").exists()


def test_an_interrupted_write_leaves_nothing_and_overwrite_replaces(
        image_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    real = Path.read_bytes
    calls = []

    def failing(path: Path) -> bytes:  # the 5th file read fails: shards are half written
        calls.append(path)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(path)

    monkeypatch.setattr(Path, "read_bytes", failing)
    with pytest.raises(KeyboardInterrupt):
        write_main([str(image_tree), str(out), "--shard-size", "2"])
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []  # no OUT, no staging folder
    write(image_tree, out, "--shard-size", "100", "--max-bytes", "1")  # one sample per shard
    assert len(list(out.glob("train-*.tar"))) == 8 and len(list(out.glob("val-*.tar"))) == 4
    write(image_tree, out, "--overwrite")
    assert sorted(p.name for p in out.iterdir()) == ["classes.json", "train-000000.tar",
                                                     "val-000000.tar"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


# ---- video --------------------------------------------------------------------------------------

CLIPS = dict(size=16, frames_per_clip=4, frame_step=2, views=2)


def test_video_shards_equal_the_video_folder_and_skip_a_corrupt_member(
        video_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(video_tree, tmp_path / "out", "--shard-size", "4")
    folder = splits_from({"name": "video_folder", "root": str(video_tree / "train"),
                          "test_root": str(video_tree / "val"), **CLIPS}, None, seed=0)
    sharded = splits_from({"name": "video_shards", "root": str(tmp_path / "out"), **CLIPS},
                          None, seed=0)
    assert sharded.num_classes == folder.num_classes == 2
    sharded.train.set_epoch(1)
    folder.train.set_epoch(1)
    same_items(folder.train, sharded.train)
    same_items(folder.test, sharded.test)
    shard = tmp_path / "bad.tar"
    good = (video_tree / "train").rglob("*.mp4").__next__().read_bytes()
    with wds.TarWriter(str(shard), encoder=False) as writer:
        writer.write({"__key__": "a", "mp4": b"\x00" * 4000})
        writer.write({"__key__": "b", "mp4": good})
    data = splits_from({"name": "video_shards", "root": str(shard), **CLIPS}, None, seed=0)
    assert data.num_classes == 0 and data.test is None
    assert data.train[0][0].shape == (2, 3, 4, 16, 16) and data.train.skipped_files == 1
    line = capsys.readouterr().err.strip()
    assert line.startswith(f"levyjepa: skipping unreadable video {shard}:a.mp4: pyav: ")
