"""Distributional priors on embeddings.

A prior is an ``nn.Module`` registered in :data:`levyjepa.PRIORS` whose forward takes the
embedding tensor it regularises and the global optimisation step (keyword ``step``, used to
seed any randomness identically on every process) and returns a scalar loss. In a recipe,
``objective.sigreg`` is applied to ``proj`` ``(V, N, K)`` and ``objective.levy`` to
``tokens_proj`` ``(N*V, *grid, K)``.
"""

from levyjepa.priors.sigreg import SIGReg

__all__ = ["SIGReg"]
