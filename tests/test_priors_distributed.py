"""Priors on 2 CPU processes equal one process on the concatenated batch (docs/method.md, SIGReg).

One ``torchrun --standalone --nproc_per_node 2`` launch (gloo, one thread per process) runs this
file as a script for every spec at once; each rank takes its slice of a deterministic global
input along the prior's batch dimension, computes the prior and backpropagates, and saves the
value and ``x_local.grad``. The tests then compare with one process on the whole input.

Why ``x_local.grad / world_size``: the loss is the same on every rank (a function of globally
all-reduced sums). The backward of the autograd-aware all-reduce sums the ``W`` identical
upstream gradients, so each rank holds ``W * dL/dx_local``. DDP then *averages* parameter
gradients over the ``W`` ranks, which divides that factor out again: every parameter receives
exactly the single-process gradient. So ``x_local.grad / W`` must equal the slice of the
single-process gradient. A plain (autograd-blind) ``all_reduce`` would leave ``dL/dx_local`` on
each rank, and DDP's average would then scale the gradient by ``1 / W``: this test catches it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

WORLD = 2
STEP = 11

# (prior name, kwargs, global input shape, batch dimension)
SPECS: list[tuple[str, dict[str, Any], tuple[int, ...], int]] = [
    ("sigreg", {}, (4, 64, 16), 1),
    ("sigreg", {"slices": 64, "knots": 9}, (48, 8), 0),  # (N, K): a single view
    ("levy2d", {"rotate": True}, (8, 8, 8, 4), 0),
    ("levy3d", {"rotate": True}, (4, 4, 6, 6, 4), 0),
]
IDS = [f"{name}-{i}" for i, (name, *_rest) in enumerate(SPECS)]


def global_input(index: int, shape: tuple[int, ...]) -> torch.Tensor:
    """The deterministic global input of spec ``index`` (skewed, not Gaussian)."""
    gen = torch.Generator().manual_seed(100 + index)
    x = torch.randn(shape, generator=gen)
    return 1.2 * x + 0.3 * x.square() - 0.1


def build(name: str, kwargs: dict[str, Any]) -> torch.nn.Module:
    from levyjepa import PRIORS

    return PRIORS.build({"name": name, **kwargs})


def worker(out_dir: Path) -> None:
    """Body of one rank (run by torchrun): every spec, value and local gradient."""
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    try:
        for index, (name, kwargs, shape, batch_dim) in enumerate(SPECS):
            prior = build(name, kwargs)
            local = global_input(index, shape).chunk(world, dim=batch_dim)[rank].clone()
            local.requires_grad_(True)
            value = prior(local, step=STEP)
            value.backward()
            torch.save(
                {"value": value.detach(), "grad": local.grad, "world": world},
                out_dir / f"spec{index}_rank{rank}.pt",
            )
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _torchrun() -> list[str] | None:
    exe = Path(sys.executable).parent / "torchrun"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("torchrun")
    return [found] if found else None


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One 2-process launch computing every spec; the folder of saved results."""
    torchrun = _torchrun()
    if torchrun is None:
        pytest.skip("torchrun is installed with torch")
    out = tmp_path_factory.mktemp("dist")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    # --standalone: a local rendezvous on a free port, so parallel sessions do not collide
    proc = subprocess.run(
        [*torchrun, "--standalone", "--nproc_per_node", str(WORLD), __file__, str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return out


@pytest.mark.parametrize("index", range(len(SPECS)), ids=IDS)
def test_two_processes_equal_one_on_the_concatenated_batch(index: int, results: Path) -> None:
    """Value: equal on both ranks and to one process, rel 1e-5. Gradient: ``grad / W`` equals the
    single-process slice with ``rtol = 1e-5`` and ``atol = 1e-6 * max|grad|`` (float32 sums are
    reduced in another order; the atol absorbs entries near zero)."""
    name, kwargs, shape, batch_dim = SPECS[index]
    full = global_input(index, shape).requires_grad_(True)
    value = build(name, kwargs)(full, step=STEP)
    value.backward()
    assert value.dtype == torch.float32 and value.dim() == 0
    ref_slices = full.grad.chunk(WORLD, dim=batch_dim)
    atol = 1e-6 * float(full.grad.abs().max())
    assert atol > 0
    for rank in range(WORLD):
        saved = torch.load(results / f"spec{index}_rank{rank}.pt")
        assert saved["world"] == WORLD
        assert saved["value"].item() == pytest.approx(value.item(), rel=1e-5), rank
        torch.testing.assert_close(saved["grad"] / WORLD, ref_slices[rank], rtol=1e-5, atol=atol)


if __name__ == "__main__":
    worker(Path(sys.argv[1]))
