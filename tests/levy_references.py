"""Independent references for the Lévy-sheet golden tests (docs/method.md, Lévy-sheet priors):
closed forms, quadrature, stencils and the Epps-Pulley statistic in NumPy/SciPy only; nothing
here calls the package."""

from __future__ import annotations

import math

import numpy as np
from numpy.polynomial.laguerre import laggauss
from scipy import optimize, special


def ref_mixing(jumps: str, u: np.ndarray, **p: float) -> np.ndarray:
    """Closed forms of docs/method.md, Lévy-sheet prior table (direct, not in log space)."""
    u = np.abs(np.asarray(u, dtype=np.float64))
    if jumps == "laplace":
        return p["alpha"] ** 2 / (p["alpha"] ** 2 + u**2)
    if jumps == "variance_gamma":
        return (p["rate"] / (p["rate"] + u**2 / 2)) ** p["shape"]
    nu = p["nu"]
    x = math.sqrt(nu) * np.where(u == 0, 1.0, u)
    m = 2 * special.kv(nu / 2, x) / special.gamma(nu / 2) * (x / 2) ** (nu / 2)
    return np.where(u == 0, 1.0, m)  # the limit at u = 0 (the formula is 0 * inf there)


def ref_log_cf(u: np.ndarray, sigma: float, lam: float, jumps: str, **p: float) -> np.ndarray:
    return -(sigma**2) * np.square(u) / 2 + lam * (ref_mixing(jumps, u, **p) - 1)


def ref_quadrature(log_cf, points: int = 17) -> tuple[float, float, np.ndarray, np.ndarray]:
    """u_max (Brent on [0, ub], ub doubled from 1), c = 10 / u_max, Laguerre nodes/weights."""
    ub = 1.0
    while log_cf(np.array([ub]))[0] > -4:
        ub *= 2
    u_max = optimize.brentq(lambda u: log_cf(np.array([u]))[0] + 4, 0.0, ub, xtol=1e-15)
    c = 10.0 / u_max
    x, omega = laggauss(points)
    return u_max, c, x / c, omega / c


def ref_axis_2d(g: np.ndarray) -> np.ndarray:
    """Explicit loops: G[i,j] - G[i,j-1] - G[i-1,j] + G[i-1,j-1], valid positions, (B, n, C)."""
    b, h, w, _ = g.shape
    out = [
        g[:, i, j] - g[:, i, j - 1] - g[:, i - 1, j] + g[:, i - 1, j - 1]
        for i in range(1, h)
        for j in range(1, w)
    ]
    return np.stack(out, 1)


def ref_diagonal_2d(g: np.ndarray) -> np.ndarray:
    """Explicit loops: G[i-1,j] + G[i+1,j] - G[i,j-1] - G[i,j+1], (B, n, C)."""
    b, h, w, _ = g.shape
    out = [
        g[:, i - 1, j] + g[:, i + 1, j] - g[:, i, j - 1] - g[:, i, j + 1]
        for i in range(1, h - 1)
        for j in range(1, w - 1)
    ]
    return np.stack(out, 1)


def ref_axis_3d(g: np.ndarray) -> np.ndarray:
    """Explicit loops: sum over a,b,c in {0,1} of (-1)^(a+b+c) G[t-c, i-a, j-b], (B, n, C)."""
    _, tt, h, w, _ = g.shape
    out = []
    for t in range(1, tt):
        for i in range(1, h):
            for j in range(1, w):
                acc = 0.0
                for a in (0, 1):
                    for b in (0, 1):
                        for c in (0, 1):
                            acc = acc + (-1) ** (a + b + c) * g[:, t - c, i - a, j - b]
                out.append(acc)
    return np.stack(out, 1)


def ref_diagonal_time_3d(g: np.ndarray) -> np.ndarray:
    """Explicit loops: D(t) - D(t-1) with D the 45-degree stencil, (B, n, C)."""
    _, tt, h, w, _ = g.shape
    out = []
    for t in range(1, tt):
        for i in range(1, h - 1):
            for j in range(1, w - 1):
                d = [
                    g[:, s, i - 1, j] + g[:, s, i + 1, j] - g[:, s, i, j - 1] - g[:, s, i, j + 1]
                    for s in (t, t - 1)
                ]
                out.append(d[0] - d[1])
    return np.stack(out, 1)


def ref_ep(z: np.ndarray, u: np.ndarray, w: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """EP_b = 2 sum_i w_i ((mean cos(u_i z) - phi_i)^2 + (mean sin(u_i z))^2), z (B, n)."""
    ang = z[:, :, None] * u[None, None, :]
    err = (np.cos(ang).mean(1) - phi) ** 2 + np.sin(ang).mean(1) ** 2
    return 2 * (err * w).sum(-1)
