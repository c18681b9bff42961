"""The Hamiltonian predictor's integrator: order, energy, reversibility, gradients, precision."""

from __future__ import annotations

import math

import pytest
import torch

from levyjepa.methods.hamiltonian import Potential, euler, force, hamiltonian, leapfrog


def _rough_potential(dim: int = 3, seed: int = 0) -> Potential:
    """A float64 potential with a non-zero (non-quadratic) residual MLP."""
    torch.manual_seed(seed)
    potential = Potential(dim=dim, hidden=8, base_coeff=1.0, residual_scale=0.5).double()
    torch.nn.init.normal_(potential.mlp[-1].weight, std=1.0)
    return potential


def test_leapfrog_is_second_order_on_the_harmonic_oscillator() -> None:
    """V = w^2 |q|^2 / 2: q(t) = q0 cos(w t) + p0 / w sin(w t); halving dt divides the error
    at a fixed time by about 4."""
    omega2 = 2.0
    omega = math.sqrt(omega2)
    potential = Potential(dim=2, base_coeff=omega2, residual_scale=0.0)
    q0 = torch.tensor([[1.0, -0.5], [0.3, 0.2]], dtype=torch.float64)
    p0 = torch.tensor([[0.0, 0.7], [-1.0, 0.4]], dtype=torch.float64)
    t = 3.0
    q_exact = q0 * math.cos(omega * t) + p0 / omega * math.sin(omega * t)
    p_exact = -q0 * omega * math.sin(omega * t) + p0 * math.cos(omega * t)
    errors = []
    for dt in (0.1, 0.05):
        with torch.no_grad():
            path = leapfrog(potential, q0, p0, dt=dt, steps=round(t / dt))
        errors.append(max(float((path.q - q_exact).abs().max()),
                          float((path.p - p_exact).abs().max())))
    assert errors[0] < 0.02  # O(dt^2) with a modest constant
    assert 3.7 < errors[0] / errors[1] < 4.3, errors


def test_energy_stays_bounded_over_1000_steps_while_euler_drifts() -> None:
    potential = _rough_potential()
    gen = torch.Generator().manual_seed(1)
    q0 = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    p0 = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    start = hamiltonian(potential, q0, p0).detach()
    not_quadratic = (potential(q0) - 0.5 * q0.square().sum(-1)).detach()
    assert float(not_quadratic.abs().max()) > 0.05
    dt, q, p, qe, pe = 0.05, q0, p0, q0, p0
    leap_dev, euler_energy = [], []
    with torch.no_grad():
        for _ in range(10):  # 10 x 100 steps
            path = leapfrog(potential, q, p, dt=dt, steps=100)
            q, p = path.q, path.p
            leap_dev.append(float(((path.energy_end - start).abs() / start.abs()).max()))
            path_e = euler(potential, qe, pe, dt=dt, steps=100)
            qe, pe = path_e.q, path_e.p
            euler_energy.append(float(path_e.energy_end.mean()))
    assert max(leap_dev) < 0.01, leap_dev  # bounded: no growth over 1,000 steps
    assert max(leap_dev[5:]) < 2 * max(leap_dev[:5]) + 1e-6
    assert all(b > a for a, b in zip(euler_energy, euler_energy[1:]))  # Euler's keeps growing
    assert euler_energy[-1] > 2 * float(start.mean())


@pytest.mark.parametrize("damping", [0.0, 0.3])
def test_forward_then_backward_returns_to_the_start(damping: float) -> None:
    potential = _rough_potential()
    gen = torch.Generator().manual_seed(2)
    q0 = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    p0 = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        ahead = leapfrog(potential, q0, p0, dt=0.07, steps=50, damping=damping)
        back = leapfrog(potential, ahead.q, ahead.p, dt=-0.07, steps=50, damping=damping)
    assert float((ahead.q - q0).abs().max()) > 0.1  # it moved
    torch.testing.assert_close(back.q, q0, rtol=0, atol=1e-11)
    torch.testing.assert_close(back.p, p0, rtol=0, atol=1e-11)


def test_damping_takes_energy_out_of_the_oscillator() -> None:
    potential = Potential(dim=2, base_coeff=1.0, residual_scale=0.0)
    q0, p0 = torch.ones(1, 2, dtype=torch.float64), torch.zeros(1, 2, dtype=torch.float64)
    energies = [float(hamiltonian(potential, q0, p0))]
    q, p = q0, p0
    for _ in range(5):
        path = leapfrog(potential, q, p, dt=0.1, steps=20, damping=0.5)
        q, p = path.q, path.p
        energies.append(float(path.energy_end))
    assert all(b < a for a, b in zip(energies, energies[1:]))
    assert energies[-1] < 0.2 * energies[0]


def test_gradients_through_the_integration_match_finite_differences() -> None:
    """d loss / d (potential parameters, q0, p0) through 6 leapfrog steps, float64 gradcheck:
    the force's autograd.grad keeps its graph, so the second-order terms are there."""
    potential = _rough_potential(dim=2, seed=3)
    names = [n for n, _ in potential.named_parameters()]
    params = [p.detach().clone().requires_grad_(True) for p in potential.parameters()]
    gen = torch.Generator().manual_seed(4)
    q0 = torch.randn(3, 2, generator=gen, dtype=torch.float64, requires_grad=True)
    p0 = torch.randn(3, 2, generator=gen, dtype=torch.float64, requires_grad=True)

    def end_state(q: torch.Tensor, p: torch.Tensor, *flat: torch.Tensor) -> torch.Tensor:
        weights = dict(zip(names, flat))

        class Bound(torch.nn.Module):
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return torch.func.functional_call(potential, weights, (x,))

        path = leapfrog(Bound(), q, p, dt=0.2, steps=6, damping=0.1)
        return torch.cat([path.q, path.p], -1)

    assert torch.autograd.gradcheck(end_state, (q0, p0, *params), eps=1e-6, atol=1e-6)
    # and the potential's parameters do get a gradient from a loss on the end state
    path = leapfrog(potential, q0.detach(), p0.detach(), dt=0.2, steps=6)
    path.q.square().sum().backward()
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0
               for p in potential.parameters())


def test_force_is_minus_the_gradient_and_respects_no_grad() -> None:
    potential = Potential(dim=2, base_coeff=3.0, residual_scale=0.0)
    q = torch.tensor([[1.0, -2.0]])
    torch.testing.assert_close(force(potential, q), -3.0 * q)
    with torch.no_grad():
        assert not force(potential, q).requires_grad


def test_integration_runs_in_float32_under_bf16_autocast() -> None:
    """The loop's GPU precision is bf16 autocast; inside the integrator it is off, so the result
    is the float32 one (the potential's matmuls would otherwise round to bf16)."""
    potential = _rough_potential().float()
    gen = torch.Generator().manual_seed(5)
    q0, p0 = torch.randn(4, 3, generator=gen), torch.randn(4, 3, generator=gen)
    plain = leapfrog(potential, q0, p0, dt=0.1, steps=8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert potential.mlp(q0).dtype == torch.bfloat16  # what autocast does outside
        mixed = leapfrog(potential, q0, p0, dt=0.1, steps=8)
        mixed.q.square().sum().backward()  # the double backward works under autocast too
    assert mixed.q.dtype == torch.float32 and mixed.energy_end.dtype == torch.float32
    torch.testing.assert_close(mixed.q, plain.q)
    torch.testing.assert_close(mixed.p, plain.p)
    assert all(p.grad is not None for p in potential.parameters())


def test_per_row_steps_stop_each_row_at_its_own_count() -> None:
    potential = _rough_potential()
    gen = torch.Generator().manual_seed(6)
    q0 = torch.randn(3, 3, generator=gen, dtype=torch.float64)
    p0 = torch.randn(3, 3, generator=gen, dtype=torch.float64)
    together = leapfrog(potential, q0, p0, dt=0.1, steps=torch.tensor([0, 2, 5]))
    for row, count in enumerate((0, 2, 5)):
        alone = leapfrog(potential, q0[row:row + 1], p0[row:row + 1], dt=0.1, steps=count)
        torch.testing.assert_close(together.q[row:row + 1], alone.q, rtol=0, atol=1e-12)
        torch.testing.assert_close(together.p[row:row + 1], alone.p, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"dim": 0}, "potential dim must be a positive integer"),
    ({"dim": 2, "base_coeff": -1.0}, "base_coeff must be a finite number >= 0"),
    ({"dim": 2, "residual_scale": float("nan")}, "residual_scale must be a finite number"),
])
def test_bad_potential_settings_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Potential(**kwargs)
