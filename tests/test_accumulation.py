"""Gradient accumulation (``optim.accumulate_steps``): K micro-batches of B/K against one batch
of B, exact resume (also after a stop between micro-batches), and the key's checks.

``accumulate_steps=1`` (the default) leaves the loop as it was: tests/test_train.py and the
resume tests of tests/test_methods.py cover it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_methods import QUICKSTART, recipe_of, run_args
from test_train import ROOT, _encoder_state, read_metrics

from levyjepa.config.recipe import load_recipe
from levyjepa.core.errors import ConfigError
from levyjepa.training import loop
from levyjepa.training.accumulation import draw_index
from levyjepa.training.loop import train


def _args(name: str, out_dir: Path, *extra: str) -> list[str]:
    """:func:`run_args` on one torch thread (the runner's default is a thread per free core)."""
    return run_args(name, out_dir, "trainer.cpu_threads=1", *extra)


def _train_terms(run_dir: Path) -> list[dict]:
    return [e for e in read_metrics(run_dir) if "train/loss" in e]


def test_two_micro_batches_of_half_equal_one_batch_for_a_mean_loss(tmp_path: Path) -> None:
    """``supervised`` (its loss is the probe's cross-entropy, a mean over the views), K=2 at
    batch 4 against K=1 at batch 8, two optimiser steps.

    Held fixed: the samples of each optimiser step (the epoch's shuffled order does not depend
    on the batch size, and step s reads samples 8s..8s+7 either way), their views (made per
    sample from (seed, epoch, index): the draw index plays no part), the learning rates (both
    scale by the effective batch 8) and the model (a ViT: LayerNorm, no BatchNorm, no dropout).
    So the gradient of the mean over 8 samples must equal the sum of the two halves' gradients
    divided by 2 (the quickstart's Lévy prior, whose channel rotation each micro-batch draws
    anew, is at weight 0): the
    logged grad_norm (which a missing division by K doubles) and loss match, and so do the
    weights after two AdamW steps.
    """
    common = ["data.train_size=16", "trainer.max_steps=2", "trainer.eval_every=0", "log.every=1",
              "priors.within.weight=0.0"]  # the Lévy prior's rotation: drawn per micro-batch
    one, two = tmp_path / "k1", tmp_path / "k2"
    recipe = recipe_of("supervised")
    train(load_recipe(recipe, _args("supervised", one, *common, "data.batch_size=8")))
    train(load_recipe(recipe, _args("supervised", two, *common, "data.batch_size=4",
                                       "optim.accumulate_steps=2")))
    a, b = _train_terms(one), _train_terms(two)
    assert [e["step"] for e in a] == [e["step"] for e in b] == [1, 2]
    for ea, eb in zip(a, b):
        assert eb["train/lr"] == ea["train/lr"]  # the effective batch scales it
        for key in ("train/probe_loss", "train/grad_norm"):
            assert eb[key] == pytest.approx(ea[key], rel=1e-5), (ea["step"], key)
    # AdamW divides each entry's gradient by its own scale, so an entry whose gradient is
    # rounding noise (the attention's key bias, which the softmax ignores) moves by up to
    # lr * noise / (noise + eps) in either run: 1e-4 is below the 3.5e-4 step of every entry
    # with a real gradient (and below what a learning rate off by sqrt(2) would move it)
    sa, sb = _encoder_state(one), _encoder_state(two)
    for key in sa:
        torch.testing.assert_close(sb[key], sa[key], rtol=0, atol=1e-4)


def test_lejepa_two_micro_batches_against_one_batch(tmp_path: Path) -> None:
    """LeJEPA (tiny quickstart), K=2 at batch 4 against K=1 at batch 8: SIGReg's empirical
    characteristic function is per micro-batch and each micro-batch draws its own directions,
    so the two differ; the difference is measured (printed), not asserted away."""
    common = ["data.train_size=16", "trainer.max_steps=1", "trainer.eval_every=0", "log.every=1"]
    one, two = tmp_path / "k1", tmp_path / "k2"
    train(load_recipe(QUICKSTART, _args("lejepa", one, *common, "data.batch_size=8")))
    train(load_recipe(QUICKSTART, _args("lejepa", two, *common, "data.batch_size=4",
                                           "optim.accumulate_steps=2")))
    (ea,), (eb,) = _train_terms(one), _train_terms(two)
    for key in ("train/loss", "train/sigreg", "train/inv", "train/grad_norm"):
        assert torch.isfinite(torch.tensor([ea[key], eb[key]])).all(), key
        print(f"{key}: K=1 {ea[key]:.5g}  K=2 {eb[key]:.5g}  "
              f"relative difference {abs(eb[key] - ea[key]) / abs(ea[key]):.3g}")
    assert eb["train/lr"] == ea["train/lr"]


RESUME_COMMON = ["trainer.epochs=2", "log.every=1", "data.train_size=28", "data.batch_size=4",
                 "trainer.eval_every=0", "optim.accumulate_steps=2"]
"""7 micro-batches an epoch: 3 optimiser steps and a tail of one micro-batch, not read."""


def _assert_same_run(straight: Path, parted: Path) -> None:
    a, b = _train_terms(straight), _train_terms(parted)
    assert [e["step"] for e in a] == [e["step"] for e in b] == [1, 2, 3, 4]
    for ea, eb in zip(a, b):
        for key in ea:
            if key.startswith("train/"):
                assert eb[key] == pytest.approx(ea[key], rel=1e-6, abs=1e-9), (ea["step"], key)
    sa, sb = _encoder_state(straight), _encoder_state(parted)
    assert sa.keys() == sb.keys()
    for key in sa:
        torch.testing.assert_close(sb[key], sa[key], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["lejepa", "ijepa"])  # I-JEPA: masks from the draw index
def test_resume_with_accumulation_is_exact(name: str, tmp_path: Path) -> None:
    """K=2: 4 optimiser steps straight against 2 steps, then resume to 4 (mid-epoch, crossing
    the epoch's end and its unread tail): the same terms and weights."""
    straight, parted = tmp_path / "straight", tmp_path / "parted"
    recipe = recipe_of(name)
    train(load_recipe(recipe, _args(name, straight, *RESUME_COMMON, "trainer.max_steps=4")))
    assert len(_train_terms(straight)) == 4
    train(load_recipe(recipe, _args(name, parted, *RESUME_COMMON, "trainer.max_steps=2")))
    train(load_recipe(recipe, _args(name, parted, *RESUME_COMMON, "trainer.max_steps=4",
                                       "resume=auto")))
    _assert_same_run(straight, parted)


class _Crash(RuntimeError):
    pass


def test_a_run_stopped_between_micro_batches_redoes_them(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A run that dies after the first micro-batch of step 3 (its last checkpoint: step 2)
    resumes from step 2 and redoes both micro-batches of step 3 as the straight run did."""
    straight, parted = tmp_path / "straight", tmp_path / "parted"
    train(load_recipe(QUICKSTART, _args("lejepa", straight, *RESUME_COMMON,
                                           "trainer.max_steps=4")))
    seen = []

    def crash_in_step_3(step: int, micro: int, accumulate: int) -> int:
        seen.append((step, micro))
        if (step, micro) == (2, 1):  # the first micro-batch of step 3 is done
            raise _Crash
        return draw_index(step, micro, accumulate)

    with monkeypatch.context() as patch:
        patch.setattr(loop, "draw_index", crash_in_step_3)
        with pytest.raises(_Crash):
            train(load_recipe(QUICKSTART, _args("lejepa", parted, *RESUME_COMMON,
                                                   "trainer.max_steps=4",
                                                   "trainer.checkpoint_every=2")))
    assert seen == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]
    train(load_recipe(QUICKSTART, _args("lejepa", parted, *RESUME_COMMON,
                                           "trainer.max_steps=4", "resume=auto")))
    _assert_same_run(straight, parted)


def test_draw_index_is_distinct_per_micro_batch_and_the_step_without_accumulation() -> None:
    assert [draw_index(s, 0, 1) for s in range(4)] == [0, 1, 2, 3]
    draws = [draw_index(s, m, 3) for s in range(4) for m in range(3)]
    assert draws == list(range(12))


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "two", "true"])
def test_accumulate_steps_must_be_a_positive_int(value: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_recipe(QUICKSTART, [f"optim.accumulate_steps={value}"])
    message = str(err.value)
    assert "optim.accumulate_steps" in message and "\n" not in message, message


def test_more_micro_batches_than_an_epoch_has_is_refused(tmp_path: Path) -> None:
    cfg = load_recipe(QUICKSTART, _args("lejepa", tmp_path / "run", "data.train_size=8",
                                           "optim.accumulate_steps=3"))
    with pytest.raises(ConfigError, match=r"optim.accumulate_steps=3 is more than the 2 batches"):
        train(cfg)


@pytest.mark.slow
def test_two_processes_accumulate_as_one(tmp_path: Path) -> None:
    """K=2 on 2 gloo processes (gradients all-reduced on the last micro-batch only) against K=2
    on one process: the same terms at both steps (step 2 follows an update, so a gradient left
    unsynchronised would show)."""
    args = _args("lejepa", tmp_path / "one", "trainer.max_steps=2", "log.every=1",
                    "trainer.eval_every=0", "optim.accumulate_steps=2")
    train(load_recipe(QUICKSTART, args))
    two = tmp_path / "two"
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "torchrun"), "--nproc_per_node", "2",
         "--master_port", "29587", "-m", "levyjepa.run", str(QUICKSTART),
         *[a.replace(str(tmp_path / "one"), str(two)) for a in args]],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = _train_terms(tmp_path / "one"), _train_terms(two)
    assert [e["step"] for e in a] == [e["step"] for e in b] == [1, 2]
    for ea, eb in zip(a, b):
        for key in ("train/loss", "train/sigreg", "train/inv", "train/grad_norm"):
            assert eb[key] == pytest.approx(ea[key], rel=2e-5), (ea["step"], key)


def test_a_run_saved_before_the_key_resumes_at_its_default(tmp_path: Path) -> None:
    """A run directory whose config.yaml has no ``optim.accumulate_steps`` (written before the
    key existed) resumes with the default 1, and is refused with another value."""
    run = tmp_path / "old"
    common = ["trainer.eval_every=0", "data.train_size=12"]
    train(load_recipe(QUICKSTART, _args("lejepa", run, *common, "trainer.max_steps=1")))
    saved = run / "config.yaml"
    lines = saved.read_text().splitlines(keepends=True)
    kept = [line for line in lines if not line.strip().startswith("accumulate_steps:")]
    assert len(kept) == len(lines) - 1
    saved.write_text("".join(kept))
    with pytest.raises(ConfigError, match=r"optim.accumulate_steps: 1 -> 2"):
        train(load_recipe(QUICKSTART, _args("lejepa", run, *common, "trainer.max_steps=2",
                                               "resume=auto", "optim.accumulate_steps=2")))
    summary = train(load_recipe(QUICKSTART, _args("lejepa", run, *common,
                                                     "trainer.max_steps=2", "resume=auto")))
    assert summary["steps"] == 2 and summary["steps_this_session"] == 1
