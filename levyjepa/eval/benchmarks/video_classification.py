"""Frozen video classification: an attentive probe over a clip's tokens, multi-clip testing.

The protocol of V-JEPA 2's frozen evaluation (Assran et al. 2025, ``facebookresearch/vjepa2``,
``evals/video_classification_frozen``; V-JEPA, Bardes et al. 2024, before it): the encoder is
frozen, a video is cut into ``segments`` clips of ``frames_per_clip`` frames every
``frame_step`` source frames, each clip is seen in ``views`` spatial crops, an attentive probe
(:mod:`levyjepa.eval.benchmarks.attentive_probe`) classifies every clip from its tokens, and the
video's prediction is the mean of its clips' softmax probabilities. Kinetics-400: 16 frames,
step 4, 8 segments x 3 views, 256 px (the defaults here); Something-Something v2: 16 x 2 x 3.

- **Segments**: ``S`` starts evenly spaced over the valid starts ``[0, N - span]`` (``S = 1``:
  the centred clip); a video shorter than a clip repeats its last frame (``video_folder``'s
  ``pad``), see :mod:`levyjepa.data.video.clip_sampling`.
- **Views**: with ``views > 1`` the frames are resized so their short side is ``resolution``
  and ``views`` square crops are taken along the long side, at offsets ``i * ((long -
  resolution) // (views - 1))`` (left, centre, right for 3); with ``views = 1`` the short side
  is resized to ``resolution * 256 / 224`` and the centre square kept.
- **Training**: every training video gives ``train_segments x train_views`` clips (default all
  segments, one view), each a training sample with the video's label. Their tokens are computed
  once and kept in memory when they fit in ``max_cache_gb``; otherwise they are recomputed every
  epoch. A linear probe on the mean token trains beside the attentive one on the same batches.

Items are ``(path, label)`` pairs: :func:`clip_list_items` reads a clip list, and
:func:`dataset_items` takes the items of any ``video_folder`` or ``clip_list`` split.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from levyjepa.core.atomic import atomic_write_json, atomic_write_text
from levyjepa.core.errors import ConfigError, UnreadableFile
from levyjepa.core.progress import progress_bar
from levyjepa.data.loading.skipped_files import report_skipped
from levyjepa.data.video.clip_lists import read_clip_list
from levyjepa.data.video.clip_sampling import center_start, clip_indices, max_start
from levyjepa.data.video.video_sources import VideoFiles
from levyjepa.eval.benchmarks.attentive_probe import (
    AttentiveProbe,
    MeanTokenLinear,
    fit_probes,
    video_probabilities,
)

Encode = Callable[[torch.Tensor], torch.Tensor]
"""``encode(frames (n, T, 3, H, W) float in [0, 1]) -> tokens (n, L, D)``."""
VideoItems = Sequence[tuple["str | os.PathLike[str]", int]]
"""``[(video path, label), ...]``."""


def clip_list_items(path: str | Path) -> list[tuple[Path, int]]:
    """The ``(path, label)`` items of a clip list (see :mod:`levyjepa.data.video.clip_lists`)."""
    paths, labels = read_clip_list(path)
    return list(zip(paths, labels))


def benchmark_items(data_root: str | Path, *, train_list: str = "train.csv",
                    val_list: str = "val.csv") -> tuple[list, list, int]:
    """The items of a benchmark folder's two clip lists, and the number of classes.

    Args:
        data_root: The folder holding the lists.
        train_list, val_list: The lists' names in it (or absolute paths).

    Returns:
        ``(train_items, val_items, num_classes)``, ``num_classes`` one more than the largest
        label of either list.
    """
    root = Path(data_root).expanduser()
    train, val = clip_list_items(root / train_list), clip_list_items(root / val_list)
    return train, val, 1 + max(label for _, label in train + val)


def dataset_items(dataset: object) -> list[tuple[str, int]]:
    """The ``(path, label)`` items of a ``video_folder`` or ``clip_list`` split.

    Args:
        dataset: A :class:`levyjepa.data.video.video_clips.ClipDataset` over video files (e.g.
            ``splits.train_eval`` or ``splits.test`` of a recipe's data).

    Raises:
        ConfigError: when the dataset does not read video files.
    """
    videos = getattr(dataset, "videos", None)
    paths = getattr(videos, "paths", None)
    if paths is None:
        raise ConfigError(f"{type(dataset).__name__} does not read video files; video "
                          "classification takes the data sources video_folder and clip_list")
    return list(zip(paths, (int(x) for x in dataset.labels)))  # type: ignore[attr-defined]


def segment_starts(num_frames: int, *, segments: int, frames_per_clip: int,
                   frame_step: int) -> list[float]:
    """First frames of ``segments`` clips evenly spaced over a video.

    Example: 100 frames, 16-frame clips every 4 frames (span ``15 * 4 + 1 = 61``), 3 segments:
    valid starts ``0 .. 39``, starts ``0, 19, 39``.
    """
    last = max_start(num_frames, frames_per_clip, frame_step)
    if segments == 1:
        return [center_start(num_frames, frames_per_clip=frames_per_clip, step=frame_step)]
    if last <= 0:
        return [0.0] * segments
    return [float(math.floor(i * last / (segments - 1))) for i in range(segments)]


def spatial_views(frames: np.ndarray | torch.Tensor, *, resolution: int,
                  views: int) -> torch.Tensor:
    """The test crops of a clip (see the module docstring).

    Args:
        frames: uint8 ``(T, H, W, 3)``.
        resolution: Side of the square crops.
        views: Crops along the long side (1: one centre crop after resizing to
            ``resolution * 256 / 224``).

    Returns:
        float ``(views, T, 3, resolution, resolution)`` in ``[0, 1]``.
    """
    clip = torch.as_tensor(frames).permute(0, 3, 1, 2).float().div_(255.0)
    height, width = clip.shape[-2:]
    short = resolution if views > 1 else int(resolution * 256 / 224)
    scale = short / min(height, width)
    size = (max(short, round(height * scale)), max(short, round(width * scale)))
    if height <= width:
        size = (short, size[1])
    else:
        size = (size[0], short)
    clip = F.interpolate(clip, size=size, mode="bilinear", align_corners=False,
                         antialias=True).clamp_(0.0, 1.0)
    long_axis = 3 if size[1] >= size[0] else 2
    length = clip.shape[long_axis]
    if views == 1:
        offsets = [(length - resolution) // 2]
        across = (clip.shape[5 - long_axis] - resolution) // 2
    else:
        offsets = [i * ((length - resolution) // (views - 1)) for i in range(views)]
        across = 0
    crops = []
    for offset in offsets:
        if long_axis == 3:
            crops.append(clip[:, :, across:across + resolution, offset:offset + resolution])
        else:
            crops.append(clip[:, :, offset:offset + resolution, across:across + resolution])
    return torch.stack(crops)


class ClipReader:
    """Every test clip of a video: ``segments`` temporal clips x ``views`` spatial crops.

    Args:
        paths: The videos.
        segments, views, frames_per_clip, frame_step, resolution: See the module docstring.
        backend: ``auto``, ``decord``, ``pyav`` or ``torchcodec``.
    """

    def __init__(self, paths: Sequence[str | os.PathLike[str]], *, segments: int, views: int,
                 frames_per_clip: int, frame_step: int, resolution: int,
                 backend: str = "auto") -> None:
        self.files = VideoFiles(paths, backend=backend)
        self.segments, self.views = segments, views
        self.frames_per_clip, self.frame_step, self.resolution = (frames_per_clip, frame_step,
                                                                  resolution)

    def __call__(self, index: int) -> torch.Tensor:
        """float ``(segments * views, T, 3, r, r)``, segment-major.

        Raises:
            UnreadableVideo: when the file cannot be read.
        """
        common = dict(frames_per_clip=self.frames_per_clip, step=float(self.frame_step))

        def plan(num_frames: int, fps: float) -> list[np.ndarray]:
            starts = segment_starts(num_frames, segments=self.segments,
                                    frames_per_clip=self.frames_per_clip,
                                    frame_step=self.frame_step)
            return [clip_indices(num_frames, start=s, **common) for s in starts]

        clips = self.files.load(index, plan)
        return torch.cat([spatial_views(c, resolution=self.resolution, views=self.views)
                          for c in clips])


@torch.no_grad()
def _encode(encode: Encode, clips: torch.Tensor, *, batch_size: int, device: str) -> torch.Tensor:
    out = []
    for chunk in clips.split(batch_size):
        tokens = encode(chunk.to(device))
        if tokens.dim() != 3 or tokens.shape[0] != len(chunk):
            raise ConfigError(f"encode must map frames (n, T, 3, H, W) to tokens (n, L, D); "
                              f"got {tuple(tokens.shape)} for {tuple(chunk.shape)}")
        out.append(tokens.detach().float().cpu())
    return torch.cat(out)


def _check_items(name: str, items: VideoItems, num_classes: int) -> list[tuple[str, int]]:
    checked = [(os.fspath(path), label) for path, label in items]
    if not checked:
        raise ConfigError(f"{name}: no videos; give (path, label) pairs, e.g. from a clip list")
    for path, label in checked:
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < num_classes:
            raise ConfigError(f"{name}: '{path}' has label {label!r}; labels are integers "
                              f"0 .. num_classes - 1 = {num_classes - 1}")
    return checked


def evaluate_video_classification(
    encode: Encode,
    *,
    train_items: VideoItems,
    val_items: VideoItems,
    num_classes: int,
    out_dir: str | Path,
    frames_per_clip: int = 16,
    frame_step: int = 4,
    resolution: int = 256,
    segments: int = 8,
    views: int = 3,
    train_segments: int | None = None,
    train_views: int = 1,
    epochs: int = 20,
    lr: float = 1e-3,
    weight_decay: float = 0.01,
    batch_size: int = 16,
    num_heads: int = 1,
    num_queries: int = 1,
    mlp_ratio: float = 0.0,
    max_cache_gb: float = 4.0,
    backend: str = "auto",
    device: str = "cpu",
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Train an attentive probe on frozen clip tokens and score multi-clip top-1 accuracy.

    Args:
        encode: Frames ``(n, T, 3, H, W)`` float in ``[0, 1]`` (on ``device``) to tokens
            ``(n, L, D)`` (all ``T' x H' x W'`` tokens, flattened); called without gradients.
        train_items: ``(path, label)`` training videos.
        val_items: ``(path, label)`` validation videos.
        num_classes: Classes ``K``; labels in ``0 .. K - 1``.
        out_dir: Where ``video_classification.json`` and
            ``video_classification_predictions.csv`` are written.
        frames_per_clip: Frames per clip ``T``.
        frame_step: Source frames between clip frames.
        resolution: Side of the square crops in pixels.
        segments: Clips per validation video, evenly spaced in time.
        views: Spatial crops per validation clip.
        train_segments: Clips per training video (``None``: ``segments``).
        train_views: Spatial crops per training clip.
        epochs: Probe training epochs.
        lr: Peak AdamW learning rate (cosine decay to 0).
        weight_decay: AdamW weight decay.
        batch_size: Clips per probe step and per ``encode`` call.
        num_heads: Attention heads of the probe (must divide ``D``).
        num_queries: Learnable query tokens of the probe.
        mlp_ratio: MLP width of the probe's block over ``D`` (0: none).
        max_cache_gb: Keep the training tokens in memory up to this size; beyond it they are
            recomputed every epoch.
        backend: Video decoding backend, ``auto``, ``decord``, ``pyav`` or ``torchcodec``.
        device: Where the probes train and the frames are given to ``encode``.
        seed: Seed of the probe initialisation and the batch order.
        progress: Show progress bars.

    Returns:
        ``video_cls/top1`` (attentive probe, multi-clip), ``video_cls/linear_mean_top1`` (linear
        probe on the mean token, same clips and steps), ``video_cls/num_val`` and
        ``video_cls/skipped_files``; ``details``: per-class top-1, the last epoch's losses,
        the token shape and whether the tokens were cached.

    Raises:
        ConfigError: naming the invalid argument or item, or when no video can be read.
    """
    for name, value in (("num_classes", num_classes), ("frames_per_clip", frames_per_clip),
                        ("frame_step", frame_step), ("resolution", resolution),
                        ("segments", segments), ("views", views), ("train_views", train_views),
                        ("epochs", epochs), ("batch_size", batch_size),
                        ("train_segments", segments if train_segments is None
                         else train_segments)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    train = _check_items("train_items", train_items, num_classes)
    val = _check_items("val_items", val_items, num_classes)
    sampling = dict(frames_per_clip=frames_per_clip, frame_step=frame_step,
                    resolution=resolution, backend=backend)
    train_reader = ClipReader([p for p, _ in train], views=train_views,
                              segments=segments if train_segments is None else train_segments,
                              **sampling)
    per_train = train_reader.segments * train_views
    skipped: list[str] = []

    def tokens_of(reader: ClipReader, index: int) -> torch.Tensor | None:
        try:
            clips = reader(index)
        except UnreadableFile as err:
            report_skipped("video", err)
            skipped.append(reader.files.describe(index))
            return None
        return _encode(encode, clips, batch_size=batch_size, device=device)

    # training tokens, cached while they fit
    cache: list[torch.Tensor] = []
    cache_labels: list[int] = []
    cached, used = True, 0
    for i in progress_bar(range(len(train)), desc="train tokens", enable=progress):
        tokens = tokens_of(train_reader, i)
        if tokens is None:
            continue
        used += tokens.numel() * 4
        if used > max_cache_gb * 2**30:
            cached, cache = False, []
            cache_labels = []
            break
        cache.append(tokens)
        cache_labels += [train[i][1]] * len(tokens)
    if cached and not cache:
        raise ConfigError(f"train_items: none of the {len(train)} videos could be read")
    if cached:
        bank, bank_labels = torch.cat(cache), torch.tensor(cache_labels)
        length, dim = bank.shape[1:]
    else:
        length, dim = next(t for i in range(len(train))
                           if (t := tokens_of(train_reader, i)) is not None).shape[1:]
    generator = torch.Generator().manual_seed(seed)

    def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if cached:
            order = torch.randperm(len(bank), generator=generator)
            for chunk in order.split(batch_size):
                yield bank[chunk], bank_labels[chunk]
            return
        for i in torch.randperm(len(train), generator=generator).tolist():
            tokens = tokens_of(train_reader, i)
            for chunk in ([] if tokens is None else tokens.split(batch_size)):
                yield chunk, torch.full((len(chunk),), train[i][1], dtype=torch.int64)

    torch.manual_seed(seed)
    probes = {"attentive": AttentiveProbe(dim, num_classes, num_heads=num_heads,
                                          num_queries=num_queries, mlp_ratio=mlp_ratio),
              "linear_mean": MeanTokenLinear(dim, num_classes)}
    steps = (math.ceil(len(bank) / batch_size) if cached
             else len(train) * math.ceil(per_train / batch_size))
    losses = fit_probes(probes, batches, epochs=epochs, steps_per_epoch=steps, lr=lr,
                        weight_decay=weight_decay, device=device, progress=progress)

    # validation: every clip of every video, softmax averaged per video
    val_reader = ClipReader([p for p, _ in val], segments=segments, views=views, **sampling)
    rows, correct = [], {name: 0 for name in probes}
    per_class = torch.zeros(num_classes, 2)  # attentive hits, count
    for i in progress_bar(range(len(val)), desc="val videos", enable=progress):
        tokens = tokens_of(val_reader, i)
        if tokens is None:
            continue
        label = val[i][1]
        predicted = {name: int(video_probabilities(probe, tokens, clips=len(tokens),
                                                   batch_size=batch_size)[0].argmax())
                     for name, probe in probes.items()}
        for name in probes:
            correct[name] += int(predicted[name] == label)
        per_class[label] += torch.tensor([float(predicted["attentive"] == label), 1.0])
        rows.append([val[i][0], label, predicted["attentive"], predicted["linear_mean"]])
    if not rows:
        raise ConfigError(f"val_items: none of the {len(val)} videos could be read")
    metrics = {
        "video_cls/top1": correct["attentive"] / len(rows),
        "video_cls/linear_mean_top1": correct["linear_mean"] / len(rows),
        "video_cls/num_val": float(len(rows)),
        "video_cls/skipped_files": float(len(set(skipped))),
    }
    details = {
        "per_class_top1": {str(k): (float(per_class[k, 0] / per_class[k, 1])
                                    if per_class[k, 1] else None) for k in range(num_classes)},
        "train_loss": losses, "tokens": [int(length), int(dim)], "cached": cached,
        "clips_per_val_video": segments * views, "clips_per_train_video": per_train,
        "skipped": sorted(set(skipped)),
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "video_classification.json", {**metrics, "details": details})
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["path", "label", "attentive", "linear_mean"])
    writer.writerows(rows)
    atomic_write_text(out / "video_classification_predictions.csv", text.getvalue())
    return {**metrics, "details": details}
