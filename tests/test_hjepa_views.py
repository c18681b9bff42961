"""``hjepa_views`` (HJEPA on the views of an image): its terms against plain re-implementations
of their formulas, the matched coordinates, the per-target integration, the seed's logged terms
after 2 training steps, and the recipes (the GPU ones on tiny CIFAR files)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
from test_cifar_source import write_cifar
from test_methods import tiny_encoder
from test_train import read_metrics, tiny

from levyjepa.config.recipe import load_recipe
from levyjepa.core.registry import ENCODERS, PRIORS
from levyjepa.encoders.output import EncoderOutput
from levyjepa.methods.hjepa_views import HJEPAViews, coding_rate_logdet, energy_budget
from levyjepa.training.loop import train

ROOT = Path(__file__).resolve().parents[1]
METHODS_DIR = ROOT / "recipes" / "methods"
SEED_TERMS = ("pred", "budget", "logdet", "sigreg")
DIAGNOSTICS = ("q_pr", "p_pr", "q_std_min", "q2", "p2", "V_var", "energy_drift")


# ---- the formulas, written out as loops ----------------------------------------------------------

def budget_by_loop(state: torch.Tensor, ceiling: float) -> float:
    """mean over views and samples of max(0, |s|^2 / d - ceiling)^2."""
    total, count = 0.0, 0
    for view in state.tolist():
        for s in view:
            mean_square = sum(x * x for x in s) / len(s)
            total += max(0.0, mean_square - ceiling) ** 2
            count += 1
    return total / count


def logdet_by_loop(state: torch.Tensor, eps2: float) -> float:
    """-mean_v 1/(2d) log det(I + d/eps2 C_v), C_v summed outer products over N; the
    determinant from the eigenvalues (not a Cholesky factor)."""
    values = []
    for view in state.double():
        n, d = view.shape
        mean = sum(view[i] for i in range(n)) / n
        cov = sum(torch.outer(view[i] - mean, view[i] - mean) for i in range(n)) / n
        eig = torch.linalg.eigvalsh(torch.eye(d, dtype=torch.float64) + d / eps2 * cov)
        values.append(-float(eig.log().sum()) / (2 * d))
    return sum(values) / len(values)


def test_budget_against_its_formula_and_in_closed_form() -> None:
    state = torch.randn(3, 7, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    state[1, 2] *= 4.0  # some states over the ceiling, most under it
    value = float(energy_budget(state, budget_max=1.5))
    assert value > 0
    assert value == pytest.approx(budget_by_loop(state, 1.5), rel=1e-12)
    # every coordinate a: mean square a^2, so (a^2 - c)^2 above the ceiling and 0 under it
    constant = torch.full((2, 5, 8), 2.0, dtype=torch.float64)
    assert float(energy_budget(constant, budget_max=1.0)) == pytest.approx(9.0)
    assert float(energy_budget(constant, budget_max=4.0)) == 0.0
    assert float(energy_budget(constant, budget_max=5.0)) == 0.0


def test_logdet_against_its_formula_and_in_closed_form() -> None:
    state = torch.randn(2, 9, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    state[0, :, 0] *= 3.0
    assert float(coding_rate_logdet(state, eps2=0.5)) == pytest.approx(
        logdet_by_loop(state, 0.5), rel=1e-10)
    # an isotropic batch, C = sigma^2 I exactly: -1/2 log(1 + d sigma^2 / eps^2)
    n, d, sigma, eps2 = 12, 5, 0.7, 0.3
    centred = torch.randn(n, d, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    centred -= centred.mean(0)
    q, _ = torch.linalg.qr(centred)  # orthonormal columns, each orthogonal to the ones vector
    iso = sigma * math.sqrt(n) * q + torch.arange(d, dtype=torch.float64)  # any mean
    want = -0.5 * math.log(1 + d * sigma**2 / eps2)
    assert float(coding_rate_logdet(iso, eps2=eps2)) == pytest.approx(want, rel=1e-10)
    # no spread at all: log det I = 0
    same = torch.ones(3, 6, 4, dtype=torch.float64)
    assert float(coding_rate_logdet(same, eps2=0.5)) == 0.0
    # spreading the batch lowers it
    assert float(coding_rate_logdet(2 * iso, eps2=eps2)) < float(coding_rate_logdet(iso, eps2=eps2))


# ---- the method on states it is handed ---------------------------------------------------------

class StateEncoder(torch.nn.Module):
    """An encoder whose ``emb`` is its input: views ``(N, V, K)`` give ``emb`` ``(N*V, K)``."""

    emb_dim = 6

    def forward(self, views: torch.Tensor) -> EncoderOutput:
        n, v, k = views.shape
        return EncoderOutput(emb=views.reshape(n * v, k), proj=None,
                             tokens=views.reshape(n * v, 1, 1, k), tokens_proj=None)


def leapfrog_by_loop(q: torch.Tensor, p: torch.Tensor, *, steps: int, dt: float,
                     k: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Kick-drift-kick in the well V = k |q|^2 / 2 (force -k q)."""
    for _ in range(steps):
        p = p - 0.5 * dt * k * q
        q = q + dt * p
        p = p - 0.5 * dt * k * q
    return q, p


def handed(match: str, **section: object) -> tuple[dict, torch.Tensor]:
    """Terms of ``hjepa_views`` on given states: 3 global and 2 local views of 5 images, states
    of width 2 * 3; ``state_proj`` is the identity, so the states are the inputs."""
    settings = dict(encoder=StateEncoder(), state_dim=3, dt=0.2, steps=3, local_steps=5,
                    base_coeff=1.5, residual_scale=0.0, match=match, lamb=0.3,
                    sigreg={"name": "sigreg", "slices": 8}, budget_max=0.5, budget_coeff=0.7,
                    logdet_coeff=0.2, logdet_eps2=0.4)
    method = HJEPAViews(**{**settings, **section})
    method.state_proj = torch.nn.Identity()
    states = torch.randn(5, 5, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    views = [states[:3].transpose(0, 1).float(), states[3:].transpose(0, 1).float()]
    with torch.no_grad():
        terms = method(StateEncoder(), views, step=0).terms
    return terms, states.float()


@pytest.mark.parametrize("match", ["q", "p", "qp"])
def test_each_target_is_matched_on_the_chosen_coordinates(match: str) -> None:
    terms, states = handed(match)
    q0, p0 = states[0, :, :3], states[0, :, 3:]
    ends = {3: leapfrog_by_loop(q0, p0, steps=3, dt=0.2, k=1.5),   # the global targets
            5: leapfrog_by_loop(q0, p0, steps=5, dt=0.2, k=1.5)}   # the local targets (5 steps)
    picks = {"q": slice(0, 3), "p": slice(3, 6), "qp": slice(0, 6)}
    errors = {}
    for name, cut in picks.items():
        squares = []
        for view, steps in ((1, 3), (2, 3), (3, 5), (4, 5)):
            end = torch.cat(ends[steps], -1)
            squares += ((end[:, cut] - states[view, :, cut]) ** 2).flatten().tolist()
        errors[name] = sum(squares) / len(squares)
    assert float(terms["pred"]) == pytest.approx(errors[match], rel=1e-5)
    others = [errors[m] for m in picks if m != match]
    assert all(abs(e - errors[match]) > 1e-3 for e in others)  # a wrong pick would show
    assert float(terms["budget"]) == pytest.approx(budget_by_loop(states, 0.5), rel=1e-5)
    assert float(terms["logdet"]) == pytest.approx(logdet_by_loop(states, 0.4), rel=1e-5)
    want = (0.7 * terms["pred"] + 0.3 * terms["sigreg"] + 0.7 * terms["budget"]
            + 0.2 * terms["logdet"])
    assert float(terms["loss"]) == pytest.approx(float(want), rel=1e-6)


def test_the_local_targets_integrate_their_own_time() -> None:
    same, _ = handed("qp", local_steps=None)
    apart, _ = handed("qp")
    assert float(same["pred"]) != pytest.approx(float(apart["pred"]), rel=1e-3)


# ---- on an encoder ------------------------------------------------------------------------------

def multi_views(n: int = 6) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return [torch.randn(n, 2, 3, 16, 16, generator=gen), torch.randn(n, 3, 3, 8, 8, generator=gen)]


def tiny_method(encoder: torch.nn.Module, **section: object) -> HJEPAViews:
    return HJEPAViews(encoder=encoder, state_dim=4, state_hidden=16, potential_hidden=8,
                      sigreg={"name": "sigreg", "slices": 16}, **section)


@pytest.mark.parametrize("lamb", [0.02, 0.0])
def test_every_parameter_gets_a_gradient_and_the_outputs_have_their_shapes(lamb: float) -> None:
    encoder = tiny_encoder("hjepa_views")
    method = tiny_method(encoder, lamb=lamb)
    out = method(encoder, multi_views(), step=0)
    assert {*SEED_TERMS, *DIAGNOSTICS, "loss"} == set(out.terms)
    assert all(t.ndim == 0 and torch.isfinite(t) for t in out.terms.values())
    assert out.terms["sigreg"].requires_grad == (lamb > 0)  # lamb 0: logged only
    assert not any(out.terms[name].requires_grad for name in DIAGNOSTICS)
    assert out.outputs["emb"].shape == (12, 32) and out.outputs["state"].shape == (5, 6, 8)
    assert out.outputs["tokens"].shape == (12, 4, 4, 32)  # the global views only
    assert out.outputs["tokens_proj"].shape == (12, 4, 4, 8)
    out.terms["loss"].backward()
    missing = [n for n, p in [*encoder.named_parameters(), *method.named_parameters()]
               if p.grad is None and not n.startswith("tokens_proj.")]  # read by no prior
    assert missing == []


@pytest.mark.parametrize("section, message", [
    ({"match": "pq"}, "match must be one of q, p, qp, got 'pq'"),
    ({"steps": 0}, "steps must be a positive integer, got 0"),
    ({"local_steps": 0}, "local_steps must be a positive integer, got 0"),
    ({"budget_max": 0.0}, "budget_max must be a finite number > 0, got 0.0"),
    ({"logdet_coeff": -1.0}, "logdet_coeff must be a finite number >= 0, got -1.0"),
    ({"lamb": 1.5}, "lamb must be in [0, 1], got 1.5"),
])
def test_bad_settings_are_refused(section: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        tiny_method(tiny_encoder("hjepa_views"), **section)


def test_sigreg_tokens_reads_a_token_field_by_position_or_as_one_set() -> None:
    field = torch.randn(6, 3, 2, 4, generator=torch.Generator().manual_seed(5))
    sigreg = PRIORS.build({"name": "sigreg", "slices": 8})
    by_position = torch.stack([field[:, i, j] for i in range(3) for j in range(2)])  # (6, 6, 4)
    one_set = torch.stack([field[r, i, j] for r in range(6) for i in range(3)
                           for j in range(2)])[None]  # (1, 36, 4)
    for samples, sets in (("position", by_position), ("all", one_set)):
        prior = PRIORS.build({"name": "sigreg_tokens", "samples": samples, "slices": 8})
        assert float(prior(field, step=2)) == pytest.approx(float(sigreg(sets, step=2)),
                                                            rel=1e-6)
    with pytest.raises(ValueError, match="samples must be one of position, all"):
        PRIORS.build({"name": "sigreg_tokens", "samples": "rows"})


# ---- the recipes --------------------------------------------------------------------------------

def timm_overrides(recipe: Path, out: Path, *extra: str) -> list[str]:
    """Tiny overrides, less the encoder keys a timm encoder does not take (patch_size, ...)."""
    takes = ENCODERS.parameters(load_recipe(recipe).encoder.name)
    return [o for o in tiny(out, "trainer.max_steps=2", "log.every=1", "views.local_views=2",
                            "views.local_size=8", *extra)
            if not o.startswith("encoder.") or o.partition("=")[0][8:] in takes]


@pytest.mark.parametrize("recipe, own", [
    ("hjepa_mv", (*SEED_TERMS, *DIAGNOSTICS)),
    ("sigreg_tokens", ("inv", "sigreg", "tokens")),
])
def test_the_cpu_recipes_train_and_log_the_seed_terms(recipe: str, own: tuple, tmp_path: Path
                                                      ) -> None:
    path = METHODS_DIR / f"{recipe}.yaml"
    summary = train(load_recipe(path, timm_overrides(path, tmp_path / "run")))
    assert summary["steps"] == 2
    events = [e for e in read_metrics(tmp_path / "run") if "train/loss" in e]
    assert [e["step"] for e in events] == [1, 2]
    for event in events:
        for term in (*own, "loss", "probe_loss"):
            assert math.isfinite(event[f"train/{term}"]), term


def test_the_gpu_recipes_load_with_their_cifar_root(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    hjepa = load_recipe(METHODS_DIR / "cifar100_hjepa_mv.yaml")
    tokens = load_recipe(METHODS_DIR / "cifar100_sigreg_tokens.yaml")
    assert hjepa.data.name == tokens.data.name == "cifar" and hjepa.data.root == "data/cifar"
    assert hjepa.method.name == "hjepa_views" and tokens.method.name == "lejepa"
    assert tokens.priors.tokens.name == "sigreg_tokens" and tokens.priors.tokens.input == \
        "tokens_proj"
    assert hjepa.encoder.cifar_stem and hjepa.views.local_views > 0
    monkeypatch.setenv("CIFAR_ROOT", str(tmp_path))
    assert load_recipe(METHODS_DIR / "cifar100_sigreg_tokens.yaml").data.root == str(tmp_path)


def test_the_gpu_recipe_trains_a_step_on_tiny_cifar_files(tmp_path: Path) -> None:
    """The CIFAR-100 recipe end to end on files written here, with a small ResNet."""
    write_cifar(tmp_path / "cifar", "cifar100", per_file=8)
    path = METHODS_DIR / "cifar100_hjepa_mv.yaml"
    overrides = ["data.batch_size=4", "data.workers=0", f"data.root={tmp_path / 'cifar'}",
                 f"out_dir={tmp_path / 'run'}", "trainer.max_steps=1", "log.every=1",
                 "log.trackers=[]", "log.progress=false", "log.pictures=false",
                 "trainer.eval_every=1", "trainer.epochs=1",
                 "encoder.model_args={layers: [1, 1, 1, 1], channels: [8, 16, 16, 16], "
                 "stem_width: 8}",
                 "method.state_dim=4", "method.state_hidden=16", "method.potential_hidden=8"]
    summary = train(load_recipe(path, overrides))
    assert summary["steps"] == 1
    events = read_metrics(tmp_path / "run")
    assert all(math.isfinite(e[f"train/{t}"]) for e in events if "train/loss" in e
               for t in SEED_TERMS)
    assert any("test/acc" in e for e in events)  # the online probe read the test split
