"""Do the video backends agree? Every frame of every file, decoded by each backend, compared.

For each file of ``--root`` (default ``../shared/data/videos``: H.264 MP4 at 28, 30 and
29.97 fps, a 32-frame clip, an MPEG-4 part 2 AVI with an audio stream) and each backend, prints
the frame count, the frame rate and the frame size the reader reports, the decoding time, and
how many frames are bit-identical to the first backend's (with the largest absolute pixel
difference). A backend that cannot open or decode a file prints its error instead.

    .venv/bin/python benchmarks/decode_agreement.py
    .venv/bin/python benchmarks/decode_agreement.py --root path/to/clips --backends pyav decord
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from levyjepa.data.video.video_folder import scan_videos
from levyjepa.data.video.video_readers import available_backends, open_video

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"


def decode_all(path: Path, backend: str) -> tuple[np.ndarray, float, float]:
    """All frames of ``path`` ``(T, H, W, 3)`` uint8, the reported fps and the seconds taken."""
    started = time.perf_counter()
    with open_video(str(path), backend) as reader:
        frames = reader.read(list(range(reader.num_frames)))
        fps = reader.fps
    return frames, fps, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--backends", nargs="+", default=list(available_backends()))
    args = parser.parse_args()
    files, _, _ = scan_videos(args.root)
    if not files:
        raise SystemExit(f"--root {args.root}: no video files")
    print("| file | backend | frames | fps | H x W | decode s | identical to "
          f"{args.backends[0]} | max abs diff |")
    print("|---|---|---|---|---|---|---|---|")
    for path in files:
        reference = None
        for backend in args.backends:
            try:
                frames, fps, seconds = decode_all(path, backend)
            except Exception as err:  # reported per file and backend: this is the finding
                print(f"| {path.name} | {backend} | error: {type(err).__name__}: {err} |"
                      " | | | | |")
                continue
            same, worst = "-", "-"
            if reference is None:
                reference = frames
            elif reference.shape == frames.shape:
                diff = np.abs(reference.astype(np.int16) - frames.astype(np.int16))
                per_frame = diff.reshape(len(frames), -1).max(axis=1)
                same, worst = f"{int((per_frame == 0).sum())}/{len(frames)}", str(diff.max())
            else:
                same = f"shape {tuple(frames.shape)} vs {tuple(reference.shape)}"
            print(f"| {path.name} | {backend} | {len(frames)} | {fps:.3f} | "
                  f"{frames.shape[1]} x {frames.shape[2]} | {seconds:.2f} | {same} | {worst} |")


if __name__ == "__main__":
    main()
