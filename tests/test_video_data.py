"""Video data: generated clips written to files and read back through each decoding backend.

Frame indices are encoded in the pixels: frame ``k`` of an index video is flat grey at level
``16 + 9 k`` (a whole frame is one large flat block, which H.264 and MPEG-4 part 2 keep within
a grey level or two), so the frames a clip holds can be read back after decoding, cropping,
resizing and normalisation. Views are taken without augmentation where pixels are compared
(full-frame crop, no flip, no colour change).
"""

from __future__ import annotations

import math
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from levyjepa import DATA
from levyjepa.core.errors import ConfigError
from levyjepa.data.loading.skipped_files import skipped_files_metric
from levyjepa.data.video.clip_sampling import clip_indices, clip_step
from levyjepa.data.video.video_clips import ClipDataset
from levyjepa.data.video.video_folder import video_folder
from levyjepa.data.video.video_readers import (
    AUTO_ORDER,
    BACKENDS,
    available_backends,
    open_video,
)
from levyjepa.data.video.video_sources import UnreadableVideo, VideoFiles
from levyjepa.data.video.video_transforms import ClipAugmentation
from levyjepa.data.video.video_writer import write_video
from levyjepa.data.views.transforms import IMAGENET_MEAN, IMAGENET_STD

HEIGHT, WIDTH = 48, 64
NO_AUGMENTATION = dict(crop_scale=[1.0, 1.0], crop_ratio=[WIDTH / HEIGHT, WIDTH / HEIGHT],
                       flip_p=0.0, color_jitter_p=0.0, grayscale_p=0.0)
# torchcodec is never skipped: without FFmpeg its tests fail with the one line saying what to
# install (CI installs FFmpeg: .ci/run)
BACKEND_PARAMS = [pytest.param(b, marks=pytest.mark.skipif(
    b != "torchcodec" and b not in available_backends(), reason=f"{b} not installed"))
    for b in BACKENDS]


def level(k: int) -> int:
    return 16 + 9 * k


def index_frames(count: int) -> np.ndarray:
    """uint8 ``(count, H, W, 3)``: frame ``k`` flat at grey level ``16 + 9 k`` (count <= 27)."""
    assert count <= 27
    return np.stack([np.full((HEIGHT, WIDTH, 3), level(k), np.uint8) for k in range(count)])


def decode_indices(view: torch.Tensor) -> list[int]:
    """Frame indices of a normalised view ``(3, T, S, S)``, from each frame's grey level."""
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1, 1)
    grey = ((view * std + mean) * 255).mean(dim=(0, 2, 3))
    return [round((g - 16) / 9) for g in grey.tolist()]


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder per case, each holding index videos."""
    root = tmp_path_factory.mktemp("videos")
    cases = {
        "stride/a.mp4": (24, 30, "libx264"),
        "ntsc/a.mp4": (24, Fraction(30000, 1001), "libx264"),
        "fps24/a.mp4": (24, 24, "libx264"),
        "avi/a.avi": (24, 25, "mpeg4"),
        "short/a.mp4": (5, 30, "libx264"),
    }
    for name, (count, fps, codec) in cases.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        write_video(root / name, index_frames(count), fps=fps, codec=codec)
    smooth = np.linspace(0, 255, WIDTH, dtype=np.float64)[None, :, None] * np.ones((HEIGHT, 1, 3))
    smooth[:, :, 1] = np.linspace(255, 0, HEIGHT)[:, None]
    smooth[10:30, 20:40] = (200, 30, 60)
    (root / "static").mkdir()
    write_video(root / "static" / "a.mp4", np.repeat(smooth.astype(np.uint8)[None], 6, 0))
    return root


def clips(root: Path, backend: str, **kwargs: object) -> ClipDataset:
    options = dict(backend=backend, size=32, frames_per_clip=6, frame_step=3, views=2,
                   **NO_AUGMENTATION)
    options.update(kwargs)
    return video_folder(root=str(root), **options).train


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize("case", ["stride", "ntsc", "avi"])
def test_readers_return_the_frames_asked_for(videos: Path, backend: str, case: str) -> None:
    path = next((videos / case).iterdir())
    with open_video(str(path), backend) as reader:
        assert reader.num_frames == 24
        expected_fps = {"stride": 30.0, "ntsc": 30000 / 1001, "avi": 25.0}[case]
        assert reader.fps == pytest.approx(expected_fps, rel=1e-6)
        wanted = [0, 7, 3, 23, 3, 12]
        frames = reader.read(wanted)
    assert frames.shape == (len(wanted), HEIGHT, WIDTH, 3) and frames.dtype == np.uint8
    got = [round((float(f.mean()) - 16) / 9) for f in frames]
    assert got == wanted


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_clip_shape_frame_order_and_stride(videos: Path, backend: str) -> None:
    dataset = clips(videos / "stride", backend, frames_per_clip=6, frame_step=3, views=2)
    starts = set()
    for epoch in range(4):
        dataset.set_epoch(epoch)
        views, label = dataset[0]
        assert views.shape == (2, 3, 6, 32, 32) and views.dtype == torch.float32
        assert label == -1  # a folder of files without class sub-folders is unlabelled
        first = decode_indices(views[0])
        assert decode_indices(views[1]) == first  # the views share the frames
        assert np.diff(first).tolist() == [3] * 5  # in order, every third frame
        assert 0 <= first[0] <= 24 - 16  # the clip lies inside the video
        starts.add(first[0])
    assert len(starts) > 1  # the start is random


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_independent_starts_give_views_their_own_frames(videos: Path, backend: str) -> None:
    dataset = clips(videos / "stride", backend, frames_per_clip=4, frame_step=2, views=3,
                    independent_starts=True)
    differ = False
    for epoch in range(3):
        dataset.set_epoch(epoch)
        views, _ = dataset[0]
        per_view = [decode_indices(v) for v in views]
        assert all(np.diff(ix).tolist() == [2, 2, 2] for ix in per_view)
        differ |= len({ix[0] for ix in per_view}) > 1
    assert differ


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize(("case", "video_fps", "fps"), [("fps24", 24.0, 10.0),
                                                       ("ntsc", 30000 / 1001, 12.0)])
def test_target_fps_follows_the_file_rate(videos: Path, backend: str, case: str,
                                          video_fps: float, fps: float) -> None:
    """The centred test view at a target rate: the step is the file's rate over the target."""
    split = video_folder(root=str(videos / case), backend=backend, size=16, frames_per_clip=8,
                         frame_step=None, fps=fps, views=1)
    view, _ = split.train_eval[0]
    step = video_fps / fps  # 2.4 source frames, or 2.4975 for 29.97 fps
    start = (24 - (7 * step + 1)) / 2
    expected = [math.floor(start + k * step + 0.5) for k in range(8)]
    assert decode_indices(view) == expected
    assert clip_step(30000 / 1001, frame_step=None, fps=10.0) == pytest.approx(2.997003)


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
@pytest.mark.parametrize(("policy", "expected"), [("pad", [0, 1, 2, 3, 4, 4, 4, 4]),
                                                  ("loop", [0, 1, 2, 3, 4, 0, 1, 2])])
def test_short_video_policy(videos: Path, backend: str, policy: str, expected: list[int]
                            ) -> None:
    dataset = clips(videos / "short", backend, frames_per_clip=8, frame_step=1, views=2,
                    short_video=policy)
    for epoch in range(2):
        dataset.set_epoch(epoch)
        views, _ = dataset[0]
        assert [decode_indices(v) for v in views] == [expected, expected]


@pytest.mark.parametrize("backend", BACKEND_PARAMS)
def test_augmentation_is_identical_across_the_frames_of_a_view(videos: Path, backend: str
                                                              ) -> None:
    """A still video (identical decoded frames) under full augmentation: every view's frames
    stay identical to each other, while the views differ (crop, flip, colour drawn per view)."""
    dataset = video_folder(root=str(videos / "static"), backend=backend, size=24,
                           frames_per_clip=4, frame_step=1, views=4, color_jitter_p=1.0,
                           grayscale_p=0.3).train
    for epoch in range(3):
        dataset.set_epoch(epoch)
        views, _ = dataset[0]
        for view in views:
            for t in range(1, 4):
                assert torch.equal(view[:, t], view[:, 0])
        assert not torch.allclose(views[0], views[1])


def test_clip_augmentation_parameters_are_shared_by_frames() -> None:
    """Frames that differ only in brightness keep their difference after a view without colour
    change: the crop and flip are the same for every frame."""
    rows, cols = torch.meshgrid(torch.arange(40), torch.arange(50), indexing="ij")
    base = (2 * cols + rows).unsqueeze(-1).expand(40, 50, 3)  # varies along both axes
    clip = torch.stack([base + 20 * k for k in range(4)]).to(torch.uint8).numpy()
    augment = ClipAugmentation(size=16, color_jitter_p=0.0, grayscale_p=0.0)
    torch.manual_seed(3)
    view = augment(clip)
    assert view.shape == (3, 4, 16, 16)
    deltas = [view[:, k] - view[:, 0] for k in range(1, 4)]
    for k, delta in enumerate(deltas, start=1):
        expected = (20 * k / 255) / torch.tensor(IMAGENET_STD).view(3, 1, 1)
        torch.testing.assert_close(delta, expected.expand_as(delta), atol=0.04, rtol=0)


def test_views_are_reproducible_per_seed_epoch_and_index(videos: Path) -> None:
    dataset = video_folder(root=str(videos / "stride"), backend="pyav", size=16,
                           frames_per_clip=4, frame_step=2, views=2, seed=7).train
    dataset.set_epoch(2)
    a, _ = dataset[0]
    b, _ = dataset[0]
    assert torch.equal(a, b)
    dataset.set_epoch(3)
    assert not torch.equal(a, dataset[0][0])


def _corrupt_folder(root: Path, videos: Path) -> Path:
    root.mkdir()
    good = (videos / "stride" / "a.mp4").read_bytes()
    (root / "1_good.mp4").write_bytes(good)
    (root / "2_garbage.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    (root / "3_truncated.mp4").write_bytes(good[: len(good) // 3])
    (root / "4_empty.avi").write_bytes(b"")
    (root / "5_good.mp4").write_bytes(good)
    return root


@pytest.mark.parametrize("backend", [*BACKEND_PARAMS, "auto"])
def test_unreadable_files_are_skipped_and_counted(tmp_path: Path, videos: Path, backend: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    root = _corrupt_folder(tmp_path / "corrupt", videos)
    dataset = clips(root, backend, frames_per_clip=4, frame_step=2, views=2)
    items = [dataset[i] for i in range(len(dataset))]
    reported = capsys.readouterr().err.splitlines()
    assert [line.split(": ")[1] for line in reported] == [
        f"skipping unreadable video {root / name}"
        for name in ("2_garbage.mp4", "3_truncated.mp4", "4_empty.avi")]
    assert all(views.shape == (2, 3, 4, 32, 32) for views, _ in items)
    assert dataset.skipped_files == 3
    assert dataset.unreadable.tolist() == [0, 1, 1, 1, 0]
    # a skipped item is replaced by the next readable file (a clip of the index video)
    for views, _ in items:
        assert all(np.diff(decode_indices(v)).tolist() == [2, 2, 2] for v in views)
    assert skipped_files_metric(dataset, device=torch.device("cpu")) == {
        "data/skipped_files": 3.0}
    strict = clips(root, backend, frames_per_clip=4, frame_step=2, on_error="raise")
    with pytest.raises(UnreadableVideo, match="2_garbage.mp4"):
        strict[1]


def test_skipped_files_are_counted_across_loader_workers(tmp_path: Path, videos: Path) -> None:
    root = _corrupt_folder(tmp_path / "corrupt", videos)
    dataset = clips(root, "pyav", frames_per_clip=4, frame_step=2)
    loader = DataLoader(dataset, batch_size=1, num_workers=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batches = [views for views, _ in loader]
    assert len(batches) == 5
    assert dataset.skipped_files == 3  # written by the workers, seen by the main process


def test_auto_falls_back_to_the_next_backend(videos: Path, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    assert set(available_backends()) == set(BACKENDS)  # all three installed (torchcodec: FFmpeg)
    import levyjepa.data.video.video_sources as sources

    opened = []

    def failing_first(path: str, backend: str, *, threads: int = 1, name: str | None = None):
        opened.append(backend)
        if backend == AUTO_ORDER[0]:
            raise RuntimeError(f"{backend} cannot read this file")
        return open_video(path, backend, threads=threads, name=name)

    monkeypatch.setattr(sources, "open_video", failing_first)
    files = VideoFiles([str(videos / "stride" / "a.mp4")], backend="auto")
    assert files.order == AUTO_ORDER
    frames = files.load(0, lambda n, fps: [np.array([2, 5])])
    assert opened == list(AUTO_ORDER[:2])
    assert [round((float(f.mean()) - 16) / 9) for f in frames[0]] == [2, 5]


def test_labels_from_class_folders_and_test_root(tmp_path: Path, videos: Path) -> None:
    good = (videos / "stride" / "a.mp4").read_bytes()
    for split, names in (("train", ["b_cls/x.mp4", "a_cls/y.mp4", "a_cls/deep/z.mp4"]),
                         ("val", ["b_cls/v.mp4"])):
        for name in names:
            (tmp_path / split / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / split / name).write_bytes(good)
    split = video_folder(root=str(tmp_path / "train"), test_root=str(tmp_path / "val"),
                         backend="pyav", size=16, frames_per_clip=4, frame_step=2, views=2)
    assert split.num_classes == 2
    assert split.train.labels.tolist() == [0, 0, 1]  # a_cls (2 files, one nested), b_cls
    view, label = split.test[0]
    assert view.shape == (3, 4, 16, 16) and label == 1
    flat = video_folder(root=str(videos / "stride"), backend="pyav")
    assert flat.num_classes == 0 and flat.test is None


@pytest.mark.parametrize(("override", "match"), [
    ({"backend": "ffmpeg"}, "backend must be one of auto, decord, pyav, torchcodec"),
    ({"fps": 10.0}, "exactly one of frame_step and fps"),
    ({"short_video": "wrap"}, "short_video must be one of pad, loop"),
    ({"on_error": "ignore"}, "on_error must be one of skip, raise"),
    ({"frames_per_clip": 0}, "frames_per_clip must be a positive integer"),
    ({"crop_scale": [0.5, 0.2]}, "crop_scale"),
    ({"root": None}, "set data.root"),
])
def test_bad_parameters_are_refused(videos: Path, override: dict, match: str) -> None:
    section = {"name": "video_folder", "root": str(videos / "stride"), **override}
    with pytest.raises(ConfigError, match=match):
        DATA.build(section, where="data")


def test_clip_indices_unit_cases() -> None:
    assert clip_indices(100, frames_per_clip=4, step=3.0, start=5.0).tolist() == [5, 8, 11, 14]
    assert clip_indices(100, frames_per_clip=3, step=2.5, start=0.0).tolist() == [0, 3, 5]
    assert clip_indices(3, frames_per_clip=4, step=2.0, start=9.0,
                        short_video="loop").tolist() == [0, 2, 1, 0]
