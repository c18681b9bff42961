"""The Epps-Pulley statistic: weighted L2 distance between empirical and target CFs.

T. W. Epps and L. B. Pulley, "A test for normality based on the empirical characteristic
function", Biometrika 70(3), 1983. For ``n`` samples ``z`` of a real symmetric target law with
characteristic function ``phi`` (real), and a quadrature ``(u_i, w_i)`` of a weight on
``u > 0``::

    EP = 2 * sum_i w_i * ((mean_n cos(u_i z) - phi(u_i))^2 + (mean_n sin(u_i z))^2)

The factor 2 folds ``u < 0`` onto ``u > 0`` (the squared error is even in ``u``). Under the null
with i.i.d. samples, ``E[EP] = (2 / n) sum_i w_i (1 - phi(u_i)^2)``, since
``E|mean e^{iuz} - phi|^2 = (1 - |phi|^2) / n``.

Everything here runs in float32 with autocast disabled, whatever the input dtype: a bf16 mean
of cosines would lose the small CF errors the statistic is made of.
"""

from __future__ import annotations

import torch

__all__ = ["empirical_cf", "epps_pulley"]


def empirical_cf(z: torch.Tensor, nodes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Real and imaginary parts of the empirical CF of each row of ``z`` at ``nodes``.

    Args:
        z: Samples ``(B, n)``: row ``b`` holds ``n`` draws of sample ``b``.
        nodes: Frequencies ``(Q,)``.

    Returns:
        ``(mean_n cos(u z), mean_n sin(u z))``, each float32 ``(B, Q)``.
    """
    if z.dim() != 2:
        raise ValueError(f"z must have shape (B, n), got {tuple(z.shape)}")
    if z.shape[1] == 0:
        raise ValueError(f"z needs at least one sample per row, got shape {tuple(z.shape)}")
    with torch.autocast(device_type=z.device.type, enabled=False):
        angles = z.float().unsqueeze(-1) * nodes.to(device=z.device, dtype=torch.float32)
        return angles.cos().mean(1), angles.sin().mean(1)  # (B, Q) each


def epps_pulley(
    z: torch.Tensor, nodes: torch.Tensor, weights: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    """Epps-Pulley distance of each row of ``z`` to a real, symmetric target law.

    Args:
        z: Samples ``(B, n)``.
        nodes: Quadrature nodes ``u_i``, ``(Q,)``.
        weights: Quadrature weights ``w_i``, ``(Q,)``.
        target: Target characteristic function ``phi(u_i)`` (real), ``(Q,)``.

    Returns:
        float32 ``(B,)``: ``EP_b`` for each row.
    """
    if not nodes.shape == weights.shape == target.shape or nodes.dim() != 1:
        raise ValueError(
            f"nodes, weights and target must all have shape (Q,), got {tuple(nodes.shape)}, "
            f"{tuple(weights.shape)}, {tuple(target.shape)}"
        )
    cos_mean, sin_mean = empirical_cf(z, nodes)
    with torch.autocast(device_type=z.device.type, enabled=False):
        f32 = {"device": z.device, "dtype": torch.float32}
        err = (cos_mean - target.to(**f32)).square() + sin_mean.square()  # (B, Q)
        return 2.0 * (err * weights.to(**f32)).sum(-1)
