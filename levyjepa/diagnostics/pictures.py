"""Pictures of what the Lévy prior sees: CFs, increment histograms and token fields.

Three PNG files per call of :func:`write_pictures`, in ``RUN_DIR/pictures/`` and, when the run
has trackers, logged to them as images:

- ``step_<S>_cf.png``: per orientation family of the Lévy-sheet prior, the empirical
  characteristic function of the token-field increments at the prior's quadrature nodes (the
  real part's median over the fields and its 10-90 % band, and the imaginary part's median)
  against the target ``phi_A`` (a curve, with the nodes marked); below it, each node's share
  ``2 w_i ((cos_mean - phi)^2 + sin_mean^2)`` of the Epps-Pulley statistic (median over
  fields), so one sees which frequencies drive ``within``;
- ``step_<S>_increments.png``: per family, the histogram of the pooled projected increments
  (all fields, positions and channels of the family after the prior's channel rotation) against
  the target density, obtained by inverting ``phi_A`` (:mod:`levyjepa.diagnostics.cf_inversion`),
  on a linear and a logarithmic axis, with the Kolmogorov-Smirnov distance between the two;
- ``step_<S>_token_field.png``: for a few samples, the input next to its token fields
  ``tokens`` and ``tokens_proj``, each shown as the first three principal components (of that
  sample's tokens) mapped to RGB;
- ``step_<S>_attention.png``: for the same images, the pooling head's and the last
  transformer block's attention over the image (:mod:`levyjepa.diagnostics.attention_maps`;
  images only, and only the maps the encoder has).

The first two need a :class:`~levyjepa.priors.levy_sheet.LevySheetPrior`; without one only the
token field is drawn. Inputs are the first ``count`` items of the test split (un-augmented),
else of the un-augmented training split, else the first view of training items. Clips
``(C, T, H, W)`` show their middle frame and the middle time step of their fields.

Figures use Matplotlib's Agg canvas directly (no pyplot, no display).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from levyjepa.core.atomic import atomic_write_bytes
from levyjepa.data.loading.splits import DataSplits
from levyjepa.diagnostics.attention_maps import attention_maps, plot_attention
from levyjepa.diagnostics.cf_inversion import cdf, density, inversion_grid
from levyjepa.diagnostics.image_grid import finish_grid, image_grid
from levyjepa.encoders.output import EncoderOutput
from levyjepa.priors.cf_diagnostics import FamilyCF, cf_diagnostics
from levyjepa.priors.levy_sheet import LevySheetPrior

__all__ = [
    "PICTURES_DIR",
    "encode_inputs",
    "figure_png",
    "ks_distance",
    "pca_rgb",
    "picture_inputs",
    "plot_cf",
    "plot_increments",
    "plot_token_field",
    "write_pictures",
]

PICTURES_DIR = "pictures"
"""Folder of the pictures inside a run directory."""


def picture_inputs(splits: DataSplits, count: int) -> torch.Tensor:
    """The first ``count`` un-augmented inputs of a data source, ``(B, C, H, W)`` or clips.

    Args:
        splits: The run's data.
        count: Number of inputs wanted (fewer when the split is smaller).
    """
    if splits.test is not None and len(splits.test):
        source, single = splits.test, True
    elif splits.train_eval is not None:
        source, single = splits.train_eval, True
    else:
        source, single = splits.train, False
    items = [source[i][0] for i in range(min(count, len(source)))]
    return torch.stack([x if single else x[0] for x in items])


@torch.no_grad()
def encode_inputs(encoder: nn.Module, inputs: torch.Tensor) -> EncoderOutput:
    """Run ``encoder`` in eval mode on one view per input, on the encoder's device.

    Args:
        encoder: A registered encoder.
        inputs: ``(B, C, H, W)`` images or ``(B, C, T, H, W)`` clips.

    Returns:
        The output, every tensor float32 on CPU.
    """
    device = next(encoder.parameters()).device
    was_training = encoder.training
    encoder.eval()
    try:
        out = encoder(inputs.unsqueeze(1).to(device))
    finally:
        encoder.train(was_training)
    return EncoderOutput(*(t.float().cpu() if t is not None else None for t in out))


def ks_distance(samples: np.ndarray, target_cdf: np.ndarray) -> float:
    """Kolmogorov-Smirnov distance of sorted ``samples`` to a CDF evaluated at them."""
    n = len(samples)
    upper = np.arange(1, n + 1) / n - target_cdf
    lower = target_cdf - np.arange(n) / n
    return float(max(upper.max(), lower.max()))


def pca_rgb(field: torch.Tensor) -> np.ndarray:
    """First three principal components of a token field as RGB in ``[0, 1]``.

    Args:
        field: ``(*grid, D)`` tokens of one sample.

    Returns:
        float ``(*grid, 3)``; each component is min-max scaled (fewer than three components
        leave the remaining channels at 0.5).
    """
    grid = field.shape[:-1]
    x = field.reshape(-1, field.shape[-1]).double()
    x = x - x.mean(0, keepdim=True)
    _, _, vh = torch.linalg.svd(x, full_matrices=False)
    comps = (x @ vh[:3].T).numpy()
    rgb = np.full((x.shape[0], 3), 0.5)
    for c in range(comps.shape[1]):
        lo, hi = comps[:, c].min(), comps[:, c].max()
        if hi > lo:
            rgb[:, c] = (comps[:, c] - lo) / (hi - lo)
    return rgb.reshape(*grid, 3)


def _display(image: torch.Tensor) -> np.ndarray:
    """``(C, H, W)`` (or the middle frame of ``(C, T, H, W)``) as min-max scaled ``HWC``."""
    if image.dim() == 4:
        image = image[:, image.shape[1] // 2]
    x = image.float().permute(1, 2, 0).numpy()
    lo, hi = x.min(), x.max()
    x = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
    return x[..., 0] if x.shape[-1] == 1 else x[..., :3]


def _middle(field: torch.Tensor) -> torch.Tensor:
    """``(H', W', D)`` of a field, or its middle time step when it is ``(T', H', W', D)``."""
    return field[field.shape[0] // 2] if field.dim() == 4 else field


def plot_token_field(inputs: torch.Tensor, fields: dict[str, torch.Tensor], *,
                     title: str = "", rows: int = 4) -> Figure:
    """Inputs next to their token fields (first three principal components as RGB).

    Args:
        inputs: ``(B, C, H, W)`` or ``(B, C, T, H, W)``.
        fields: ``name -> (B, *grid, D)`` token fields (e.g. ``tokens``, ``tokens_proj``).
        title: Figure title.
        rows: Number of samples shown.
    """
    rows = min(rows, len(inputs))
    cols = 1 + len(fields)
    fig, axes = image_grid(rows, cols)
    for r in range(rows):
        axes[r, 0].imshow(_display(inputs[r]), cmap="gray")
        for c, (name, field) in enumerate(fields.items(), start=1):
            f = _middle(field[r])
            axes[r, c].imshow(pca_rgb(f), interpolation="nearest")
            if r == 0:
                axes[r, c].set_title(f"{name} PCA {tuple(f.shape[:-1])}x{f.shape[-1]}",
                                     fontsize=9)
        if r == 0:
            axes[r, 0].set_title("input", fontsize=9)
    return finish_grid(fig, axes, title)


def plot_cf(prior: LevySheetPrior, families: Sequence[FamilyCF], *, title: str = "") -> Figure:
    """Empirical vs theoretical CF at the quadrature nodes, per family (see module docstring).

    Args:
        prior: The prior whose ``log_cf`` gives the theoretical curve.
        families: :func:`~levyjepa.priors.cf_diagnostics.cf_diagnostics` of a batch of fields.
        title: Figure title.
    """
    fig = Figure(figsize=(5.5 * len(families), 6.5), layout="constrained")
    axes = np.asarray(fig.subplots(2, len(families), squeeze=False,
                                   gridspec_kw={"height_ratios": [2, 1]}))
    for col, fam in enumerate(families):
        nodes = fam.nodes.numpy()
        u = np.geomspace(nodes.min() / 2, nodes.max() * 1.2, 400)
        phi_curve = np.exp(fam.cell_area * np.asarray(prior.log_cf(u)))
        cos_mean, sin_mean = fam.cos_mean.numpy(), fam.sin_mean.numpy()
        lo, med, hi = np.quantile(cos_mean, [0.1, 0.5, 0.9], axis=0)
        ax = axes[0, col]
        ax.plot(u, phi_curve, color="black", lw=1.5, label=f"target phi (A={fam.cell_area:g})")
        ax.plot(nodes, fam.phi.numpy(), "o", color="black", ms=4, mfc="none", label="nodes")
        ax.fill_between(nodes, lo, hi, color="tab:blue", alpha=0.25, label="Re, 10-90 %")
        ax.plot(nodes, med, "o-", color="tab:blue", ms=3, label="Re empirical (median)")
        ax.plot(nodes, np.median(sin_mean, axis=0), "s--", color="tab:orange", ms=3,
                label="Im empirical (median)")
        ax.set(xscale="log", ylim=(-0.25, 1.05), xlabel="u", ylabel="characteristic function",
               title=f"{fam.name}: EP mean {float(fam.statistic.mean()):.4g}\n"
                     f"{fam.n_increments} increments/field, {len(cos_mean)} fields")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        err = (cos_mean - fam.phi.numpy()) ** 2 + sin_mean**2
        share = 2 * fam.weights.numpy() * np.median(err, axis=0)
        bx = axes[1, col]
        bx.bar(nodes, share, width=nodes * 0.25, color="tab:red")
        bx.set(xscale="log", xlabel="u", ylabel="2 w_i err_i (median)",
               title="share of the statistic per node")
        bx.grid(True, which="both", alpha=0.3)
    fig.suptitle(title, fontsize=10)
    return fig


def _cdf_at(prior: LevySheetPrior, area: float, z: np.ndarray, central: float) -> np.ndarray:
    """The target CDF at sorted samples ``z``, interpolated from 1,002 exact values.

    The exact CDF is computed on 501 points evenly spread over ``[-central, central]`` and
    at 1,001 quantiles of ``z``; between two consecutive points the linear interpolation
    errs by less than the CDF's increase there, and by less than ``max|f'| step^2 / 8``.
    """
    grid = np.union1d(np.linspace(-central, central, 501),
                      np.quantile(z, np.linspace(0.0, 1.0, 501)))
    return np.interp(z, grid, cdf(prior.log_cf, grid, area=area))


def _target_range(prior: LevySheetPrior, area: float, mass: float = 0.998) -> float:
    """Half-width of the central ``mass`` of the target law of cells of area ``area``."""
    half = 0.5 * inversion_grid(prior.log_cf, area=area).half_period
    z = np.geomspace(1e-3, half, 200)
    f = cdf(prior.log_cf, z, area=area)
    above = np.nonzero(f >= 0.5 + mass / 2)[0]
    return float(z[above[0]] if len(above) else z[-1])


def _std(prior: LevySheetPrior, area: float, h: float = 1e-3) -> float:
    """Standard deviation of the target law, ``sqrt(-A (log phi_1)''(0))`` by a difference.

    ``log phi_1(h) = -var h^2 / 2 + O(h^4)`` for a law with a variance (``inf`` otherwise).
    """
    log_phi_h = float(np.asarray(prior.log_cf(np.array([h]))).reshape(-1)[0])
    return float(np.sqrt(max(0.0, -2.0 * area * log_phi_h / h**2)))


def plot_increments(prior: LevySheetPrior, increments: Sequence[np.ndarray], *, title: str = "",
                    statistics: Optional[Sequence[float]] = None) -> Figure:
    """Histogram of pooled increments against the target density, per family.

    Args:
        prior: The prior (its families' cell areas and ``log_cf``).
        increments: Per family, the pooled increments (any shape, flattened).
        title: Figure title.
        statistics: Per family, the mean EP statistic, shown in the panel titles.
    """
    fams = prior.families
    fig = Figure(figsize=(11, 3.6 * len(fams)), layout="constrained")
    axes = np.asarray(fig.subplots(len(fams), 2, squeeze=False))
    for row, (fam, z) in enumerate(zip(fams, increments)):
        z = np.sort(np.asarray(z, dtype=np.float64).reshape(-1))
        data_range = float(np.quantile(np.abs(z), 0.998)) if len(z) else 0.0
        central = _target_range(prior, fam.cell_area)
        half = max(central, data_range) * 1.05
        grid = np.linspace(-half, half, 801)
        target = density(prior.log_cf, grid, area=fam.cell_area)
        ks = (ks_distance(z, _cdf_at(prior, fam.cell_area, z, central)) if len(z)
              else float("nan"))
        target_std = _std(prior, fam.cell_area)
        stat = f", EP {statistics[row]:.4g}" if statistics is not None else ""
        for col, log in enumerate((False, True)):
            ax = axes[row, col]
            ax.hist(z, bins=121, range=(-half, half), density=True, histtype="stepfilled",
                    color="tab:blue", alpha=0.6,
                    label=f"increments (n={len(z)}, std {z.std():.3g})")
            ax.plot(grid, target, color="black", lw=1.3,
                    label=f"target density (std {target_std:.3g})")
            if log:
                ax.set_yscale("log")
                ax.set_ylim(bottom=max(1e-5, target.max() * 1e-6))
            ax.set(xlabel="projected increment", ylabel="density",
                   title=f"{fam.name} (A={fam.cell_area:g}): KS {ks:.3f}{stat}"
                         + (" [log]" if log else ""))
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return fig


def figure_png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def log_images(trackers: Iterable[Any], images: dict[str, bytes], *, step: int) -> None:
    """Send PNG images to Accelerate trackers (tensorboard, wandb; others are skipped)."""
    trackers = list(trackers)
    if not trackers:
        return
    from PIL import Image

    arrays = {k: np.asarray(Image.open(io.BytesIO(v)).convert("RGB")) for k, v in images.items()}
    for tracker in trackers:
        name = getattr(tracker, "name", "")
        if name == "tensorboard":
            tracker.log_images({k: a[None] for k, a in arrays.items()}, step=step,
                               dataformats="NHWC")
        elif name == "wandb":
            tracker.log_images({k: [a] for k, a in arrays.items()}, step=step)


def write_pictures(
    encoder: nn.Module,
    prior: Optional[nn.Module],
    splits: DataSplits,
    run_dir: Path,
    *,
    step: int,
    trackers: Iterable[Any] = (),
    count: int = 32,
) -> dict[str, Path]:
    """Encode a few inputs and write the pictures of the module docstring.

    Args:
        encoder: The trained encoder (put in eval mode for the forward, then restored).
        prior: The run's Lévy prior (the first prior on ``tokens_proj``), or ``None`` (token
            field only).
        splits: The run's data.
        run_dir: Run directory (pictures go to ``run_dir/pictures``).
        step: Training step of the weights (in file names and titles; seeds the rotation).
        trackers: Accelerate trackers to log the images to.
        count: Number of inputs encoded.

    Returns:
        ``name -> path`` of the files written.
    """
    inputs = picture_inputs(splits, count)
    out = encode_inputs(encoder, inputs)
    label = f"{run_dir.name}, step {step}"
    figures: dict[str, Figure] = {}
    fields = {"tokens": out.tokens}
    if out.tokens_proj is not None:
        fields["tokens_proj"] = out.tokens_proj
    figures["token_field"] = plot_token_field(inputs, fields, title=f"token fields: {label}")
    maps = attention_maps(encoder, inputs[:4])
    if maps:
        figures["attention"] = plot_attention(inputs, maps, title=f"attention: {label}")
    if isinstance(prior, LevySheetPrior) and out.tokens_proj is not None:
        tokens_proj = out.tokens_proj.to(prior.nodes.device)
        fams = cf_diagnostics(prior, tokens_proj, step=step)
        figures["cf"] = plot_cf(prior, fams, title=f"characteristic functions: {label}")
        with torch.no_grad():
            pooled = [z.reshape(-1).cpu().numpy()
                      for z in prior.increments(tokens_proj, step=step)]
        figures["increments"] = plot_increments(
            prior, pooled, title=f"token-field increments vs target law: {label}",
            statistics=[float(f.statistic.mean()) for f in fams])
    folder = run_dir / PICTURES_DIR
    written, images = {}, {}
    for name, fig in figures.items():
        data = figure_png(fig)
        path = folder / f"step_{step:08d}_{name}.png"
        atomic_write_bytes(path, data)
        written[name], images[f"pictures/{name}"] = path, data
    log_images(trackers, images, step=step)
    return written
