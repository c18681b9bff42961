"""The Energy Transformer encoder (Hoover et al., NeurIPS 2023): its energy against a plain-loop
computation, the closed-form dE/dg against autograd, the energy layer norm's positive
semi-definite Jacobian, the energy's descent, gradcheck through the iterations, the masked
forward against the full forward with the dropped tokens out of the attention energy, other
input sizes, and its recipe training two steps."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from test_train import read_metrics, tiny
from torch.func import functional_call

from levyjepa.config.recipe import load_recipe
from levyjepa.core.errors import ConfigError
from levyjepa.core.registry import ENCODERS
from levyjepa.encoders.energy_block import EnergyBlock, EnergyLayerNorm
from levyjepa.encoders.energy_transformer import EnergyTransformerEncoder
from levyjepa.training.loop import train

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "methods" / "ijepa_energy.yaml"


def block(*, width: int = 8, heads: int = 2, head_dim: int = 3, memories: int = 5,
          n_iters: int = 2, seed: int = 0) -> EnergyBlock:
    """A float64 block with a non-trivial gamma and delta."""
    torch.manual_seed(seed)
    blk = EnergyBlock(width=width, heads=heads, head_dim=head_dim, memories=memories,
                      n_iters=n_iters, alpha=0.1).double()
    with torch.no_grad():
        blk.norm.log_gamma.fill_(0.3)
        blk.norm.delta.normal_(0.0, 0.5)
    return blk


def encoder(*, seed: int = 0, **overrides) -> EnergyTransformerEncoder:
    """16 px, patch 4 (a 4x4 grid), width 16, mean pooling (as I-JEPA builds it)."""
    torch.manual_seed(seed)
    args = dict(img_size=16, patch_size=4, embed_dim=16, num_heads=2, head_dim=4, memories=32,
                n_iters=4, emb_dim=16, pool="mean", proj_hidden=16, proj_dim=8,
                with_proj=False, with_tokens_proj=False)
    return EnergyTransformerEncoder(**{**args, **overrides}).eval()


# ---- the energy and its gradient -----------------------------------------------------------


def loop_energy(blk: EnergyBlock, x: torch.Tensor, attend: list[bool]) -> float:
    """E_att + E_hn of one sample's tokens ``x`` ``(N, D)`` by plain loops over floats."""
    gamma = math.exp(blk.norm.log_gamma.item())
    delta = blk.norm.delta.tolist()
    eps = blk.norm.eps
    g = []
    for token in x.tolist():
        mean = sum(token) / len(token)
        var = sum((v - mean) ** 2 for v in token) / len(token)
        g.append([gamma * (v - mean) / math.sqrt(var + eps) + d for v, d in zip(token, delta)])

    def dot(a: list[float], b: list[float]) -> float:
        return sum(p * q for p, q in zip(a, b))

    w_k, w_q, xi, beta = blk.w_k.tolist(), blk.w_q.tolist(), blk.xi.tolist(), blk.beta
    n = len(g)
    e_att = 0.0
    for h in range(len(w_k)):
        keys = [[dot(row, g[b]) for row in w_k[h]] for b in range(n)]
        queries = [[dot(row, g[c]) for row in w_q[h]] for c in range(n)]
        for c in range(n):
            others = [b for b in range(n) if b != c and attend[b]]
            if attend[c] and others:
                e_att -= math.log(sum(math.exp(beta * dot(keys[b], queries[c]))
                                      for b in others)) / beta
    e_hn = -0.5 * sum(max(dot(memory, token), 0.0) ** 2 for memory in xi for token in g)
    return e_att + e_hn


def test_energy_matches_a_plain_loop_computation() -> None:
    blk = block(width=6, heads=2, head_dim=3, memories=4)
    x = torch.randn(2, 5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    attend = torch.tensor([[True] * 5, [True, False, True, True, False]])
    for mask in (None, attend):
        got = blk.energy(x, mask)
        rows = mask.tolist() if mask is not None else [[True] * 5] * 2
        want = [loop_energy(blk, x[i], rows[i]) for i in range(2)]
        assert got.tolist() == pytest.approx(want, rel=1e-12, abs=1e-12)
    # a sample with one token in the attention energy: that token has no key, E_att = 0
    lone = torch.tensor([[False, False, True, False, False]] * 2)
    assert blk.energy(x, lone).tolist() == pytest.approx(
        [loop_energy(blk, x[i], lone[i].tolist()) for i in range(2)], rel=1e-12)


def test_closed_form_gradient_is_autograds_gradient_of_the_energy() -> None:
    blk = block()
    g = torch.randn(3, 6, 8, dtype=torch.float64, requires_grad=True,
                    generator=torch.Generator().manual_seed(2))
    attend = torch.rand(3, 6, generator=torch.Generator().manual_seed(3)) > 0.4
    blk.norm = torch.nn.Identity()  # the energy of g itself
    for mask in (None, attend):
        (want,) = torch.autograd.grad(blk.energy(g, mask).sum(), g)
        torch.testing.assert_close(blk.energy_grad(g, mask), want, rtol=1e-10, atol=1e-12)


def test_energy_layer_norm_is_the_gradient_of_a_convex_lagrangian() -> None:
    """dg/dx is the Lagrangian's Hessian: symmetric, positive semi-definite (gamma > 0), with
    the constant direction in its kernel; so dE/dt = -(dE/dg)^T (dg/dx) (dE/dg) <= 0."""
    norm = EnergyLayerNorm(7).double()
    with torch.no_grad():
        norm.log_gamma.fill_(-0.7)
        norm.delta.normal_()
    for seed in range(3):
        x = torch.randn(7, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
        x = (x * 3.0).requires_grad_(True)
        (grad_l,) = torch.autograd.grad(norm.lagrangian(x), x)
        torch.testing.assert_close(norm(x), grad_l)
        jac = torch.autograd.functional.jacobian(norm, x.detach())
        torch.testing.assert_close(jac, jac.T)
        eig = torch.linalg.eigvalsh(jac)
        assert eig.min() > -1e-12 and eig.max() > 0.1
        assert (jac @ torch.ones(7, dtype=torch.float64)).abs().max() < 1e-12


# ---- the descent -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_energy_decreases_at_every_step_at_the_default_step_size(seed: int) -> None:
    torch.manual_seed(seed)
    enc = EnergyTransformerEncoder(img_size=16, patch_size=4, embed_dim=16, num_heads=2,
                                   n_iters=8, emb_dim=16, pool="mean", proj_hidden=16,
                                   proj_dim=8).double()  # the default alpha
    assert enc.block.alpha == 0.1
    images = torch.randn(3, 3, 16, 16, dtype=torch.float64,
                         generator=torch.Generator().manual_seed(100 + seed)) * (1 + seed)
    with torch.no_grad():
        energies = enc.energies(images)  # (3, 9)
    assert energies.shape == (3, 9)
    steps = energies[:, 1:] - energies[:, :-1]
    assert (steps <= 0).all(), steps
    assert (energies[:, -1] < energies[:, 0] - 1e-3 * energies[:, 0].abs()).all()


def test_gradcheck_through_the_iterations() -> None:
    blk = block(width=8, heads=2, head_dim=3, memories=5, n_iters=2)
    names = [n for n, _ in blk.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for p in blk.parameters())
    x = torch.randn(1, 4, 8, dtype=torch.float64, requires_grad=True,
                    generator=torch.Generator().manual_seed(4))
    attend = torch.tensor([[True, True, False, True]])

    def run(x: torch.Tensor, *values: torch.Tensor, mask=None) -> torch.Tensor:
        return functional_call(blk, dict(zip(names, values)), (x, mask))

    assert torch.autograd.gradcheck(run, (x, *params))
    assert torch.autograd.gradcheck(lambda x, *v: run(x, *v, mask=attend), (x, *params))


# ---- the masked forward -------------------------------------------------------------------


@pytest.mark.parametrize("kept", [1, 3, 9, 16])
def test_masked_forward_is_the_full_forward_with_dropped_tokens_out_of_the_attention(
        kept: int) -> None:
    """Condition: the full forward equals the masked one on the kept tokens when its attention
    energy sums over the kept tokens alone (dropped tokens neither keys nor queries); the
    Hopfield energy is per token, so the dropped ones do not reach the kept ones through it."""
    enc = encoder().double()
    images = torch.randn(2, 3, 16, 16, dtype=torch.float64,
                         generator=torch.Generator().manual_seed(5))
    gen = torch.Generator().manual_seed(kept)
    keep = torch.stack([torch.randperm(16, generator=gen)[:kept] for _ in range(2)])  # unsorted
    attend = torch.zeros(2, 16, dtype=torch.bool).scatter_(1, keep, True)
    with torch.no_grad():
        masked = enc.forward_masked(images, keep)
        blind = enc.forward_tokens(images, attend=attend).flatten(1, 2)
        plain = enc.forward_tokens(images).flatten(1, 2)

    def at_keep(field: torch.Tensor) -> torch.Tensor:
        return field.gather(1, keep.unsqueeze(-1).expand(-1, -1, field.shape[-1]))

    assert masked.shape == (2, kept, 16)
    torch.testing.assert_close(masked, at_keep(blind), rtol=1e-10, atol=1e-10)
    if kept == 16:  # every token kept, in raster order: exactly the ordinary full forward
        with torch.no_grad():
            everything = enc.forward_masked(images, torch.arange(16).expand(2, 16))
        assert torch.equal(everything, plain)
    else:  # without the exclusion the dropped tokens change the kept ones
        assert (at_keep(plain) - masked).abs().max() > 1e-3


def test_dropped_patches_get_no_gradient() -> None:
    enc = encoder()
    images = torch.randn(2, 3, 16, 16, requires_grad=True)
    keep = torch.tensor([[0, 5, 6, 15], [1, 2, 3, 4]])
    enc.forward_masked(images, keep).square().sum().backward()
    per_patch = images.grad.abs().unflatten(2, (4, 4)).unflatten(4, (4, 4)).sum((1, 3, 5))
    kept = torch.zeros(2, 16, dtype=torch.bool).scatter_(1, keep, True).view(2, 4, 4)
    assert (per_patch[~kept] == 0).all() and (per_patch[kept] > 0).all()


# ---- sizes, arguments, precision ------------------------------------------------------------


def test_other_input_sizes_and_the_output_contract() -> None:
    enc = encoder(pool="attention", pool_heads=2, with_proj=True, with_tokens_proj=True)
    assert enc.grid == (4, 4) and enc.grid_of((24, 18)) == (6, 4)
    assert enc.forward_tokens(torch.randn(2, 3, 24, 18)).shape == (2, 6, 4, 16)
    for side in (16, 8):  # a global and a local (multi-crop) view size
        out = enc.train()(torch.randn(3, 2, 3, side, side))
        assert out.emb.shape == (6, 16) and out.proj.shape == (2, 3, 8)
        assert out.tokens.shape == (6, side // 4, side // 4, 16)
        assert out.tokens_proj.shape == (6, side // 4, side // 4, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        tokens = enc.forward_tokens(torch.randn(2, 3, 16, 16))
    assert torch.isfinite(tokens).all()


@pytest.mark.parametrize("bad, message", [
    ({"alpha": 0.0}, "alpha must be > 0"),
    ({"beta": -1.0}, "beta must be > 0"),
    ({"n_iters": 0}, "n_iters must be a positive integer"),
    ({"memories": 0}, "memories must be a positive integer"),
    ({"num_heads": 3}, "num_heads=3 must divide embed_dim=16"),
    ({"pool": "max"}, "pool must be one of attention, mean"),
])
def test_bad_arguments_are_refused_naming_the_key(bad: dict, message: str) -> None:
    section = {"name": "energy_transformer", "img_size": 16, "patch_size": 4, "embed_dim": 16,
               "num_heads": 2, "emb_dim": 16, "pool_heads": 2, **bad}
    with pytest.raises(ConfigError, match=message):
        ENCODERS.build(section, where="encoder", with_tokens_proj=False, with_proj=False)


# ---- the recipe ----------------------------------------------------------------------------


def test_recipe_trains_two_steps(tmp_path: Path) -> None:
    cfg = load_recipe(RECIPE)
    assert cfg.encoder.name == "energy_transformer" and cfg.method.name == "ijepa"
    takes = ENCODERS.parameters("energy_transformer")  # the tiny ViT's depth is not one
    overrides = [o for o in tiny(tmp_path / "run", "trainer.max_steps=2", "method.min_keep=2")
                 if not o.startswith("method.sigreg.")
                 and (not o.startswith("encoder.") or o.partition("=")[0][8:] in takes)]
    summary = train(load_recipe(RECIPE, overrides))
    assert summary["steps"] == 2
    last = [e for e in read_metrics(tmp_path / "run") if "train/loss" in e][-1]
    assert math.isfinite(last["train/loss"]) and math.isfinite(last["train/pred_loss"])
