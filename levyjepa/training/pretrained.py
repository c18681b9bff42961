"""An encoder's first weights from a local file: ``encoder.pretrained``.

:func:`load_pretrained` fills a freshly built encoder from one of three things (levyjepa never
downloads weights):

(a) a timm/PyTorch state dict of the backbone (``.safetensors``, or a ``torch.save`` file,
    ``.pth``/``.pt``/``.bin``, read with ``weights_only=True``), loaded into ``encoder.backbone``
    (into the whole encoder for one without a backbone, or when the file is a levyjepa
    encoder's own state, keys ``backbone.*`` beside ``head.*``/``proj.*``). Wrappers are
    unwrapped (``{"state_dict": ...}``, ``{"model": ...}``, ``{"module": ...}``), ``module.`` /
    ``_orig_mod.`` and a common ``backbone.`` prefix are removed, and the weights of the timm
    model's classifier (``backbone.pretrained_cfg["classifier"]``: ``fc``, ``head``, ``head.fc``;
    the encoder's backbone has none) are dropped and reported; a timm model folder in the
    Hugging Face hub layout (``model.safetensors`` or ``pytorch_model.bin``, e.g. an export's
    ``timm/``) is read the same way;
(b) an exported encoder folder (``encoder.yaml`` + ``encoder.safetensors``,
    :mod:`levyjepa.export`), or its ``encoder.safetensors``: the whole encoder (backbone and
    heads);
(c) a run directory (``config.yaml`` and checkpoints): the encoder its method evaluates (an EMA
    teacher where the method evaluates it) at its latest checkpoint
    (:func:`levyjepa.training.trained.load_trained`).

Position embeddings follow the grid: a ViT backbone's ``pos_embed`` (its prefix rows, class and
register tokens, kept unless the model has ``no_embed_class``) and the attention pool's
``head.pool.pos_embed`` (timm's ``AttentionPool2d``: a class-position row, then the grid) are
resampled (bicubic, :func:`timm.layers.resample_abs_pos_embed`) when the file's grid differs from
the encoder's (another ``img_size`` or patch count). Every other tensor must have the encoder's
shape. Keys the encoder has and the file lacks (missing), keys the file has and the encoder lacks
(unexpected) and tensors of another shape stop a strict load (``encoder.pretrained_strict:
true``, the default) with one line naming the file and the first of them; ``false`` loads the
rest and reports them. Random numbers are not consumed, so the rest of the run is initialised
as without ``pretrained``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from safetensors.torch import load_file
from timm.layers import resample_abs_pos_embed
from torch import nn

from levyjepa.config.pretrained_keys import (
    EXPORT_MARKER,
    HUB_WEIGHTS,
    PRETRAINED_KEYS,
    RUN_MARKER,
    absolute_pretrained,
    split_pretrained,
)
from levyjepa.core.errors import ConfigError
from levyjepa.training.exported import WEIGHTS_NAME, load_encoder

__all__ = ["PRETRAINED_KEYS", "load_pretrained", "read_state_file", "split_pretrained"]

WRAPPER_KEYS = ("state_dict", "model", "module")
"""Keys of a saved dict that hold the state dict itself (training scripts' checkpoints)."""
_PREFIXES = ("module.", "_orig_mod.")  # DDP and torch.compile
_SHOWN = 3  # offending keys named in a message


@dataclass
class _Source:
    """Tensors to load, named as in ``encoder.state_dict()``, and where they come from."""

    state: dict[str, torch.Tensor]
    into: str  # "" (the whole encoder) or "backbone."
    note: str = ""  # e.g. "exported encoder"
    grids: dict[str, tuple[int, int]] = field(default_factory=dict)  # the source's grids
    dropped: list[str] = field(default_factory=list)  # classifier keys, as in the file


def load_pretrained(encoder: nn.Module, path: str | Path, *, strict: bool = True) -> str:
    """Load ``path``'s weights into ``encoder`` (see the module docstring).

    Args:
        encoder: A freshly built encoder (on CPU).
        path: A state dict file, an exported encoder folder or a run directory.
        strict: Refuse missing, unexpected and mis-shaped tensors (else load the rest).

    Returns:
        The report, one line: ``encoder.pretrained: loaded N tensors from PATH into
        encoder.backbone (resampled ...; dropped classifier ...; missing 0; unexpected 0)``.

    Raises:
        ConfigError: one line naming the file: not found, unreadable, or not fitting.
    """
    path = Path(absolute_pretrained(str(path)))
    with torch.random.fork_rng(devices=[]):  # building a source module draws no run's numbers
        source = _read_source(encoder, path)
    return _load(encoder, source, path, strict=strict)


def read_state_file(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a ``.safetensors`` or ``torch.save`` file, wrappers and ``module.`` /
    ``_orig_mod.`` prefixes removed.

    Raises:
        ConfigError: one line naming the file if it cannot be read (truncated, corrupt) or holds
            no state dict of tensors.
    """
    try:
        state: Any = (load_file(str(path)) if path.suffix == ".safetensors"
                      else torch.load(path, map_location="cpu", weights_only=True))
    except Exception as err:  # safetensors, zipfile, pickle and torch raise several kinds
        raise ConfigError(f"encoder.pretrained={path}: cannot read it ({_first_line(err)}); "
                          "a truncated or corrupt file, or not a state dict?") from None
    for _ in range(len(WRAPPER_KEYS)):
        if not isinstance(state, Mapping) or _all_tensors(state):
            break
        inner = next((state[k] for k in WRAPPER_KEYS if isinstance(state.get(k), Mapping)), None)
        if inner is None:
            break
        state = inner
    if not isinstance(state, Mapping) or not state or not _all_tensors(state):
        keys = ", ".join(map(str, list(state)[:_SHOWN])) if isinstance(state, Mapping) else ""
        raise ConfigError(f"encoder.pretrained={path}: holds no state dict of tensors"
                          + (f" (keys {keys})" if keys else ""))
    return {_unprefixed(str(k)): v for k, v in state.items()}


def _read_source(encoder: nn.Module, path: Path) -> _Source:
    """The tensors ``path`` offers, named as ``encoder``'s state."""
    if not path.exists():
        raise ConfigError(f"encoder.pretrained: '{path}' not found")
    folder = path.parent if path.name == WEIGHTS_NAME else path
    if (folder / EXPORT_MARKER).is_file():
        try:
            module = load_encoder(folder)
        except ConfigError as err:
            raise ConfigError(f"encoder.pretrained={path}: {err}") from None
        return _Source(state=module.state_dict(), into="", grids=_grids(module),
                       note="exported encoder")
    if path.is_dir() and (path / RUN_MARKER).is_file():
        from levyjepa.training.trained import load_trained

        try:
            run = load_trained(path)
        except ConfigError as err:
            raise ConfigError(f"encoder.pretrained={path}: {err}") from None
        return _Source(state=run.encoder.state_dict(), into="", grids=_grids(run.encoder),
                       note=f"run checkpoint {run.checkpoint.name}, {run.weights_key} weights")
    if path.is_dir():
        hub = next((path / f for f in HUB_WEIGHTS if (path / f).is_file()), None)
        if hub is None:
            raise ConfigError(f"encoder.pretrained: '{path}' is a folder but neither an exported "
                              f"encoder ({EXPORT_MARKER}), a run directory ({RUN_MARKER}) nor "
                              f"a timm model folder ({HUB_WEIGHTS[0]})")
        path = hub
    state = read_state_file(path)
    backbone = getattr(encoder, "backbone", None)
    if not isinstance(backbone, nn.Module) or (
            any(k.startswith("backbone.") for k in state)
            and not all(k.startswith("backbone.") for k in state)):
        return _Source(state=state, into="")  # the whole encoder's state (levyjepa's own)
    state = {k.removeprefix("backbone."): v for k, v in state.items()}
    own = backbone.state_dict()
    dropped = [k for k in state if k not in own and _is_classifier(backbone, k)]
    return _Source(state={f"backbone.{k}": v for k, v in state.items() if k not in dropped},
                   into="backbone.", dropped=dropped)


def _load(encoder: nn.Module, source: _Source, path: Path, *, strict: bool) -> str:
    """Fit ``source`` to ``encoder`` (resampling position embeddings), check, load, report."""
    target = encoder.get_submodule(source.into.rstrip(".")) if source.into else encoder
    into = f"encoder.{source.into.rstrip('.')}" if source.into else "the encoder"
    wanted = {source.into + k: v for k, v in target.state_dict().items()}
    layouts = _layouts(encoder)
    fitted: dict[str, torch.Tensor] = {}
    resampled, other_shape = [], []
    for key, value in source.state.items():
        if key not in wanted:
            continue
        want = wanted[key]
        if value.shape == want.shape:
            fitted[key] = value
            continue
        done = (_resample(value, want, *layouts[key], source.grids.get(key))
                if key in layouts else None)
        if done is None:
            other_shape.append(f"{key} of shape {tuple(value.shape)}, the encoder's "
                               f"{tuple(want.shape)}")
            continue
        fitted[key], old, new = done
        resampled.append(f"{key} {old[0]}x{old[1]}->{new[0]}x{new[1]}")
    # a BatchNorm step counter, absent from files saved before torch 0.4.1: not a weight
    missing = [k for k in wanted if k not in source.state and not k.endswith(
        "num_batches_tracked")]
    unexpected = [k for k in source.state if k not in wanted]
    offending = _interleave([f"missing {k}" for k in missing],
                            [f"unexpected {k}" for k in unexpected], other_shape)
    if offending and (strict or not fitted):
        counts = (f"{len(missing)} missing, {len(unexpected)} unexpected, {len(other_shape)} "
                  "of another shape")
        if not fitted:
            raise ConfigError(f"encoder.pretrained={path}: none of its {len(source.state)} "
                              f"tensors fits {into} (another architecture?): {counts}, first "
                              f"{'; '.join(offending[:_SHOWN])}")
        raise ConfigError(f"encoder.pretrained={path}: does not fit {into} ({counts}): "
                          f"{'; '.join(offending[:_SHOWN])}; encoder.pretrained_strict: false "
                          "loads the rest")
    try:
        target.load_state_dict({k[len(source.into):]: v for k, v in fitted.items()},
                               strict=False)
    except RuntimeError as err:  # not expected: shapes were checked above
        raise ConfigError(f"encoder.pretrained={path}: {_first_line(err)}") from None
    parts = [source.note] if source.note else []
    if resampled:
        parts.append("resampled " + ", ".join(resampled))
    if source.dropped:
        parts.append("dropped classifier " + ", ".join(source.dropped))
    parts.append(f"missing {len(missing)}{_first(missing)}")
    parts.append(f"unexpected {len(unexpected)}{_first(unexpected)}")
    if other_shape:
        parts.append(f"skipped {len(other_shape)} of another shape ({other_shape[0]}"
                     f"{', ...' if len(other_shape) > 1 else ''})")
    return (f"encoder.pretrained: loaded {len(fitted)} tensors from {path} into {into} "
            f"({'; '.join(parts)})")


def _layouts(encoder: nn.Module) -> dict[str, tuple[int, tuple[int, int], bool]]:
    """The encoder's resamplable position embeddings: state key -> (prefix rows, grid, whether
    the tensor has a leading batch axis)."""
    found: dict[str, tuple[int, tuple[int, int], bool]] = {}
    backbone = getattr(encoder, "backbone", None)
    if _is_vit(backbone):
        prefix = 0 if getattr(backbone, "no_embed_class", False) else backbone.num_prefix_tokens
        found["backbone.pos_embed"] = (int(prefix), _grid_of_vit(backbone), True)
    pool = getattr(getattr(encoder, "head", None), "pool", None)
    if isinstance(getattr(pool, "pos_embed", None), torch.Tensor) and hasattr(pool, "feat_size"):
        found["head.pool.pos_embed"] = (1, _pair(pool.feat_size), False)  # a class row first
    return found


def _grids(module: nn.Module) -> dict[str, tuple[int, int]]:
    """A source encoder's grids of its position embeddings (the file's shapes alone would only
    tell square grids)."""
    return {key: grid for key, (_, grid, _) in _layouts(module).items()}


def _resample(value: torch.Tensor, want: torch.Tensor, prefix: int, grid: tuple[int, int],
              batched: bool, old: Optional[tuple[int, int]]
              ) -> Optional[tuple[torch.Tensor, tuple[int, int], tuple[int, int]]]:
    """``value`` resampled to ``want``'s grid, with the old and new grids, or ``None`` if the
    layouts do not allow it (another width, prefix or a grid that cannot be told)."""
    rows = value if batched else value.unsqueeze(0)
    want_rows = want if batched else want.unsqueeze(0)
    if rows.dim() != 3 or rows.shape[0] != 1 or rows.shape[-1] != want_rows.shape[-1]:
        return None
    if want_rows.shape[1] != prefix + grid[0] * grid[1]:
        return None
    cells = rows.shape[1] - prefix
    side = math.isqrt(max(cells, 0))
    if old is None or old[0] * old[1] != cells:
        if cells < 1 or side * side != cells:
            return None
        old = (side, side)
    out = resample_abs_pos_embed(rows.float(), list(grid), old_size=list(old),
                                 num_prefix_tokens=prefix).to(value.dtype)
    return (out if batched else out[0]), old, grid


def _is_vit(module: Any) -> bool:
    return (isinstance(module, nn.Module) and isinstance(getattr(module, "pos_embed", None),
                                                         torch.Tensor)
            and hasattr(module, "patch_embed") and hasattr(module, "num_prefix_tokens"))


def _grid_of_vit(backbone: nn.Module) -> tuple[int, int]:
    return _pair(backbone.patch_embed.grid_size)


def _pair(value: Any) -> tuple[int, int]:
    return (int(value[0]), int(value[1])) if isinstance(value, (tuple, list)) else (
        int(value), int(value))


def _is_classifier(backbone: nn.Module, key: str) -> bool:
    """Whether ``key`` (a backbone state key) belongs to the timm model's classifier."""
    names = (getattr(backbone, "pretrained_cfg", None) or {}).get("classifier") or ()
    names = (names,) if isinstance(names, str) else tuple(names)
    return any(key == n or key.startswith(n + ".") for n in names)


def _unprefixed(key: str) -> str:
    while key.startswith(_PREFIXES):
        key = key.split(".", 1)[1]
    return key


def _all_tensors(state: Mapping[Any, Any]) -> bool:
    return all(isinstance(v, torch.Tensor) for v in state.values())


def _interleave(*lists: list[str]) -> list[str]:
    """The first of each list, then the second of each, ... (so a message names every kind)."""
    out: list[str] = []
    for i in range(max(map(len, lists), default=0)):
        out.extend(x[i] for x in lists if i < len(x))
    return out


def _first(keys: list[str]) -> str:
    if not keys:
        return ""
    return f" ({', '.join(keys[:_SHOWN])}{', ...' if len(keys) > _SHOWN else ''})"


def _first_line(err: BaseException) -> str:
    """The error's first sentence (torch's messages run on with advice about other causes)."""
    text = (str(err).strip().splitlines() or [type(err).__name__])[0].split(". ")[0]
    return text if len(text) <= 200 else text[:197] + "..."
