"""SSL methods: registered components that turn a batch of views into named loss terms.

May import core and the other component packages (encoders, priors, methods, data); never
diagnostics, config, training, eval, studies or the entry points.

One method per file; :mod:`levyjepa.methods.base` states the seam (:class:`Method`,
:class:`MethodNeeds`, :class:`MethodOutput`). Registered here: ``lejepa``
(:class:`levyjepa.methods.lejepa.LeJEPA`, with multi-crop), ``vicreg``
(:class:`levyjepa.methods.vicreg.VICReg`) and ``ijepa`` (:class:`levyjepa.methods.ijepa.IJEPA`,
masked prediction with an EMA teacher or SIGReg), ``vjepa`` (:class:`levyjepa.methods.vjepa.VJEPA`,
its video form with tube masks) and ``hjepa`` (:class:`levyjepa.methods.hjepa.HJEPA`, a
Hamiltonian predictor forward in time on clips), ``hjepa_views``
(:class:`levyjepa.methods.hjepa_views.HJEPAViews`, the same predictor between image views, as its
seed trains it), ``saccade`` (:class:`levyjepa.methods.saccade.SaccadeJEPA`, Saccade JEPA: views a
known small motion apart); and ``supervised``
(:class:`levyjepa.methods.supervised.Supervised`), not an SSL method but the supervised reference
of a study (the online probe's cross-entropy trains the encoder). A recipe selects one with
``method: {name: ...}`` and attaches priors to its outputs with ``priors:``
(:mod:`levyjepa.methods.attached_priors`).
"""

from levyjepa.methods import (  # noqa: F401  (importing registers the methods)
    hjepa,
    hjepa_views,
    ijepa,
    lejepa,
    saccade,
    supervised,
    vicreg,
    vjepa,
)
from levyjepa.methods.base import Method, MethodNeeds, MethodOutput, encode_groups, full_precision

__all__ = ["Method", "MethodNeeds", "MethodOutput", "encode_groups", "full_precision"]
