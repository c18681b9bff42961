"""DAVIS 2017 semi-supervised video object segmentation by label propagation on frozen features.

Frame 0's annotation is carried through each sequence by nearest-neighbour voting in feature
space, with no training: the protocol of DINO (Caron et al., "Emerging Properties in
Self-Supervised Vision Transformers", ICCV 2021, ``facebookresearch/dino``,
``eval_video_segmentation.py``), itself after CRW (Jabri et al., "Space-Time Correspondence as a
Contrastive Random Walk", NeurIPS 2020). Per frame ``t >= 1``:

1. the frame is resized (bilinear) so that its short side is ``short_side`` and its long side
   ``short_side * long / short`` floored to a multiple of ``size_multiple`` (DINO: 480 x 832 for
   a 480 x 854 frame); its tokens ``(h, w, C)`` come from the feature function, L2-normalised;
2. the context is frame 0 (labels: its annotation, void set to background, resized to the
   ``h x w`` grid by nearest neighbour, one-hot over the ids ``0 .. N``) and the ``context``
   previous frames (their *soft* predicted labels);
3. each query token keeps the ``topk`` largest cosine affinities among the context tokens within
   ``radius`` patches of its position (a square, Chebyshev box in DINO and CRW, a disk in the
   DINOv3 notebook), ties with the k-th kept, and averages their labels with the weights
   ``softmax(affinity / temperature)`` (DINO's ``exp(aff / 0.1)`` normalised to sum 1);
4. the soft labels are upsampled bilinearly by the patch size, optionally min-max normalised per
   id over the frame (DINO's ``norm_mask``; a constant channel is left as is), the argmax is
   resized back to the annotation's size by nearest neighbour and written as a palette PNG.

Frames are read, resized and embedded ``chunk`` at a time, and only the context's features are
kept, so memory does not grow with the sequence's length; affinities are computed for a band of
query rows at a time. Scoring: :mod:`levyjepa.eval.benchmarks.davis_scoring`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from levyjepa.core.errors import ConfigError
from levyjepa.core.progress import progress_bar
from levyjepa.eval.benchmarks import davis_io as dio
from levyjepa.eval.benchmarks.davis_scoring import GLOBAL_COLUMNS, score_results

FeatureFn = Callable[[torch.Tensor], torch.Tensor]

PRESETS: dict[str, dict[str, object]] = {
    "dino": dict(short_side=480, size_multiple=64, context=7, radius=12, neighbourhood="square",
                 topk=5, temperature=0.1, norm_mask=True),
    "dinov3": dict(short_side=960, size_multiple=64, context=7, radius=12, neighbourhood="circle",
                   topk=5, temperature=0.2, norm_mask=False),
    "crw": dict(short_side=480, size_multiple=64, context=20, radius=12, neighbourhood="square",
                topk=10, temperature=0.05, norm_mask=False),
}
"""Protocol parameters per preset; any of them can be overridden by keyword."""

EXTRA = {"chunk": 8, "pictures": 4}
_BUDGET = 1 << 22  # affinity entries per query band (16 MiB in float32)


def resized_size(height: int, width: int, *, short_side: int,
                 size_multiple: int) -> tuple[int, int]:
    """DINO's frame size: short side ``short_side``, long side floored to ``size_multiple``.

    Returns:
        ``(H', W')``; e.g. ``(480, 832)`` for ``(480, 854)`` with 480 and 64.
    """
    if height > width:
        return int(short_side * height / width // size_multiple * size_multiple), short_side
    return short_side, int(short_side * width / height // size_multiple * size_multiple)


def _check_params(preset: str, overrides: dict[str, object]) -> dict[str, object]:
    """The preset's parameters with the overrides, validated (one ConfigError line)."""
    if preset not in PRESETS:
        raise ConfigError(f"DAVIS: unknown preset={preset!r}; choose one of {sorted(PRESETS)}")
    params = {**PRESETS[preset], **EXTRA}
    unknown = sorted(set(overrides) - set(params))
    if unknown:
        raise ConfigError(f"DAVIS: unknown key {unknown[0]!r}; valid keys: {sorted(params)}")
    params.update(overrides)
    for key, low in (("short_side", 1), ("size_multiple", 1), ("context", 0), ("topk", 1),
                     ("chunk", 1), ("pictures", 0)):
        v = params[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ConfigError(f"DAVIS: {key} must be an integer >= {low}, got {v!r}")
    r = params["radius"]
    if r is not None and (isinstance(r, bool) or not isinstance(r, int) or r < 0):
        raise ConfigError(f"DAVIS: radius must be an integer >= 0 or None, got {r!r}")
    if params["neighbourhood"] not in ("square", "circle"):
        raise ConfigError(f"DAVIS: neighbourhood must be 'square' or 'circle', got "
                          f"{params['neighbourhood']!r}")
    t = params["temperature"]
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not t > 0:
        raise ConfigError(f"DAVIS: temperature must be a number > 0, got {t!r}")
    if not isinstance(params["norm_mask"], bool):
        raise ConfigError(f"DAVIS: norm_mask must be true or false, got {params['norm_mask']!r}")
    return params


def _near(rows: tuple[int, int], keys: tuple[int, int], w: int, radius: int, circle: bool,
          device: torch.device) -> torch.Tensor:
    """Bool ``(queries, keys)``: the key tokens of rows ``keys`` near each query of ``rows``."""
    qr, qc = torch.meshgrid(torch.arange(*rows, device=device), torch.arange(w, device=device),
                            indexing="ij")
    kr, kc = torch.meshgrid(torch.arange(*keys, device=device), torch.arange(w, device=device),
                            indexing="ij")
    dr = qr.flatten()[:, None] - kr.flatten()[None]
    dc = qc.flatten()[:, None] - kc.flatten()[None]
    if circle:
        return dr * dr + dc * dc <= radius * radius
    return (dr.abs() <= radius) & (dc.abs() <= radius)


def vote(query: torch.Tensor, ctx_feats: torch.Tensor, ctx_labels: torch.Tensor, *,
         radius: int | None, circle: bool, topk: int, temperature: float) -> torch.Tensor:
    """Soft labels of one frame's tokens from a context (step 3 of the protocol).

    Args:
        query: ``(h, w, C)`` L2-normalised tokens of the frame.
        ctx_feats: ``(n, h, w, C)`` L2-normalised tokens of the context frames.
        ctx_labels: ``(n, h, w, K)`` soft labels of the context frames.
        radius: Neighbourhood radius in patches, ``None`` for the whole frame.
        circle: Disk (``True``) or square box (``False``) neighbourhood.
        topk: Voting context tokens per query.
        temperature: Softmax temperature.

    Returns:
        ``(h, w, K)`` soft labels (each token's sum to 1).
    """
    n, h, w, c = ctx_feats.shape
    reach = h if radius is None else radius
    band = h
    while band > 1 and band * w * n * min(h, band + 2 * reach) * w > _BUDGET:
        band = max(1, band // 2)
    out = []
    for r0 in range(0, h, band):
        r1 = min(h, r0 + band)
        k0, k1 = max(0, r0 - reach), min(h, r1 + reach)
        q = query[r0:r1].reshape(-1, c)
        aff = (q @ ctx_feats[:, k0:k1].reshape(-1, c).T).view(len(q), n, -1)
        if radius is not None:
            near = _near((r0, r1), (k0, k1), w, radius, circle, q.device)
            aff = aff.masked_fill_(~near[:, None], float("-inf"))
        aff = aff.reshape(len(q), -1)
        kth = aff.topk(min(topk, aff.shape[1]), dim=1).values[:, -1:]
        drop = aff < kth  # below the k-th: weight 0; ties with it are kept
        aff = aff.div_(temperature).masked_fill_(drop, float("-inf"))
        del drop
        labels = ctx_labels[:, k0:k1].reshape(-1, ctx_labels.shape[-1]).to(aff.dtype)
        out.append((torch.softmax(aff, dim=1) @ labels).view(r1 - r0, w, -1))
        del aff
    return torch.cat(out)


def _to_mask(soft: torch.Tensor, patch: int, size: tuple[int, int], norm_mask: bool) -> np.ndarray:
    """``(h, w, K)`` soft labels -> uint8 ``(H, W)`` ids at the annotation's size (step 4)."""
    up = F.interpolate(soft.permute(2, 0, 1)[None].float(), scale_factor=patch, mode="bilinear",
                       align_corners=False)[0]
    if norm_mask:
        lo = up.amin((1, 2), keepdim=True)
        span = up.amax((1, 2), keepdim=True) - lo
        keep = (up.amax((1, 2), keepdim=True) <= 0) | (span <= 0)
        up = torch.where(keep, up, (up - lo) / span.clamp_min(1e-30))
    ids = up.argmax(0).to(torch.uint8).cpu().numpy()
    return np.array(Image.fromarray(ids).resize((size[1], size[0]), Image.NEAREST))


def propagate_sequence(features: FeatureFn, frames: list[Path], first: np.ndarray, *, patch: int,
                       **params: object) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Propagate frame 0's annotation through a sequence (the module's protocol).

    Args:
        features: Frames ``(n, 3, H', W')`` in [0, 1] -> tokens ``(n, H' // patch, W' // patch,
            C)``.
        frames: The sequence's JPEG paths, in order.
        first: uint8 ``(H, W)`` annotation of frame 0 (255 = void, taken as background).
        patch: Patch side in pixels.
        **params: A preset's parameters and ``chunk`` (:data:`PRESETS`, :data:`EXTRA`).

    Yields:
        ``(frame, mask)`` per frame: uint8 ``(H0, W0, 3)`` RGB and uint8 ``(H, W)`` ids (frame 0:
        ``first`` with void set to 0).
    """
    first = np.where(first == dio.VOID, 0, first).astype(np.uint8)
    n_ids = int(first.max()) + 1
    ctx: deque[tuple[torch.Tensor, torch.Tensor]] = deque(maxlen=int(params["context"]))
    anchor = None
    for start in range(0, len(frames), int(params["chunk"])):
        rgb = [dio.read_frame(p) for p in frames[start:start + int(params["chunk"])]]
        size = resized_size(*rgb[0].shape[:2], short_side=int(params["short_side"]),
                            size_multiple=int(params["size_multiple"]))
        batch = torch.from_numpy(np.stack(rgb)).permute(0, 3, 1, 2).float() / 255
        batch = F.interpolate(batch, size=size, mode="bilinear", align_corners=False)
        with torch.no_grad():
            tokens = features(batch.clamp(0, 1))
        expect = (len(rgb), size[0] // patch, size[1] // patch)
        if tokens.ndim != 4 or tuple(tokens.shape[:3]) != expect:
            raise ConfigError(f"DAVIS: the feature function returned {tuple(tokens.shape)} for "
                              f"frames of {size}, expected (n, h, w, C) = {expect} + (C,) with "
                              f"patch {patch}")
        del batch
        tokens = F.normalize(tokens.float(), dim=-1)
        h, w = expect[1:]
        for frame, query in zip(rgb, tokens):
            if anchor is None:
                grid = np.array(Image.fromarray(first).resize((w, h), Image.NEAREST))
                onehot = F.one_hot(torch.from_numpy(grid).long(), n_ids).to(query)
                anchor = (query.clone(), onehot)  # a copy: a view would keep the chunk alive
                yield frame, first
                continue
            feats = torch.stack([anchor[0], *(f for f, _ in ctx)])
            labels = torch.stack([anchor[1], *(s for _, s in ctx)])
            soft = vote(query, feats, labels, radius=params["radius"],
                        circle=params["neighbourhood"] == "circle", topk=int(params["topk"]),
                        temperature=float(params["temperature"]))
            if ctx.maxlen:
                ctx.append((query.clone(), soft))
            yield frame, _to_mask(soft, patch, first.shape, bool(params["norm_mask"]))
            del feats, labels
        del tokens


def evaluate_davis(
    features: FeatureFn,
    *,
    root: Path,
    out_dir: Path,
    split: str = "val",
    preset: str = "dino",
    sequences: list[str] | None = None,
    progress: bool = True,
    patch: int | None = None,
    **overrides: object,
) -> dict:
    """Propagate, write and score DAVIS 2017 semi-supervised (the official tool's rules).

    Args:
        features: Frames ``(n, 3, H, W)`` float in [0, 1] on the CPU (not colour-normalised)
            -> tokens ``(n, H // patch, W // patch, C)`` on any device (the propagation runs
            there); its ``patch`` attribute gives the patch size unless ``patch`` is passed.
        root: The DAVIS root (``JPEGImages/480p``, ``Annotations/480p``, ``ImageSets/2017``).
        out_dir: Receives ``<seq>/<frame>.png`` (palette masks, the annotations' palette),
            ``global_results-<split>.csv``, ``per-sequence_results-<split>.csv`` and
            ``pictures/``.
        split: The ``ImageSets/2017/<split>.txt`` list.
        preset: ``dino``, ``dinov3`` or ``crw`` (:data:`PRESETS`).
        sequences: A subset of sequences (default: the split's list).
        progress: Show a progress bar.
        patch: Patch size (default ``features.patch``).
        **overrides: ``short_side``, ``size_multiple``, ``context``, ``radius`` (``None``: whole
            frame), ``neighbourhood`` (``square``/``circle``), ``topk``, ``temperature``,
            ``norm_mask``, ``chunk`` (frames embedded at once, 8), ``pictures`` (overlays of
            the first sequence, 4).

    Returns:
        ``davis/j_and_f``, ``davis/j_mean``, ``davis/j_recall``, ``davis/j_decay``,
        ``davis/f_mean``, ``davis/f_recall``, ``davis/f_decay``, ``davis/objects``,
        ``davis/sequences`` floats, and ``davis/per_object``: ``{"<seq>_<id>": {"J-Mean", ...}}``.
    """
    params = _check_params(preset, overrides)
    patch = getattr(features, "patch", None) if patch is None else patch
    if isinstance(patch, bool) or not isinstance(patch, int) or patch < 1:
        raise ConfigError(f"DAVIS: patch must be an integer >= 1 (argument or the feature "
                          f"function's .patch), got {patch!r}")
    root, out_dir = Path(root), Path(out_dir)
    seqs = list(sequences) if sequences is not None else dio.split_sequences(root, split)
    if not seqs:
        raise ConfigError("DAVIS: sequences is empty")
    trees = {s: (dio.frame_paths(root, s), dio.annotation_paths(root, s)) for s in seqs}
    total = sum(len(f) for f, _ in trees.values())
    bar = progress_bar(total=total, desc="davis propagation", enable=progress)
    for n_seq, (seq, (frames, anns)) in enumerate(trees.items()):
        first, palette = dio.read_annotation(anns[0])
        shots = _picture_frames(len(frames), int(params["pictures"])) if n_seq == 0 else set()
        for t, (rgb, mask) in enumerate(propagate_sequence(features, frames, first, patch=patch,
                                                           **params)):
            dio.write_palette_png(out_dir / seq / f"{frames[t].stem}.png", mask, palette)
            if t in shots:
                pic = np.array(Image.fromarray(mask).resize(rgb.shape[1::-1], Image.NEAREST))
                dio.write_picture(out_dir / "pictures" / f"{seq}_{frames[t].stem}.png",
                                  dio.overlay(rgb, pic, palette))
            bar.update(1)
    bar.close()
    scored = score_results(root=root, results=out_dir, sequences=seqs, split=split)
    g = scored["global"]
    keys = ("j_and_f", "j_mean", "j_recall", "j_decay", "f_mean", "f_recall", "f_decay")
    out: dict = {f"davis/{k}": float(g[c]) for k, c in zip(keys, GLOBAL_COLUMNS)}
    out["davis/objects"] = float(len(scored["objects"]))
    out["davis/sequences"] = float(len(seqs))
    out["davis/per_object"] = scored["objects"]
    return out


def _picture_frames(n: int, count: int) -> set[int]:
    """Up to ``count`` frame indices spread evenly over ``0 .. n - 1``."""
    if count <= 0:
        return set()
    return {round(i * (n - 1) / max(1, count - 1)) for i in range(count)}
