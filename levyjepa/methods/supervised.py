"""``supervised``: the same encoder trained with the labels, a reference for studies.

Not a self-supervised method: it has no loss term of its own. It encodes the global views and
declares ``needs.labels_train_encoder``, so the runner builds the online probe (``LayerNorm ->
Linear`` on ``emb``) without its ``detach``: the loop's existing ``probe_loss``, the
cross-entropy of the probe on every global view, then trains the encoder too. The encoder's
parameters keep their own optimiser group (``optim.net_lr_bs256``, ``optim.weight_decay``, the
warm-up and cosine schedule), the probe's ``optim.probe_lr_bs256``; the data, views, encoder,
steps and evaluation are the recipe's, exactly as for an SSL arm. A study reads it as a ceiling:
how much of the headroom between the untrained and the label-trained encoder self-supervision
took on the same budget.

Reporting a supervised model of the same architecture beside the SSL ones is the usual practice:
SimCLR (T. Chen, S. Kornblith, M. Norouzi and G. Hinton, "A Simple Framework for Contrastive
Learning of Visual Representations", ICML 2020, Table 1 and Figure 7: supervised ResNets of the
same depth and width, trained with the same augmentations in Table 1) and DINO (M. Caron et al.,
"Emerging Properties in Self-Supervised Vision Transformers", ICCV 2021, Table 2: the
"Supervised" rows per architecture). Here the reference also shares the SSL arm's views, steps
and schedule, so only the objective differs.

``outputs`` keeps what priors attach to (``tokens``, ``tokens_proj``), so a recipe may train
``supervised`` plus the Lévy prior (``priors.within``) as well. The pooled projector is not built
(``needs.proj=False``); local views are refused (the probe reads the global views only, so
multi-crop would add nothing the labels train).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from levyjepa.core.registry import METHODS
from levyjepa.methods.base import Method, MethodNeeds, MethodOutput


@METHODS.register("supervised")
class Supervised(Method):
    """The encoder on the global views; the online probe's cross-entropy trains it.

    Terms: ``loss``, a zero that keeps the graph of ``emb`` (so a backward pass with every
    prior at weight 0 still reaches the encoder, with zero gradients). Outputs ``emb``
    ``(N*G, E)``, ``tokens`` and, when the encoder builds its token projector, ``tokens_proj``.
    """

    needs = MethodNeeds(min_views=1, proj=False, labels_train_encoder=True)
    outputs = ("emb", "tokens", "tokens_proj")

    def forward(self, encoder: nn.Module, views: Sequence[torch.Tensor], *,
                step: int) -> MethodOutput:
        """Encode the global views (``step`` is unused: nothing is drawn)."""
        out = encoder(views[0])
        zero = out.emb.float().sum() * 0.0  # no term of its own; NaN in emb still shows
        outputs = {"emb": out.emb, "tokens": out.tokens}
        if out.tokens_proj is not None:
            outputs["tokens_proj"] = out.tokens_proj
        return MethodOutput(terms={"loss": zero}, outputs=outputs)
