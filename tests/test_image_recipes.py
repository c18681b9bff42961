"""The four image recipes resolve to exactly the seed's setting (docs/seed_experiments.md).

Expected values are written out here from docs/seed_experiments.md and the seed's logs,
independently of the
recipes and of :mod:`levyjepa.studies.seed_results`.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig, OmegaConf

from levyjepa.core.registry import ENCODERS
from levyjepa.encoders.vit import ViTEncoder
from levyjepa.methods.build import encoder_needs_tokens_proj
from levyjepa.run import main
from levyjepa.studies.seed_results import SEED_EPOCHS, SEED_RUNS
from levyjepa.training.online_probe import OnlineProbe
from levyjepa.training.optim import build_optimizer, build_scheduler

ROOT = Path(__file__).resolve().parents[1]

# docs/seed_experiments.md: recipe -> (gamma, kappa, levy lam, net_lr_bs256)
SPEC8 = {
    "image_baseline": (0.0, 1.0, 2.0, 5e-4),
    "image_levy2d": (1.0, 1.0, 2.0, 5e-4),
    "image_noinv_baseline": (0.0, 0.0, 1.0, 5e-5),
    "image_noinv_levy2d": (1.0, 0.0, 1.0, 5e-5),
}
TRAIN_IMAGES = 9469  # Imagenette 160px train split (docs/seed_experiments.md)


def printed_config(recipe: str, capsys: pytest.CaptureFixture[str]) -> DictConfig:
    assert main([str(ROOT / "recipes" / f"{recipe}.yaml"), "--print-config"]) == 0
    cfg = OmegaConf.create(capsys.readouterr().out)
    assert isinstance(cfg, DictConfig)
    return cfg


@pytest.mark.parametrize("recipe", sorted(SPEC8))
def test_print_config_shows_the_seed_setting(recipe: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    cfg = printed_config(recipe, capsys)
    gamma, kappa, lam, net_lr = SPEC8[recipe]
    assert cfg.name == recipe and cfg.seed == 0
    assert OmegaConf.to_container(cfg.data) == {
        "name": "imagenette", "root": None, "batch_size": 96, "workers": 8,
    }
    assert OmegaConf.to_container(cfg.views) == {  # their seed: the recipe's, 0
        "name": "seed", "global_views": 4, "global_size": 128,
        "global_scale": [0.08, 1.0], "color_jitter": [0.8, 0.8, 0.8, 0.2], "color_jitter_p": 0.8,
        "grayscale_p": 0.2, "blur_kernel": 7, "blur_sigma": [0.1, 2.0], "blur_p": 0.5,
        # the seed: RandomApply(p=0.2) around RandomSolarize(threshold=128), whose own p is 0.5
        "solarize_threshold": 128, "solarize_p": 0.1, "flip_p": 0.5,
    }
    assert OmegaConf.to_container(cfg.encoder) == {
        "name": "vit", "arch": "vit_small_patch8_224", "img_size": 128, "drop_path": 0.1,
        "emb_dim": 512, "pool_heads": 6, "proj_hidden": 2048, "proj_dim": 16,
    }
    assert OmegaConf.to_container(cfg.method) == {
        "name": "lejepa", "lamb": 0.02, "kappa": kappa,
        "sigreg": {"name": "sigreg", "slices": 256, "knots": 17, "t_max": 3.0},
    }
    assert OmegaConf.to_container(cfg.priors) == {  # gamma: the Lévy prior's weight
        "within": {"name": "levy2d", "input": "tokens_proj", "weight": gamma,
                   "jumps": "laplace", "alpha": 1.0, "sigma": 0.125, "lam": lam,
                   # the seed's gamma = 0 graph (tests/test_seed_fidelity.py)
                   "graph_at_zero_weight": True},
    }
    assert cfg.trainer.probe_classes == 100
    assert OmegaConf.to_container(cfg.optim) == {
        "net_lr_bs256": net_lr, "probe_lr_bs256": 1e-3, "weight_decay": 0.05,
        "probe_weight_decay": 1e-7, "warmup_epochs": 1.0, "warmup_start": 0.01,
        "min_lr_ratio": 0.25, "grad_clip": None,
        "fused": True,  # the same AdamW update, computed by one fused kernel (a speed option)
        "accumulate_steps": 1,  # one batch per optimiser step, as the seed
    }
    assert cfg.trainer.epochs == 800 and cfg.trainer.precision == "bf16"
    assert cfg.trainer.max_steps is None and cfg.trainer.eval_every == 1
    assert list(cfg.log.trackers) == ["wandb", "tensorboard"]


def test_seed_results_module_matches_the_recipes() -> None:
    assert [run.recipe for run in SEED_RUNS] == list(SPEC8) and SEED_EPOCHS == 800
    for run in SEED_RUNS:
        assert (run.gamma, run.kappa, run.levy_lam, run.net_lr_bs256) == SPEC8[run.recipe]
    assert (SEED_RUNS[0].test_acc, SEED_RUNS[1].within, SEED_RUNS[3].inv) == (
        0.90726, 0.00148, 0.3265)


def test_seed_encoder_from_the_recipe_has_the_seed_parameter_count(
        capsys: pytest.CaptureFixture[str]) -> None:
    cfgs = [printed_config(recipe, capsys) for recipe in SPEC8]
    assert all(c.encoder == cfgs[0].encoder for c in cfgs)  # one encoder for all four runs
    cfg = cfgs[0]  # the baseline (gamma = 0) still builds the token projector: within is logged
    assert encoder_needs_tokens_proj(cfg)
    encoder = ENCODERS.build(OmegaConf.to_container(cfg.encoder), where="encoder",
                             with_tokens_proj=encoder_needs_tokens_proj(cfg))
    assert isinstance(encoder, ViTEncoder)

    def count(module: torch.nn.Module) -> int:
        return sum(p.numel() for p in module.parameters() if p.requires_grad)

    assert count(encoder) == 32_669_216
    assert count(encoder.backbone) == 21_467_520
    assert encoder.grid == (16, 16) and encoder.width == 384
    probe = OnlineProbe(emb_dim=encoder.emb_dim, classes=cfg.trainer.probe_classes)
    assert probe.net[1].weight.shape == (100, 512)
    with torch.no_grad():
        out = encoder.eval()(torch.zeros(1, 2, 3, 128, 128))
    assert out.emb.shape == (2, 512) and out.proj.shape == (2, 1, 16)
    assert out.tokens.shape == (2, 16, 16, 384) and out.tokens_proj.shape == (2, 16, 16, 16)


def expected_lr(step: int, *, base: float, floor: float, warmup: int, total: int) -> float:
    """docs/seed_experiments.md, written out: linear from 0.01 x base over one epoch, cosine to
    floor."""
    if step < warmup:
        return base * (0.01 + 0.99 * step / warmup)
    return floor + 0.5 * (base - floor) * (1 + math.cos(math.pi * (step - warmup)
                                                        / (total - warmup)))


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")
@pytest.mark.parametrize("recipe", ["image_baseline", "image_noinv_levy2d"])
def test_learning_rate_schedule_matches_the_formula(recipe: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    cfg = printed_config(recipe, capsys)
    batch = cfg.data.batch_size
    steps_per_epoch = len(torch.utils.data.DataLoader(range(TRAIN_IMAGES), batch_size=batch,
                                                      drop_last=True))
    assert (batch, steps_per_epoch) == (96, 98)
    total = steps_per_epoch * cfg.trainer.epochs
    assert total == 78_400
    # built exactly as levyjepa.training.loop builds them
    encoder_param, probe_param = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(
        torch.zeros(1))
    optimizer = build_optimizer(
        encoder_params=[encoder_param], probe_params=[probe_param], batch_size=batch,
        net_lr_bs256=cfg.optim.net_lr_bs256, probe_lr_bs256=cfg.optim.probe_lr_bs256,
        weight_decay=cfg.optim.weight_decay, probe_weight_decay=cfg.optim.probe_weight_decay)
    scheduler = build_scheduler(
        optimizer, steps_per_epoch=steps_per_epoch, epochs=cfg.trainer.epochs,
        warmup_epochs=cfg.optim.warmup_epochs, warmup_start=cfg.optim.warmup_start,
        min_lr_ratio=cfg.optim.min_lr_ratio)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.05, 1e-7]

    net = SPEC8[recipe][3] * math.sqrt(96 / 256)
    probe = 1e-3 * math.sqrt(96 / 256)
    floor = min(net, probe) / 4
    checkpoints = {0: "step 0", 97: "last warm-up step", 98: "end of warm-up",
                   98 + (total - 98) // 2: "midway", total - 1: "last step", total: "after"}
    seen: dict[int, list[float]] = {}
    for step in range(total + 1):
        if step in checkpoints:
            seen[step] = [g["lr"] for g in optimizer.param_groups]
        if step < total:
            scheduler.step()  # no optimizer.step(): only the schedule is under test
    for step, (net_lr, probe_lr) in seen.items():
        for got, base in ((net_lr, net), (probe_lr, probe)):
            want = expected_lr(step, base=base, floor=floor, warmup=98, total=total)
            assert got == pytest.approx(want, rel=1e-9), (checkpoints[step], base)
    assert seen[0] == pytest.approx([0.01 * net, 0.01 * probe], rel=1e-12)
    assert seen[98] == pytest.approx([net, probe], rel=1e-12)
    assert seen[98 + (total - 98) // 2] == pytest.approx([(net + floor) / 2, (probe + floor) / 2])
    assert seen[total] == pytest.approx([floor, floor], rel=1e-9)
    # the seed's logs round the final encoder rate to 5 decimals: 8e-05 (exp 1), 1e-05 (exp 2)
    assert round(seen[total - 1][0], 5) == {5e-4: 8e-05, 5e-5: 1e-05}[SPEC8[recipe][3]]
