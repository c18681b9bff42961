"""levyjepa.eval.tracking: world-position oracle, look-alikes, blind features, bad inputs."""

from __future__ import annotations

import pytest
import torch

from levyjepa.eval.tracking import evaluate_tracking, track_points

P = 4  # patch side: 32 x 32 frames on an 8 x 8 patch grid
H = W = 8


def world_clip(frames: int, dx: int, dy: int) -> torch.Tensor:
    """``(T, 8, 8, D)`` one-hot of the world position each patch shows; content moves rigidly.

    Frame ``t``'s patch ``(r, c)`` shows world patch ``(r - dy t, c - dx t)``: the content
    translates by ``(dx, dy)`` whole patches per frame, so every world position has its own
    feature and a position's feature is found again exactly where the motion carries it.
    """
    rows = torch.arange(H)[None, :, None] - dy * torch.arange(frames)[:, None, None]
    cols = torch.arange(W)[None, None, :] - dx * torch.arange(frames)[:, None, None]
    rows, cols = rows.expand(frames, H, W), cols.expand(frames, H, W)
    index = (rows - rows.min()) * (cols.max() - cols.min() + 1) + (cols - cols.min())
    return torch.nn.functional.one_hot(index, int(index.max()) + 1).float()


def ground_truth(queries: torch.Tensor, frames: int, dx: int, dy: int):
    """``(N, T, 2)`` tracks of frame-0 points under the motion, and their ``(N, T)`` visibility."""
    step = torch.tensor([dx * P, dy * P], dtype=torch.float32)
    tracks = queries[:, None] + torch.arange(frames)[None, :, None] * step
    inside = (tracks > 0) & (tracks < torch.tensor([W * P, H * P]))
    return tracks, inside.all(-1)


def centres() -> torch.Tensor:
    """``(8, 2)`` queries at patch centres of the upper-left part of the frame."""
    return torch.tensor([[c + 0.5, r + 0.5] for r, c in [(0, 0), (1, 2), (2, 1), (3, 3),
                                                         (0, 4), (4, 0), (2, 5), (5, 2)]]) * P


def between_patches() -> torch.Tensor:
    """``(4, 2)`` queries on a vertical edge, a horizontal edge and two corners of patches."""
    return torch.tensor([[2.0, 1.5], [1.5, 2.0], [2.0, 2.0], [3.0, 1.0]]) * P


@pytest.mark.parametrize(("dx", "dy"), [(1, 0), (0, 1), (1, -1)])
@pytest.mark.parametrize("method", ["nearest", "soft_argmax"])
def test_world_position_oracle_recovers_the_translation(method, dx, dy):
    """Patch-centre queries: the best patch is the true one (cosine 1, all others 0).

    ``nearest`` returns its centre exactly; ``soft_argmax`` at temperature 0.05 gives each of
    the 8 other window patches a weight e^-20 ~ 2e-9, a bias far below a pixel.
    """
    feats, queries = world_clip(6, dx, dy), centres()
    gt, vis = ground_truth(queries, 6, dx, dy)
    tracks = track_points(feats, queries, patch=P, method=method)
    assert tracks.shape == (8, 6, 2) and torch.equal(tracks[:, 0], queries)
    assert torch.allclose(tracks[vis], gt[vis], atol=1e-3)
    res = evaluate_tracking([feats], [gt], [vis], patch=P, frame_size=32, method=method)
    assert res["delta_avg"] == 1.0 and res["occlusion_acc"] == 1.0 and res["points"] == 8


@pytest.mark.parametrize(("dx", "dy"), [(1, 0), (1, 1)])
def test_queries_between_patches_need_the_soft_argmax(dx, dy):
    """Off-centre queries: the bilinear descriptor mixes the 2 (or 4) patches around the point.

    On an edge the descriptor is (e_a + e_b) / sqrt 2: both patches reach cosine 0.71 in every
    frame, ``soft_argmax`` averages their centres, which is the query's moved position (the
    other window patches weigh e^-14). ``nearest`` must pick one patch, half a patch or more
    off: 2 px, i.e. 16 px at TAP-Vid's 256 reference, which fails even the 16 px threshold
    (the comparison is strict).
    """
    feats, queries = world_clip(5, dx, dy), between_patches()
    gt, vis = ground_truth(queries, 5, dx, dy)
    tracks = track_points(feats, queries, patch=P)
    assert torch.allclose(tracks[vis], gt[vis], atol=1e-3)
    res = evaluate_tracking([feats], [gt], [vis], patch=P, frame_size=(32, 32))
    assert res["delta_avg"] == 1.0
    nearest = evaluate_tracking([feats], [gt], [vis], patch=P, frame_size=32, method="nearest")
    assert nearest["delta_avg"] == 0.0


def test_window_keeps_distant_look_alikes_out():
    """A near-copy of the point far away pulls an unrestricted soft-argmax, not a 3 x 3 one."""
    feats = world_clip(2, 0, 0)
    feats[1, 2, 7] = 0.99 * feats[1, 2, 2] + 0.01 * feats[1, 2, 7]  # look-alike 5 patches off
    query = torch.tensor([[2.5, 2.5]]) * P
    local = track_points(feats, query, patch=P)
    free = track_points(feats, query, patch=P, window=8)
    assert torch.allclose(local[0, 1], query[0], atol=1e-3)
    assert free[0, 1, 0] > query[0, 0] + 4  # dragged more than a patch towards column 7


def test_visibility_follows_the_best_similarity():
    """Points leaving the frame or covered by an occluder have no matching patch: occluded."""
    feats = world_clip(5, 1, 0)
    occluder = torch.nn.functional.one_hot(torch.tensor(feats.shape[-1]), feats.shape[-1] + 1)
    feats = torch.cat([feats, torch.zeros(*feats.shape[:-1], 1)], -1)
    feats[2, 1:3, 2:5] = occluder.float()  # covers the points at patch rows 1-2 in frame 2
    queries = centres()
    gt, vis = ground_truth(queries, 5, 1, 0)
    hidden = ((gt[:, 2] / P).floor() >= torch.tensor([2, 1])) & \
             ((gt[:, 2] / P).floor() <= torch.tensor([4, 2]))
    vis[:, 2] &= ~hidden.all(-1)
    assert not vis[:, 2].all()  # the occluder hides at least one point
    tracks, pred_vis = track_points(feats, queries, patch=P, return_visibility=True)
    assert pred_vis.dtype == torch.bool and torch.equal(pred_vis, vis)
    res = evaluate_tracking([feats], [gt], [vis], patch=P, frame_size=32)
    assert res["occlusion_acc"] == 1.0 and res["delta_avg"] == 1.0


def test_random_features_score_far_below_one():
    """I.i.d. features carry no correspondence: each prediction lands on a random patch.

    The largest threshold is 16 px at the 256 reference, 2 px on these 32 px frames, while
    patch centres are 4 px apart: a point scores only when the prediction falls on its true
    patch, about 1 time in 64, so ``delta_avg`` ~ 0.016 (measured 0.010 for both methods).
    """
    g = torch.Generator().manual_seed(0)
    queries = centres()
    gt, vis = ground_truth(queries, 6, 1, 0)
    clips = [torch.randn(6, H, W, 32, generator=g) for _ in range(3)]
    for method in ("nearest", "soft_argmax"):
        res = evaluate_tracking(clips, [gt] * 3, [vis] * 3, patch=P, frame_size=32, method=method)
        assert res["clips"] == 3 and res["delta_avg"] < 0.1


def test_tracks_keep_the_features_dtype_and_drop_hidden_queries():
    feats = world_clip(3, 1, 0).double()
    queries = centres()
    assert track_points(feats, queries, patch=P).dtype == torch.float64
    gt, vis = ground_truth(queries, 3, 1, 0)
    vis[0, 0] = False  # cannot be queried in frame 0: left out
    res = evaluate_tracking([feats], [gt], [vis], patch=P, frame_size=32)
    assert res["points"] == 7 and res["delta_avg"] == 1.0


@pytest.mark.parametrize(
    ("feats", "queries", "kwargs", "match"),
    [
        (torch.zeros(2, 8, 8), torch.zeros(1, 2), {}, "feats"),
        (torch.zeros(2, 8, 8, 3), torch.zeros(1, 3), {}, "queries"),
        (torch.zeros(2, 8, 8, 3), torch.full((1, 2), 33.0), {}, "queries"),
        (torch.zeros(2, 8, 8, 3), torch.full((1, 2), -1.0), {}, "queries"),
        (torch.zeros(2, 8, 8, 3), torch.zeros(1, 2), {"patch": 0}, "patch"),
        (torch.zeros(2, 8, 8, 3), torch.zeros(1, 2), {"method": "argmax"}, "method"),
        (torch.zeros(2, 8, 8, 3), torch.zeros(1, 2), {"temperature": 0}, "temperature"),
        (torch.zeros(2, 8, 8, 3), torch.zeros(1, 2), {"window": -1}, "window"),
    ],
)
def test_bad_inputs_raise(feats, queries, kwargs, match):
    with pytest.raises(ValueError, match=match):
        track_points(feats, queries, **{"patch": P, **kwargs})


def test_evaluate_bad_inputs_raise():
    feats, queries = world_clip(3, 1, 0), centres()
    gt, vis = ground_truth(queries, 3, 1, 0)
    with pytest.raises(ValueError, match="frame_size"):
        evaluate_tracking([feats], [gt], [vis], patch=P, frame_size=64)
    with pytest.raises(ValueError, match="clips_tracks"):
        evaluate_tracking([feats], [gt[:, :2]], [vis[:, :2]], patch=P, frame_size=32)
    with pytest.raises(ValueError, match="clips_visible"):
        evaluate_tracking([feats], [gt], [], patch=P, frame_size=32)
    with pytest.raises(ValueError, match="frame 0"):
        evaluate_tracking([feats], [gt], [torch.zeros_like(vis)], patch=P, frame_size=32)
