"""The supervised reference (method ``supervised``): the online probe's cross-entropy trains the
encoder there and nowhere else; a run without labels is refused before anything is written; the
run is evaluated like any other (docs/methods.md, "Supervised reference")."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from test_train import ROOT, read_metrics, tiny

from levyjepa.config.recipe import load_recipe
from levyjepa.training import setup
from levyjepa.training.loop import train
from levyjepa.training.run_end import probe_loss
from levyjepa.training.setup import Run, build_run

SUPERVISED = ROOT / "recipes" / "methods" / "supervised.yaml"
QUICKSTART = ROOT / "recipes" / "quickstart.yaml"
# one batch of 16 un-cropped images of 2 classes, one view each, on one thread (the test machine
# may be busy); a long schedule so the learning rates stay at their peak over the few steps
FIXED = ["data.batch_size=16", "data.train_size=16", "data.classes=2", "data.instances=1",
         "views.global_views=1", "views.global_scale=[1.0,1.0]", "views.local_views=0",
         "trainer.cpu_threads=1", "trainer.epochs=1000", "optim.warmup_epochs=0",
         "priors.within=null"]


def supervised_args(out_dir: Path, *extra: str) -> list[str]:
    """:func:`test_train.tiny` for the supervised recipe (which has no ``method.sigreg``)."""
    return [a for a in tiny(out_dir, *extra) if not a.startswith("method.sigreg.")]


def fixed_batch(run: Run) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The first training batch of ``run`` as the loop gives it to the model."""
    views, labels = next(iter(run.train_loader))
    return [views], labels


def encoder_grads(run: Run) -> list[torch.Tensor | None]:
    return [p.grad for p in run.pretrainer.encoder.parameters()]


def test_the_probe_trains_the_encoder_under_supervised_only(tmp_path: Path) -> None:
    """The probe's cross-entropy alone, one backward pass: non-zero gradients on every encoder
    parameter under ``supervised``; none at all under ``lejepa`` (its probe reads
    ``emb.detach()``)."""
    run = build_run(load_recipe(SUPERVISED, supervised_args(tmp_path / "sup", *FIXED)))
    assert not run.pretrainer.probe.detach and run.pretrainer.encoder.proj is None
    views, labels = fixed_batch(run)
    _, logits = run.model(views, step=0)
    probe_loss(logits, labels).backward()
    grads = encoder_grads(run)
    assert all(g is not None and g.abs().sum() > 0 for g in grads)

    run = build_run(load_recipe(QUICKSTART, tiny(tmp_path / "lejepa", *FIXED,
                                                 "views.global_views=2")))
    assert run.pretrainer.probe.detach
    views, labels = fixed_batch(run)
    _, logits = run.model(views, step=0)
    probe_loss(logits, labels).backward()
    assert all(g is None for g in encoder_grads(run))
    assert all(p.grad is not None for p in run.pretrainer.probe.parameters())


def fit_one_batch(run: Run, steps: int) -> list[float]:
    """``steps`` optimiser steps on one fixed batch, with the loop's loss (the method's ``loss``
    plus the probe's cross-entropy) and the runner's optimiser; the probe losses."""
    views, labels = fixed_batch(run)
    losses = []
    for step in range(steps):
        result, logits = run.model(views, step=step)
        loss = probe_loss(logits, labels)
        run.optimizer.zero_grad(set_to_none=True)
        (result.terms["loss"] + loss).backward()
        run.optimizer.step()
        losses.append(float(loss.detach()))
    return losses


def test_the_labels_fit_a_batch_the_frozen_encoder_probe_cannot(tmp_path: Path) -> None:
    """20 steps on one batch of 2 classes: with the encoder trained by the probe the
    cross-entropy falls near 0; the same run with the probe detached again (a frozen encoder
    under a linear probe) stays far above. On the loop's freshly augmented views (colour
    jitter, crops) 20-40 steps separated neither from chance, hence the fixed batch."""
    cfg = load_recipe(SUPERVISED, supervised_args(tmp_path / "sup", *FIXED,
                                                  "optim.net_lr_bs256=1e-2"))
    trained = fit_one_batch(build_run(cfg), 20)
    frozen_run = build_run(load_recipe(SUPERVISED, supervised_args(
        tmp_path / "frozen", *FIXED, "optim.net_lr_bs256=1e-2")))
    frozen_run.pretrainer.probe.detach = True  # the only difference: lejepa's probe
    frozen = fit_one_batch(frozen_run, 20)
    assert trained[0] == pytest.approx(frozen[0])  # the same start
    assert trained[-1] < 0.2 < 0.4 < frozen[-1], (trained, frozen)


def test_a_supervised_run_without_labels_is_refused_in_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The data's ``num_classes`` 0 (unlabelled): one line, before the run directory exists."""
    from levyjepa.run import main

    build_splits = setup.build_splits
    monkeypatch.setattr(setup, "build_splits",
                        lambda cfg: dataclasses.replace(build_splits(cfg), num_classes=0))
    run = tmp_path / "run"
    assert main([str(SUPERVISED), *supervised_args(run, "trainer.max_steps=2")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("levyjepa: error: method 'supervised' trains the encoder with the labels, "
                   "and data source 'synthetic_shapes' has none (num_classes 0): use a labelled "
                   "data source")
    assert not run.exists()
    # an SSL method trains on the same unlabelled data (no probe at all)
    summary = train(load_recipe(QUICKSTART, tiny(tmp_path / "ssl", "trainer.max_steps=1")))
    assert summary["steps"] == 1


def test_a_supervised_run_is_evaluated_like_any_other(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """4 steps with the recipe's Lévy prior logged at weight 0, then the offline
    classification task on the frozen encoder (checkpoint without a pooled projector)."""
    from levyjepa.eval import main

    run = tmp_path / "run"
    summary = train(load_recipe(SUPERVISED, supervised_args(run, "trainer.max_steps=4",
                                                            "log.every=1")))
    assert summary["method"] == "supervised" and summary["steps"] == 4
    events = [e for e in read_metrics(run) if "train/loss" in e]
    assert all(e["train/loss"] == 0.0 and e["train/probe_loss"] > 0 and "train/within" in e
               for e in events)
    capsys.readouterr()  # the training's lines
    assert main([str(run), "task=classification", "k=5", "linear_steps=20",
                 "progress=false", "pictures=false"]) == 0
    assert capsys.readouterr().out.strip().startswith(f"eval {run} step 4 | k-NN top1 ")
    result = json.loads((run / "eval.json").read_text())
    assert 0.0 <= result["knn"]["top1"] <= 1.0 and 0.0 <= result["linear"]["top1"] <= 1.0
