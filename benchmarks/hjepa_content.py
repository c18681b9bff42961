"""Does a trained HJEPA predict from the clip's content, or from the time alone?

Each window the encoder sees carries its absolute temporal position embedding, so a state
could encode "when" rather than "what", and the harmonic flow would advance such a clock
without looking at the frames (a shortcut SIGReg does not forbid). This script measures it on
the run's test clips, with the trained encoder, state projector and potential (eval mode), for
the same drawn windows ``(t0, k)``::

    true         |flow(s(context of clip i)) - s(target window of clip i)|^2
    other clip   |flow(s(context of clip i)) - s(target window of clip i+1, same times)|^2
    no dynamics  |s(context of clip i) - s(target window of clip i)|^2   (identity predictor)

(mean over the ``match`` coordinates, as ``pred_loss``). A predictor that reads content has
``true`` well below ``other clip``; a clock has them equal. Usage::

    python benchmarks/hjepa_content.py RUN_DIR [RUN_DIR ...] [--batches 4]
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from levyjepa.core.registry import METHODS
from levyjepa.data.build import build_splits
from levyjepa.methods.hamiltonian import leapfrog
from levyjepa.training.trained import MODEL_FILE, encoder_state, load_trained


def _states(method, encoder, clips: torch.Tensor, starts: torch.Tensor, grid) -> torch.Tensor:
    tokens = encoder.forward_masked(clips, method.window_index(starts, grid))
    return method.state_proj(tokens.mean(1))


def measure(run_dir: Path, batches: int, batch: int = 32) -> dict[str, float]:
    """The three losses of the module docstring, averaged over ``batches`` test batches."""
    run = load_trained(run_dir)
    cfg = run.cfg
    if cfg.method.name != "hjepa":
        raise SystemExit(f"{run_dir}: method {cfg.method.name!r}, not hjepa")
    method = METHODS.build(OmegaConf.to_container(cfg.method), where="method",
                           encoder=run.encoder, seed=int(cfg.seed))
    state = load_file(str(run.checkpoint / MODEL_FILE))
    method.load_state_dict(encoder_state(state, key="method"))
    method.eval()
    test = build_splits(cfg).test
    sums = {"true": [], "other clip": [], "no dynamics": []}
    pick = {"q": slice(0, method.state_dim), "p": slice(method.state_dim, None),
            "qp": slice(None)}[method.match]
    with torch.no_grad():
        for b in range(batches):
            clips = torch.stack([test[i][0] for i in range(b * batch, (b + 1) * batch)])
            grid = run.encoder.grid_of(clips.shape[-2:])
            t0, k = method.draw_windows(grid, batch, step=10_000 + b)
            context = _states(method, run.encoder, clips, t0, grid)
            target = _states(method, run.encoder, clips, t0 + k, grid)
            other = _states(method, run.encoder, clips.roll(1, 0), t0 + k, grid)
            q, p = context.chunk(2, -1)
            path = leapfrog(method.potential, q, p, dt=method.dt, steps=k * method.steps,
                            damping=method.damping)
            moved = torch.cat([path.q, path.p], -1)
            sums["true"].append(float((moved - target)[:, pick].square().mean()))
            sums["other clip"].append(float((moved - other)[:, pick].square().mean()))
            sums["no dynamics"].append(float((context - target)[:, pick].square().mean()))
    return {name: statistics.fmean(values) for name, values in sums.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--batches", type=int, default=4)
    args = parser.parse_args()
    print("| run | true | other clip | no dynamics |\n|---|---|---|---|")
    for run_dir in args.runs:
        found = measure(run_dir, args.batches)
        print(f"| {run_dir} | {found['true']:.4f} | {found['other clip']:.4f} | "
              f"{found['no dynamics']:.4f} |")


if __name__ == "__main__":
    main()
