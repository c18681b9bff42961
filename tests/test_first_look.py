"""The first look at a finished run (``log.first_look``) and the null level of ``within``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from tiny_overrides import tiny_quickstart

from levyjepa import PRIORS
from levyjepa.eval.first_look import FIRST_LOOK_FILE, within_null_level
from levyjepa.priors.sheet_sampler import sample_levy_sheet
from levyjepa.run import main

ROOT = Path(__file__).resolve().parents[1]


def test_null_level_is_the_prior_scoring_its_own_fields() -> None:
    prior = PRIORS.build({"name": "levy2d"})
    null_8 = within_null_level(prior, (8, 8), 16, fields=128)
    null_16 = within_null_level(prior, (16, 16), 16, fields=128)
    # EP under the null is O(1 / increments): 4x the cells, about a quarter of the level
    assert null_8 is not None and null_16 is not None
    assert 2.5 < null_8 / null_16 < 6.0, (null_8, null_16)
    # power: white noise with the sheets' own increment variance scores far above it
    sheets = sample_levy_sheet((128, 8, 8), 16, sigma=prior.sigma, lam=prior.lam,
                               jumps=prior.law, generator=torch.Generator().manual_seed(1))
    step = sheets.diff(dim=1).diff(dim=2).std()
    noise = torch.randn(128, 8, 8, 16, generator=torch.Generator().manual_seed(2)) * step
    assert float(prior(noise, step=0)) > 5 * null_8


def test_null_level_is_none_for_a_prior_without_a_jump_law() -> None:
    class Plain(torch.nn.Module):
        families = ()

    assert within_null_level(Plain(), (8, 8), 4) is None


def test_first_look_compares_trained_and_untrained_and_reports_within(tmp_path: Path) -> None:
    out = tmp_path / "run"
    tiny = tiny_quickstart(batch=8, train=32, test=16,
                           extra=["trainer.max_steps=4", "log.pictures=true",
                                  "log.first_look=true"])
    assert main([str(ROOT / "recipes" / "quickstart.yaml"), *tiny, f"out_dir={out}"]) == 0
    text = (out / FIRST_LOOK_FILE).read_text()
    trained = json.loads((out / "eval.json").read_text())
    untrained = json.loads((out / "eval_untrained.json").read_text())
    assert untrained["untrained"] is True and untrained["step"] == 0
    assert f"{trained['linear']['top1']:.3f}     {untrained['linear']['top1']:.3f}" in text
    assert "online probe test/acc" in text and "chance 0.100" in text
    assert "within (Lévy prior on the token field" in text and "at step 1 ->" in text
    null = float(text.split("->")[1].split(";")[1].split()[0])
    assert math.isfinite(null) and 0 < null < 1
    assert "_cf.png" in text and "_token_field.png" in text and "_attention.png" in text
    # the untrained baseline really is another encoder
    assert trained["test_features"] != untrained["test_features"]


def test_evaluation_shows_progress_bars(tmp_path: Path, capsys, monkeypatch) -> None:
    """Online evaluation during training and levyjepa.eval both draw a progress bar; where
    stderr is not a terminal (here: captured), as plain lines (levyjepa/core/progress.py)."""
    from levyjepa.eval import main as eval_main

    out = tmp_path / "run"
    tiny = tiny_quickstart(batch=8, test=16, extra=["trainer.max_steps=2", "log.progress=true"])
    with monkeypatch.context() as patch:
        patch.setattr("levyjepa.core.progress.is_terminal", lambda stream=None: True)
        assert main([str(ROOT / "recipes" / "quickstart.yaml"), *tiny,
                     f"out_dir={tmp_path / 'on_a_terminal'}"]) == 0
    assert "test/acc:" in capsys.readouterr().err  # the online probe's evaluation bar
    assert main([str(ROOT / "recipes" / "quickstart.yaml"), *tiny, f"out_dir={out}"]) == 0
    err = capsys.readouterr().err  # the training bar as lines; the evaluation inside it: none
    assert "quickstart: 2/2 [" in err and "test/acc" not in err
    assert "\x1b[" not in err and "\r" not in err
    assert eval_main([str(out), "pictures=false", "batch_size=4"]) == 0
    err = capsys.readouterr().err
    assert "train features:" in err and "test features:" in err and "\x1b[" not in err
    assert eval_main([str(out), "pictures=false", "progress=false"]) == 0
    assert "features:" not in capsys.readouterr().err
