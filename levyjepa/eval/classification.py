"""Whole-image classification on frozen features: weighted k-NN and a linear probe.

The protocols are described in :mod:`levyjepa.eval`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def knn_predict(
    train_feats: torch.Tensor,
    train_labels: torch.Tensor,
    test_feats: torch.Tensor,
    *,
    classes: int,
    k: int = 20,
    temperature: float = 0.07,
    chunk: int = 1024,
) -> torch.Tensor:
    """Weighted k-NN on cosine similarity (Wu et al., 2018; DINO, Caron et al., 2021).

    Args:
        train_feats: ``(n, E)``.
        train_labels: ``(n,)`` in ``[0, classes)``.
        test_feats: ``(m, E)``.
        classes: Number of classes.
        k: Neighbours (capped at ``n``).
        temperature: Vote weight ``exp(similarity / temperature)``.
        chunk: Test rows per similarity block.

    Returns:
        Predicted labels ``(m,)``.
    """
    train = F.normalize(train_feats.float(), dim=1)
    k = min(k, len(train))
    preds = []
    for start in range(0, len(test_feats), chunk):
        test = F.normalize(test_feats[start:start + chunk].float(), dim=1)
        sims, idx = (test @ train.T).topk(k, dim=1)
        votes = torch.zeros(len(test), classes)
        votes.scatter_add_(1, train_labels[idx], (sims / temperature).exp())
        preds.append(votes.argmax(1))
    return torch.cat(preds) if preds else torch.empty(0, dtype=torch.long)


def linear_probe(
    train_feats: torch.Tensor,
    train_labels: torch.Tensor,
    test_feats: torch.Tensor,
    *,
    classes: int,
    weight_decay: float = 1e-4,
    steps: int = 300,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logistic regression on standardised frozen features, full-batch L-BFGS.

    Args:
        train_feats: ``(n, E)``.
        train_labels: ``(n,)``.
        test_feats: ``(m, E)``.
        classes: Number of classes.
        weight_decay: L2 penalty ``weight_decay / 2 * ||W||^2`` added to the mean cross-entropy.
        steps: Maximum L-BFGS iterations.

    Returns:
        Predicted labels of the training ``(n,)`` and test ``(m,)`` features.
    """
    x = train_feats.double()
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    x = (x - mean) / std
    weight = torch.zeros(x.shape[1], classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=steps, history_size=20,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-9,
                            tolerance_change=1e-12)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(x @ weight + bias, train_labels)
        loss = loss + 0.5 * weight_decay * weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        test = (test_feats.double() - mean) / std
        return (x @ weight + bias).argmax(1), (test @ weight + bias).argmax(1)


def accuracy(pred: torch.Tensor, labels: torch.Tensor) -> float:
    return float((pred == labels).double().mean()) if len(labels) else float("nan")
