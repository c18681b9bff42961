"""TAP-Vid on tiny pickles in the exact format: reading, queries, oracle, random features."""

from __future__ import annotations

import io
import json
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from levyjepa.core.errors import ConfigError
from levyjepa.eval.benchmarks.tapvid import evaluate_tapvid, track_queries
from levyjepa.eval.benchmarks.tapvid_data import iter_videos, resize_video, sample_queries
from levyjepa.eval.benchmarks.tapvid_metrics import tapvid_metrics

S, P, T = 256, 8, 10  # 256 x 256 frames, 8-pixel cells (a 32 x 32 grid), 10 frames
# Tracks: start cell (row, col), step in cells per frame, occluded frames.
TRACKS = [
    ((2, 2), (0, 1), ()),                  # 0: visible throughout
    ((10, 20), (1, -1), (3, 4)),           # 1: occluded in frames 3, 4
    ((20, 5), (0, 2), (0, 1, 2, 3)),       # 2: first visible at frame 4 (a late query)
    ((0, 0), (0, 0), tuple(range(T))),     # 3: never visible (no query)
    ((28, 28), (-1, 0), (6, 7, 8, 9)),     # 4: occluded from frame 6 on
]


def colour(k: int) -> tuple[int, int, int]:
    """Track ``k``'s code colour: red = 40 (k + 1), green 255."""
    return (40 * (k + 1), 255, 0)


def make_video(shift: int = 0) -> dict:
    """One entry as in ``tapvid_davis.pkl``: each visible point is a solid 8 x 8 cell of its
    colour, the cell centred on the point; an occluded point is not drawn."""
    video = np.zeros((T, S, S, 3), np.uint8)
    points = np.zeros((len(TRACKS), T, 2), np.float32)
    occluded = np.zeros((len(TRACKS), T), bool)
    for k, ((r0, c0), (dr, dc), hidden) in enumerate(TRACKS):
        for t in range(T):
            r, c = r0 + dr * t, (c0 + dc * t + shift) % 32
            points[k, t] = ((c + 0.5) * P / S, (r + 0.5) * P / S)  # exact in float32
            occluded[k, t] = t in hidden
            if not occluded[k, t]:
                video[t, r * P:(r + 1) * P, c * P:(c + 1) * P] = colour(k)
    return {"video": video, "points": points, "occluded": occluded}


def write_davis(path, names=("bear", "goat")) -> None:
    with open(path, "wb") as f:
        pickle.dump({n: make_video(shift=i) for i, n in enumerate(names)}, f)


def oracle(frames: torch.Tensor) -> torch.Tensor:
    """One-hot of the track whose colour fills each cell (the pixel at the cell centre)."""
    cell = frames.shape[-1] // 32
    centre = frames[:, :, cell // 2::cell, cell // 2::cell]  # (n, 3, 32, 32)
    k = torch.round(centre[:, 0] * 255 / 40).long() - 1
    drawn = (centre[:, 1] > 0.5) & (k >= 0) & (k < len(TRACKS))
    return torch.nn.functional.one_hot(k.clamp(0, len(TRACKS) - 1), len(TRACKS)).float() * \
        drawn[..., None]


class RandomFeatures:
    """iid Gaussian 8 x 8 x 512 fields, unrelated to the frames."""

    def __init__(self, seed: int = 0) -> None:
        self.gen = torch.Generator().manual_seed(seed)

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        return torch.randn(len(frames), 8, 8, 512, generator=self.gen)


def test_reads_the_pickle_and_samples_the_official_queries(tmp_path):
    write_davis(tmp_path / "tapvid_davis.pkl")
    videos = list(iter_videos(tmp_path / "tapvid_davis.pkl"))
    assert [v.name for v in videos] == ["bear", "goat"]
    v = videos[0]
    assert v.video.shape == (T, S, S, 3) and v.points.shape == (5, T, 2)
    # first: tracks 0, 1, 2, 4 (3 is never visible), each at its first visible frame.
    q = sample_queries(v.points * S, v.occluded, mode="first")
    assert q.track.tolist() == [0, 1, 2, 4] and q.frame.tolist() == [0, 0, 4, 0]
    assert q.xy[2].tolist() == [(5 + 8 + 0.5) * P, (20 + 0.5) * P]  # track 2 at frame 4
    # strided: frame 0 -> tracks 0, 1, 4 visible; frame 5 -> tracks 0, 1, 2, 4.
    q = sample_queries(v.points * S, v.occluded, mode="strided")
    assert q.frame.tolist() == [0, 0, 0, 5, 5, 5, 5]
    assert q.track.tolist() == [0, 1, 4, 0, 1, 2, 4]
    assert q.target.shape == (7, T, 2) and q.occluded[5].tolist() == [True] * 4 + [False] * 6


@pytest.mark.parametrize("mode", ["first", "strided"])
def test_oracle_reaches_the_ceiling(tmp_path, mode):
    write_davis(tmp_path / "tapvid_davis.pkl")
    out = evaluate_tapvid(oracle, pickle_path=tmp_path / "tapvid_davis.pkl",
                          out_dir=tmp_path / "out", query_mode=mode, progress=False)
    for key in ("average_jaccard", "average_pts_within_thresh", "occlusion_accuracy",
                "jaccard_1", "pts_within_1"):
        assert out[f"tapvid/{key}"] == 1.0, key
    assert out["tapvid/videos"] == 2
    assert out["tapvid/queries"] == (8 if mode == "first" else 14)
    assert set(out["tapvid/per_video"]) == {"bear", "goat"}
    saved = json.loads((tmp_path / "out" / "tapvid_metrics.json").read_text())
    assert saved["tapvid/average_jaccard"] == 1.0 and saved["settings"]["query_mode"] == mode
    assert (tmp_path / "out" / "pictures" / "tapvid_tracks.png").stat().st_size > 1000


def test_oracle_at_another_resize_is_scored_at_256(tmp_path):
    # Frames at 128 (Lanczos), a 32 x 32 grid of 4-pixel cells: predictions at cell centres
    # (4c + 2) scale by 256 / 128 to the true 8c + 4.
    write_davis(tmp_path / "d.pkl", names=("bear",))
    out = evaluate_tapvid(oracle, pickle_path=tmp_path / "d.pkl", out_dir=tmp_path / "o",
                          resize=128, progress=False)
    assert out["tapvid/average_jaccard"] == 1.0
    assert resize_video(make_video()["video"], 128).shape == (T, 128, 128, 3)


def test_kinetics_folder_of_pickles_with_encoded_frames(tmp_path):
    # generate_tapvid.py writes lists of dicts whose video is a list of encoded frames.
    for shard in range(2):
        entry = make_video(shift=shard)
        frames = []
        for f in entry["video"]:
            buffer = io.BytesIO()
            Image.fromarray(f).save(buffer, format="PNG")
            frames.append(buffer.getvalue())
        with open(tmp_path / f"{shard:04d}_of_0010.pkl", "wb") as f:
            pickle.dump([{**entry, "video": frames}], f)
    out = evaluate_tapvid(oracle, pickle_path=tmp_path, out_dir=tmp_path / "o",
                          videos=["0001_of_0010/0"], progress=False)
    assert list(out["tapvid/per_video"]) == ["0001_of_0010/0"]
    assert out["tapvid/average_jaccard"] == 1.0


def test_random_features_score_chance(tmp_path):
    # 512-d iid Gaussian tokens: cosine similarities have std 1/sqrt(512) = 0.044, so the best
    # of 64 never reaches 0.5 (11 std): every scored frame is predicted occluded. Hence no true
    # positive (AJ = 0) and OA = the fraction of scored frames occluded in the ground truth:
    #   first: scored q0 9, q1 9 (2 occluded), q2 5 (frames 5-9), q4 9 (4 occluded) -> 6/32;
    #   strided: 7 queries x 9 frames = 63; occluded: q1 2 + 2, q4 4 + 4, q2 (from 5) 4 -> 16/63.
    write_davis(tmp_path / "d.pkl", names=("bear",))
    for mode, oa in (("first", 6 / 32), ("strided", 16 / 63)):
        out = evaluate_tapvid(RandomFeatures(), pickle_path=tmp_path / "d.pkl",
                              out_dir=tmp_path / mode, query_mode=mode, progress=False)
        assert out["tapvid/average_jaccard"] == 0.0
        assert out["tapvid/occlusion_accuracy"] == pytest.approx(oa, abs=1e-12)


def test_random_features_position_chance_level():
    # With `nearest`, each frame's prediction is the centre of a uniformly random token of an
    # 8 x 8 grid over 256 px (centres 32 j + 16), independent of the truth, so the expected
    # pts_within_d is the mean over scored visible frames of #{centres within d} / 64. Truth
    # sits at 8 c + 4, i.e. 4 or 12 px from a centre per axis: no centre within 1, 2, 4;
    # within 8 only at offset (4, 4) (5.7 px); within 16 also at (4, 12) (12.6 px).
    # Predicting every point visible makes jaccard_d = p V / (V + E - p V) exactly
    # (V visible scored frames, E scored frames, p = pts_within_d).
    v = make_video()
    q = sample_queries(v["points"] * S, v["occluded"], mode="strided")
    scored = np.arange(T)[None] != q.frame[:, None]
    visible = scored & ~q.occluded
    centres = (np.stack(np.meshgrid(np.arange(8), np.arange(8)), -1).reshape(-1, 2) * 32 + 16)
    dist = np.linalg.norm(q.target[:, :, None] - centres[None, None], axis=-1)  # (Q, T, 64)
    gen, reps, got = torch.Generator().manual_seed(1), 200, []
    for _ in range(reps):
        field = torch.randn(T, 8, 8, 64, generator=gen)
        pred, occ = track_queries(field, q.frame, q.xy, frame_size=(S, S), method="nearest",
                                  visibility_threshold=-2.0)
        m = tapvid_metrics(q.frame, q.occluded, q.target, occ, pred, query_mode="strided")
        n_vis, n_scored = visible.sum(), scored.sum()
        for d in (1, 2, 4, 8, 16):
            p = m[f"pts_within_{d}"]
            assert m[f"jaccard_{d}"] == pytest.approx(p * n_vis / (n_vis + n_scored - p * n_vis))
        got.append([m[f"pts_within_{d}"] for d in (1, 2, 4, 8, 16)])
    got = np.mean(got, axis=0)
    expected = np.array([(dist[visible] < d).sum(-1).mean() / 64 for d in (1, 2, 4, 8, 16)])
    assert expected[:3].tolist() == [0, 0, 0] and got[:3].tolist() == [0, 0, 0]
    n = reps * visible.sum()  # Bernoulli samples behind each mean
    tolerance = 4 * np.sqrt(expected * (1 - expected) / n)
    assert expected[4] > expected[3] > 0
    assert np.all(np.abs(got - expected) <= tolerance + 1e-12), (got, expected)


def test_bad_inputs_name_the_file_and_layout(tmp_path):
    with pytest.raises(ConfigError, match="missing.pkl not found; expected a pickle"):
        evaluate_tapvid(oracle, pickle_path=tmp_path / "missing.pkl", out_dir=tmp_path)
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle")
    with pytest.raises(ConfigError, match="cannot read TAP-Vid pickle .*junk.pkl"):
        list(iter_videos(tmp_path / "junk.pkl"))
    bad = make_video()
    bad["points"] = bad["points"][:, :3]
    with open(tmp_path / "bad.pkl", "wb") as f:
        pickle.dump({"bear": bad}, f)
    with pytest.raises(ConfigError, match=r"bad.pkl, video 'bear': points is float32 \(5, 3, 2\)"):
        list(iter_videos(tmp_path / "bad.pkl"))
    with open(tmp_path / "nokey.pkl", "wb") as f:
        pickle.dump({"bear": {"video": bad["video"]}}, f)
    with pytest.raises(ConfigError, match="needs keys video, points, occluded"):
        list(iter_videos(tmp_path / "nokey.pkl"))
    write_davis(tmp_path / "d.pkl")
    with pytest.raises(ConfigError, match=r"videos \['cat'\] not found"):
        evaluate_tapvid(oracle, pickle_path=tmp_path / "d.pkl", out_dir=tmp_path,
                        videos=["cat"], progress=False)
    with pytest.raises(ConfigError, match="query_mode must be one of first, strided"):
        evaluate_tapvid(oracle, pickle_path=tmp_path / "d.pkl", out_dir=tmp_path,
                        query_mode="last")
    with pytest.raises(ConfigError, match="features must map"):
        evaluate_tapvid(lambda x: x[:, 0], pickle_path=tmp_path / "d.pkl", out_dir=tmp_path,
                        progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="holds no"):
        list(iter_videos(tmp_path / "empty"))
