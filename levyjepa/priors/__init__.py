"""Distributional priors on embeddings.

May import core and the other component packages (encoders, priors, methods, data); never
diagnostics, config, training, eval, studies or the entry points.

A prior is an ``nn.Module`` registered in :data:`levyjepa.PRIORS` whose forward takes the
embedding tensor it regularises and the global optimisation step (keyword ``step``, used to
seed any randomness identically on every process) and returns a scalar loss. In a recipe,
``method.sigreg`` is the ``lejepa`` method's prior on ``proj`` ``(V, N, K)``, and each entry of
``priors`` is applied to the method output its ``input`` names, with its ``weight``
(:mod:`levyjepa.methods.attached_priors`): ``priors.within`` reads ``tokens_proj``
``(N*V, *grid, K)``.

Registered here: ``sigreg`` (:class:`SIGReg`), ``levy2d`` (:class:`LevySheet2D`) and ``levy3d``
(:class:`LevySheet3D`). A new Lévy-type prior subclasses :class:`LevySheetPrior` with its own
log characteristic function (see :mod:`levyjepa.priors.levy_sheet`).
"""

from levyjepa.priors.cf_diagnostics import FamilyCF, cf_diagnostics
from levyjepa.priors.epps_pulley import empirical_cf, epps_pulley
from levyjepa.priors.jump_diffusion_sheets import LevySheet2D, LevySheet3D
from levyjepa.priors.jump_laws import JUMP_LAWS, JumpLaw, make_jump_law
from levyjepa.priors.levy_cf import LevyLogCF, Quadrature, laguerre_quadrature, levy_log_cf
from levyjepa.priors.levy_sheet import LevySheetPrior
from levyjepa.priors.sheet_sampler import sample_cell_increments, sample_levy_sheet
from levyjepa.priors.sigreg import SIGReg
from levyjepa.priors.sigreg_tokens import SIGRegTokens

__all__ = [
    "SIGRegTokens",
    "JUMP_LAWS",
    "FamilyCF",
    "JumpLaw",
    "LevyLogCF",
    "LevySheet2D",
    "LevySheet3D",
    "LevySheetPrior",
    "Quadrature",
    "SIGReg",
    "cf_diagnostics",
    "empirical_cf",
    "epps_pulley",
    "laguerre_quadrature",
    "levy_log_cf",
    "make_jump_law",
    "sample_cell_increments",
    "sample_levy_sheet",
]
