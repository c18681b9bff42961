"""``trainer.strategy=fsdp``: FSDP2 through Accelerate, on 2 CPU (gloo) processes.

Held to: the same loss terms, gradient norms and weights as ``ddp`` on the same 2 processes
(each process draws its own I-JEPA masks, so 2 processes are compared with 2), a checkpoint that
resumes exactly (a stop after step 1 and a resume to step 2 equals the straight run), and
checkpoints that evaluation reads (``model.safetensors`` holds the whole model).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file
from test_methods import recipe_of, run_args
from test_train import ROOT, read_metrics
from torch import nn

from levyjepa.config.recipe import load_recipe
from levyjepa.core.errors import ConfigError
from levyjepa.core.registry import ENCODERS
from levyjepa.methods.build import encoder_runtime
from levyjepa.training.checkpoint import list_checkpoints
from levyjepa.training.loop import train
from levyjepa.training.sharding import block_class_names, full_parameters, is_sharded
from levyjepa.training.trained import load_trained

TERMS = ("train/loss", "train/grad_norm", "train/probe_loss")


def _args(name: str, out: Path, *extra: str) -> list[str]:
    return run_args(name, out, "log.every=1", "trainer.cpu_threads=1", "trainer.eval_every=0",
                    "trainer.checkpoint_every=1", *extra)


def _torchrun(name: str, out: Path, *extra: str, port: int, strategy: str = "fsdp") -> str:
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "torchrun"), "--nproc_per_node", "2",
         "--master_port", str(port), "-m", "levyjepa.run", str(recipe_of(name)),
         *_args(name, out, f"trainer.strategy={strategy}", *extra)],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _terms(run: Path) -> dict[int, dict[str, float]]:
    return {e["step"]: {k: e[k] for k in TERMS} for e in read_metrics(run) if "train/loss" in e}


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(list_checkpoints(run)[-1] / "model.safetensors"))


def test_block_class_names_are_the_repeated_blocks() -> None:
    class Block(nn.Linear):
        pass

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Linear(2, 2)
            self.blocks = nn.ModuleList([Block(2, 2), Block(2, 2)])
            self.head = nn.Module()
            self.head.layers = nn.Sequential(nn.GELU())  # timm's ViT: a Sequential
            self.other = nn.ModuleList([nn.ReLU()])  # not named blocks/layers: not a unit

    assert block_class_names(Net()) == ["Block", "GELU"]


def test_full_parameters_is_a_no_op_without_sharding() -> None:
    model = nn.Linear(3, 2)
    before = model.weight.detach().clone()
    assert not is_sharded(model)
    with full_parameters(model):
        assert torch.equal(model.weight, before)


def _vit_parameters(*, patch: int, width: int, depth: int, size: int = 224) -> int:
    """A timm ViT's parameters without its head, by formula: patch embedding, class token and
    positions, ``depth`` blocks (qkv and projection, a 4x MLP, two layer norms), final norm."""
    tokens = (size // patch) ** 2 + 1
    block = (4 * width * width + 4 * width) + (8 * width * width + 5 * width) + 4 * width
    return (3 * patch * patch * width + width) + width + tokens * width + depth * block + 2 * width


@pytest.mark.parametrize(("name", "patch", "width", "depth"),
                         [("image_levy2d_vitl", 16, 1024, 24), ("image_levy2d_vith", 14, 1280, 32)])
def test_scale_recipes_shard_a_vit_l_and_a_vit_h(name: str, patch: int, width: int,
                                                  depth: int) -> None:
    """The recipes/scale encoders, built on the meta device (no memory): the backbone's size
    (ViT-L/16 303.3M, ViT-H/14 630.8M), FSDP with activation checkpointing, and timm's blocks
    as the units."""
    cfg = load_recipe(ROOT / "recipes" / "scale" / f"{name}.yaml")
    assert cfg.trainer.strategy == "fsdp" and cfg.trainer.activation_checkpointing
    with torch.device("meta"):
        encoder = ENCODERS.build(OmegaConf.to_container(cfg.encoder), where="encoder",
                                 **encoder_runtime(cfg))
    backbone = sum(p.numel() for p in encoder.backbone.parameters())
    assert backbone == _vit_parameters(patch=patch, width=width, depth=depth)
    assert block_class_names(encoder) == ["Block"]


def test_strategy_is_validated_and_fsdp_needs_two_processes(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"trainer.strategy: 'zero' is not one of ddp, fsdp"):
        load_recipe(recipe_of("lejepa"), _args("lejepa", tmp_path / "a", "trainer.strategy=zero"))
    cfg = load_recipe(recipe_of("lejepa"), _args("lejepa", tmp_path / "b", "trainer.max_steps=1",
                                                  "trainer.strategy=fsdp"))
    with pytest.raises(ConfigError, match=r"trainer.strategy=fsdp .* this run has 1: launch 2"):
        train(cfg)
    assert not (tmp_path / "b" / "checkpoints").exists()


def test_fsdp_trains_like_ddp_and_resumes_exactly(tmp_path: Path) -> None:
    """I-JEPA (an EMA teacher and a predictor inside the sharded model): 2 FSDP processes stop
    after step 1 and resume to step 2; the terms at both steps and the final weights equal a
    straight ``ddp`` run's, and evaluation loads the FSDP run's encoder."""
    one, two = tmp_path / "ddp", tmp_path / "fsdp"
    _torchrun("ijepa", one, "trainer.max_steps=2", port=29640, strategy="ddp")
    _torchrun("ijepa", two, "trainer.max_steps=1", port=29641)
    assert (list_checkpoints(two)[-1] / "pytorch_model_fsdp_0").is_dir()  # sharded state
    log = _torchrun("ijepa", two, "trainer.max_steps=2", "resume=auto", port=29642)
    want, got = _terms(one), _terms(two)
    assert sorted(got) == [1, 2]
    for step in (1, 2):
        for key in TERMS:
            assert got[step][key] == pytest.approx(want[step][key], rel=2e-5), (step, key)
    a, b = _weights(one), _weights(two)
    assert set(a) == set(b)
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6, msg=key)
    trained = load_trained(two)  # the evaluated encoder (I-JEPA's teacher) from model.safetensors
    assert trained.step == 2
    assert "fsdp units: Block" in log  # the encoder's timm blocks are units of their own


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lejepa", "vicreg"])
def test_fsdp_resume_is_bit_exact(name: str, tmp_path: Path) -> None:
    """A straight 2-step FSDP run and a stop-and-resume one give identical terms and weights
    (VICReg: the projector's global BatchNorm; LeJEPA: SIGReg's all-reduced statistics)."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    _torchrun(name, straight, "trainer.max_steps=2", port=29643)
    _torchrun(name, resumed, "trainer.max_steps=1", port=29644)
    _torchrun(name, resumed, "trainer.max_steps=2", "resume=auto", port=29645)
    assert _terms(straight) == _terms(resumed)
    a, b = _weights(straight), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_fsdp_accumulates_like_ddp(tmp_path: Path) -> None:
    """``optim.accumulate_steps=2`` under FSDP (gradient sync off until the last micro-batch)
    gives the terms and weights of the same accumulation under ``ddp``."""
    ddp, fsdp = tmp_path / "ddp", tmp_path / "fsdp"
    extra = ("trainer.max_steps=2", "optim.accumulate_steps=2")
    _torchrun("lejepa", ddp, *extra, port=29646, strategy="ddp")
    _torchrun("lejepa", fsdp, *extra, port=29647)
    want, got = _terms(ddp), _terms(fsdp)
    assert sorted(got) == [1, 2]
    for step in (1, 2):
        for key in TERMS:
            assert got[step][key] == pytest.approx(want[step][key], rel=2e-5), (step, key)
    a, b = _weights(ddp), _weights(fsdp)
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6, msg=key)
