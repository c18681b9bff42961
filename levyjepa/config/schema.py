"""The typed schema of a recipe's top-level sections.

A recipe is YAML data (``recipes/*.yaml``). Fixed sections (``trainer``, ``optim``,
``log``) are typed here, so a misspelt key or a value of the wrong type is refused when the
recipe is loaded. Component sections (``data``, ``encoder``, ``method``, ``method.sigreg``, each
entry of ``priors``) are ``{name: ..., **kwargs}`` mappings whose keys are checked against the
registered component's constructor (see :mod:`levyjepa.core.registry`); ``priors`` maps term names
to attached priors (:mod:`levyjepa.methods.attached_priors`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

# the loader keys of ``data``, re-exported for the recipe checks
from levyjepa.data.loading.loader_options import DATA_LOADER_KEYS  # noqa: F401

PRECISIONS = ("bf16", "fp32")
DEVICES = ("auto", "cpu", "cuda")
TRACKERS = ("wandb", "tensorboard")
WANDB_MODES = ("offline", "online", "disabled")
ON_NONFINITE = ("stop", "skip")  # trainer.on_nonfinite (levyjepa/training/nonfinite.py)
STRATEGIES = ("ddp", "fsdp")  # trainer.strategy (levyjepa/training/sharding.py)


@dataclass
class OptimConfig:
    """AdamW with two parameter groups, square-root batch scaling, warm-up then cosine."""

    net_lr_bs256: float = 5e-4
    probe_lr_bs256: float = 1e-3
    weight_decay: float = 0.05
    probe_weight_decay: float = 1e-7
    warmup_epochs: float = 1.0
    warmup_start: float = 0.01
    min_lr_ratio: float = 0.25
    grad_clip: Optional[float] = None
    fused: bool = True  # the fused AdamW kernel (CUDA and CPU); false: PyTorch's default
    # micro-batches of data.batch_size per optimiser step (gradient accumulation); the
    # effective batch, which scales the learning rates, is data.batch_size * accumulate_steps
    accumulate_steps: int = 1


@dataclass
class TrainerConfig:
    """How long and where to train."""

    epochs: int = 1
    max_steps: Optional[int] = None
    precision: str = "bf16"
    device: str = "auto"
    eval_every: int = 1
    checkpoint_every: Optional[int] = None
    keep_checkpoints: int = 2
    # steps whose checkpoints are also written and never pruned by keep_checkpoints (0: the
    # initial weights, before the first step); python -m levyjepa.study --eval-at sets it
    keep_steps: list[int] = field(default_factory=list)
    # a non-finite loss term or gradient: stop (exit 3, last good checkpoint kept) or skip the
    # step's update (levyjepa/training/nonfinite.py)
    on_nonfinite: str = "stop"
    # several processes: BatchNorm statistics over the global batch
    # (levyjepa/training/global_batchnorm.py)
    sync_batchnorm: bool = True
    # classes of the online probe; None = the data source's number of classes (the seed's probe
    # is Linear(512, 100) with 10 classes used)
    probe_classes: Optional[int] = None
    # CPU only: torch threads of each process; None = one core per loader worker is left free
    cpu_threads: Optional[int] = None
    # speed options (levyjepa/training/speed.py, levyjepa/data/loading/loader_options.py)
    compile: bool = False  # torch.compile the model's forward
    channels_last: bool = False  # channels-last weights and views (a ViT's patch embedding)
    # recompute each block's activations in the backward pass instead of keeping them
    activation_checkpointing: bool = False
    # several processes: ddp (each holds the whole model) or fsdp (FSDP2: parameters, gradients
    # and optimiser state sharded across processes; levyjepa/training/sharding.py)
    strategy: str = "ddp"
    pin_memory: bool = True  # page-locked batches, asynchronous copies (CUDA only)
    persistent_workers: bool = True  # keep loader workers across epochs


@dataclass
class LogConfig:
    """Metrics, progress bar and experiment trackers."""

    every: int = 10
    trackers: list[str] = field(default_factory=list)
    project: str = "levyjepa"
    wandb_mode: str = "offline"
    progress: bool = True
    # representation diagnostics (levyjepa/diagnostics/representation.py) every N steps; 0 = off
    diagnostics_every: int = 50
    # pictures of the token field and its law at the end of training
    # (levyjepa/diagnostics/pictures.py)
    pictures: bool = True
    # at the end: the trained vs the untrained encoder (linear probe, k-NN), within against its
    # null level, where the pictures are; printed and written to first_look.txt
    first_look: bool = False


@dataclass
class Recipe:
    """A complete, resolved recipe."""

    name: Optional[str] = None
    seed: int = 0
    plugins: list[str] = field(default_factory=list)
    out_dir: Optional[str] = None
    resume: Optional[str] = None
    overwrite: bool = False  # start over in an out_dir that already holds a run
    # keys a resumed run changes on purpose (e.g. [optim.net_lr_bs256] after a divergence);
    # any other difference from the saved recipe is refused (levyjepa/training/run_dir.py)
    resume_changes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    # how training views are made of an image source's images (levyjepa/data/views/); video
    # sources make their own views and take no views section
    views: Optional[dict[str, Any]] = None
    encoder: dict[str, Any] = field(default_factory=dict)
    # the SSL method (levyjepa/methods/) and the priors attached to its outputs
    method: dict[str, Any] = field(default_factory=lambda: {"name": "lejepa"})
    priors: dict[str, Any] = field(default_factory=dict)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    log: LogConfig = field(default_factory=LogConfig)
