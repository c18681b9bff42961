"""Building a recipe's method and its attached priors, and checking what the method needs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf
from torch import nn

from levyjepa.core.errors import ConfigError
from levyjepa.core.registry import METHODS
from levyjepa.methods.attached_priors import AttachedPriors, check_prior_entry
from levyjepa.methods.base import Method, MethodNeeds


def method_class(cfg: DictConfig) -> type[Method]:
    """The registered class of the recipe's ``method`` (checked: a :class:`Method`)."""
    name = cfg.method.get("name")
    factory = METHODS.get(name)
    if not (isinstance(factory, type) and issubclass(factory, Method)):
        raise ConfigError(f"method: method '{name}' (from module '{factory.__module__}') must "
                          "be a subclass of levyjepa.methods.Method")
    return factory


def check_priors_section(cfg: DictConfig) -> None:
    """Check the method's values (building it, unless it needs the runner's objects) and every
    ``priors.<term>`` entry against the prior registry and the method's outputs.

    Raises:
        ConfigError: naming the entry's key.
    """
    cls = method_class(cfg)
    if not METHODS.runtime_names(cfg.method.name):  # its constructor checks its values now
        METHODS.build(OmegaConf.to_container(cfg.method), where="method")
    section = OmegaConf.to_container(cfg.priors)
    assert isinstance(section, dict)
    for term, entry in section.items():
        if entry is not None:
            check_prior_entry(term, entry, outputs=cls.outputs, method=cfg.method.name)


def encoder_needs_tokens_proj(cfg: DictConfig) -> bool:
    """Whether the encoder must build its token projector (the method or a prior reads it)."""
    priors = OmegaConf.to_container(cfg.priors)
    assert isinstance(priors, dict)
    return method_class(cfg).needs.tokens_proj or any(
        isinstance(e, Mapping) and e.get("input") == "tokens_proj" for e in priors.values())


def encoder_runtime(cfg: DictConfig) -> dict[str, bool]:
    """The runner's arguments of the recipe's encoder: ``with_tokens_proj`` always, and
    ``with_proj=False`` when the method never reads ``proj`` (so nothing goes unused)."""
    flags = {"with_tokens_proj": encoder_needs_tokens_proj(cfg)}
    if not method_class(cfg).needs.proj:
        flags["with_proj"] = False
    return flags


def check_needs(needs: MethodNeeds, *, method: str, view_groups: Sequence[tuple[int, int]],
                encoder: nn.Module, num_classes: Optional[int] = None,
                data: str = "the data") -> None:
    """Refuse data or an encoder that cannot give the method what it needs (one line).

    Args:
        needs: The method's needs.
        method: Its name (for messages).
        view_groups: ``(count, size)`` of each view group the data makes.
        encoder: The built encoder.
        num_classes: The data's classes (0: unlabelled); ``None``: not known, not checked.
        data: The data, as messages name it.
    """
    if needs.labels_train_encoder and num_classes is not None and num_classes < 1:
        raise ConfigError(f"method '{method}' trains the encoder with the labels, and {data} "
                          "has none (num_classes 0): use a labelled data source")
    if view_groups and view_groups[0][0] < needs.min_views:
        raise ConfigError(f"method '{method}' needs at least {needs.min_views} global views per "
                          f"sample; the data makes {view_groups[0][0]} (views.global_views)")
    if len(view_groups) > 1 and not needs.local_views:
        raise ConfigError(f"method '{method}' takes no local views; set views.local_views=0")
    if needs.masked_forward and not (callable(getattr(encoder, "forward_masked", None))
                                     and getattr(encoder, "has_masked_forward", True)):
        arch = getattr(encoder, "arch", None)
        fitting = [n for n in METHODS.names() if isinstance(METHODS.get(n), type)
                   and issubclass(METHODS.get(n), Method)
                   and not METHODS.get(n).needs.masked_forward
                   and not METHODS.get(n).needs.labels_train_encoder]  # SSL methods only
        raise ConfigError(f"method '{method}' needs an encoder with a masked forward "
                          f"(forward_masked: a ViT drops the patches it does not keep); encoder "
                          f"'{type(encoder).__name__}'{f' ({arch})' if arch else ''} has none; "
                          f"methods without that need: {', '.join(fitting)}")
    if needs.pool is not None and getattr(encoder, "pool", None) != needs.pool:
        raise ConfigError(f"method '{method}' needs encoder.pool={needs.pool}; encoder "
                          f"'{type(encoder).__name__}' pools with "
                          f"{getattr(encoder, 'pool', 'its own head')!r}")


def build_method(cfg: DictConfig, *, encoder: nn.Module,
                 view_groups: Sequence[tuple[int, int]],
                 num_classes: Optional[int] = None) -> tuple[Method, AttachedPriors]:
    """Build the recipe's method and priors, after checking the method's needs.

    The runner offers the method the built ``encoder`` and the data's ``view_groups`` (a
    method registered with ``runtime=("encoder",)`` receives the encoder, e.g. to copy an EMA
    teacher from it; ``seed``, the recipe's seed, e.g. to draw masks). ``num_classes``, the
    data's (0: unlabelled), is checked against a method that trains the encoder with the labels.
    """
    cls = method_class(cfg)
    name = cfg.method.name
    check_needs(cls.needs, method=name, view_groups=view_groups, encoder=encoder,
                num_classes=num_classes, data=f"data source '{cfg.data.name}'")
    offered: dict[str, Any] = {"encoder": encoder, "view_groups": tuple(view_groups),
                               "seed": int(cfg.seed)}
    runtime = {k: v for k, v in offered.items() if k in METHODS.runtime_names(name)}
    section = OmegaConf.to_container(cfg.method)
    assert isinstance(section, dict)
    method = METHODS.build(section, where="method", **runtime)
    priors = AttachedPriors(OmegaConf.to_container(cfg.priors), outputs=cls.outputs,
                            method=name)
    return method, priors
