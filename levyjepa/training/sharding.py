"""``trainer.strategy``: how several processes share the model, ``ddp`` or ``fsdp``.

- ``ddp`` (the default): every process holds the whole model, optimiser state and gradients;
  gradients are all-reduced (Accelerate's ``DistributedDataParallel``).
- ``fsdp``: PyTorch's fully sharded data parallelism, FSDP2 (``torch.distributed.fsdp.
  fully_shard``; Zhao et al., "PyTorch FSDP: Experiences on Scaling Fully Sharded Data
  Parallel", VLDB 2023), through Accelerate's ``FullyShardedDataParallelPlugin(fsdp_version=2)``.
  Each process keeps ``1/N`` of every parameter, gradient and AdamW moment (a ``DTensor`` sharded
  on dimension 0); a unit's full parameters are all-gathered just before its forward and
  backward and freed after (``reshard_after_forward``), and gradients are reduce-scattered. The
  units are the repeated blocks of the model (every class held in a ``ModuleList`` or
  ``Sequential`` named ``blocks`` or ``layers``: the ViT blocks of the encoder, of an EMA teacher
  and of a predictor),
  plus the whole ``Pretrainer`` for the rest (patch embedding, heads, projector, probe).

What stays exact under ``fsdp``: the method's own modules are inside the one sharded model, so
an EMA teacher is updated shard by shard (an element-wise update of equally sharded tensors is
the update of the whole), the priors' all-reduces and the global BatchNorm run as under
``ddp``, and checkpoints are Accelerate's sharded ones (``pytorch_model_fsdp_0/``,
``optimizer_0/``, PyTorch distributed checkpoint format), read back by ``resume=auto`` on the
same number of processes. Every checkpoint also holds the gathered ``model.safetensors`` that
evaluation, export and ``encoder.pretrained`` read, as under ``ddp``.

Accelerate selects FSDP only for accelerator process groups (CUDA and the like); on CPU
processes (gloo) :func:`prepare_cpu_fsdp` marks Accelerate's state as FSDP after the process
group is up, so the same Accelerate code path (``prepare``, ``clip_grad_norm_``,
``save_state``/``load_state``) runs on CPU; that is what the CPU tests exercise.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

BLOCK_LISTS = ("blocks", "layers")
"""Names of the ``ModuleList``/``Sequential`` attributes whose entries become FSDP units."""


def fsdp_plugin() -> object:
    """Accelerate's FSDP2 plugin as levyjepa uses it (units set by :func:`set_fsdp_units`)."""
    from accelerate import FullyShardedDataParallelPlugin

    return FullyShardedDataParallelPlugin(
        fsdp_version=2,
        auto_wrap_policy="transformer_based_wrap",
        transformer_cls_names_to_wrap=[],
        reshard_after_forward=True,
        state_dict_type="SHARDED_STATE_DICT",
        cpu_ram_efficient_loading=False,
    )


def block_class_names(model: nn.Module) -> list[str]:
    """Class names of every entry of a ``ModuleList`` or ``Sequential`` named ``blocks`` or
    ``layers`` in ``model`` (sorted): the modules that become their own FSDP units (timm's
    ``VisionTransformer.blocks`` is a ``Sequential``)."""
    names = set()
    for name, module in model.named_modules():
        if (isinstance(module, (nn.ModuleList, nn.Sequential))
                and name.rsplit(".", 1)[-1] in BLOCK_LISTS):
            names.update(type(child).__name__ for child in module)
    return sorted(names)


def set_fsdp_units(plugin: object, model: nn.Module) -> list[str]:
    """Make ``model``'s blocks (:func:`block_class_names`) the plugin's units; returns them."""
    names = block_class_names(model)
    plugin.transformer_cls_names_to_wrap = names
    return names


def prepare_cpu_fsdp(accelerator: object, plugin: object) -> None:
    """Run Accelerate's FSDP2 path on CPU processes (gloo), which Accelerate does not select
    by itself: its process state and accelerator state are marked FSDP with ``plugin``."""
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType

    PartialState().distributed_type = DistributedType.FSDP
    accelerator.state.distributed_type = DistributedType.FSDP
    accelerator.state.fsdp_plugin = plugin


def is_sharded(model: nn.Module) -> bool:
    """Whether ``model`` was sharded by FSDP2 (``fully_shard``)."""
    from torch.distributed.fsdp import FSDPModule

    return any(isinstance(m, FSDPModule) for m in model.modules())


@contextlib.contextmanager
def full_parameters(model: nn.Module) -> Iterator[None]:
    """Inside, every parameter of an FSDP2-sharded ``model`` is whole, so its sub-modules may
    be called outside ``model.forward`` (the online probe's evaluation, the end-of-run
    pictures). A collective: every process must enter. No-op for an unsharded model.
    """
    from torch.distributed.fsdp import FSDPModule

    units = [m for m in model.modules() if isinstance(m, FSDPModule)]
    for unit in units:
        unit.unshard()
    try:
        yield
    finally:
        for unit in units:
            unit.reshard()


def local_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """This process's shard of a ``DTensor``; any other tensor unchanged."""
    from torch.distributed.tensor import DTensor

    return tensor.to_local() if isinstance(tensor, DTensor) else tensor


def whole_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """The whole value of a ``DTensor`` (a collective: every process must call it); any other
    tensor unchanged."""
    from torch.distributed.tensor import DTensor

    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor
