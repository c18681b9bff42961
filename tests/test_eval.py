"""Offline evaluation (levyjepa.eval): k-NN and linear probe, and the command on a tiny run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from levyjepa.config.recipe import load_recipe
from levyjepa.encoders.output import EncoderOutput
from levyjepa.eval import extract_features, knn_predict, linear_probe, main, parse_overrides
from levyjepa.training.loop import train

ROOT = Path(__file__).resolve().parents[1]
CLASSES = 4


def separable(n: int, *, seed: int, dim: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Features linearly separable by construction, with a margin.

    Sample ``i`` has class ``y = i % 4``; its coordinates are uniform in ``[-1.9, 1.9]`` plus 4
    on axis ``y``, so ``x_y >= 2.1 > 1.9 >= x_c`` for every other class ``c``: the linear rule
    ``argmax_c x_c`` classifies every sample correctly.
    """
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % CLASSES
    x = (2 * torch.rand(n, dim, generator=gen) - 1) * 1.9
    x[torch.arange(n), y] += 4.0
    return x, y


def accuracy(pred: torch.Tensor, labels: torch.Tensor) -> float:
    return float((pred == labels).double().mean())


def test_separable_features_are_classified() -> None:
    """k-NN (k=20, T=0.07) and the linear probe reach >= 0.98 test accuracy (measured: 0.997
    and 0.998; the probe fits the training split perfectly)."""
    train_x, train_y = separable(2000, seed=0)
    test_x, test_y = separable(1000, seed=1)
    assert accuracy(knn_predict(train_x, train_y, test_x, classes=CLASSES), test_y) >= 0.98
    fit, pred = linear_probe(train_x, train_y, test_x, classes=CLASSES, steps=100)
    assert accuracy(fit, train_y) == 1.0
    assert accuracy(pred, test_y) >= 0.98


def test_random_labels_give_chance() -> None:
    """Labels independent of the features: test accuracy is chance, 1/4, within 0.05.

    With 1000 test labels the accuracy's standard deviation at chance is
    sqrt(0.25 * 0.75 / 1000) = 0.014, so 0.05 is a 3.6 sigma bound (measured: k-NN 0.242,
    linear 0.249, while the probe fits 0.31 of its random training labels).
    """
    train_x, _ = separable(2000, seed=0)
    test_x, _ = separable(1000, seed=1)
    gen = torch.Generator().manual_seed(5)
    train_y = torch.randint(0, CLASSES, (2000,), generator=gen)
    test_y = torch.randint(0, CLASSES, (1000,), generator=gen)
    knn = accuracy(knn_predict(train_x, train_y, test_x, classes=CLASSES), test_y)
    _, pred = linear_probe(train_x, train_y, test_x, classes=CLASSES, steps=100)
    assert abs(knn - 0.25) < 0.05
    assert abs(accuracy(pred, test_y) - 0.25) < 0.05


def test_knn_votes_are_temperature_weighted_cosine() -> None:
    """One very close neighbour of class 1 against two farther ones of class 0 (k=3): a low
    temperature lets the closest win, a high one lets the majority win; norms do not matter."""
    train_x = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.6, -0.8]]) * torch.tensor([[5.0], [1], [2]])
    train_y = torch.tensor([1, 0, 0])
    test_x = torch.tensor([[1.0, 0.05]])
    assert knn_predict(train_x, train_y, test_x, classes=2, k=3, temperature=0.05).item() == 1
    assert knn_predict(train_x, train_y, test_x, classes=2, k=3, temperature=10.0).item() == 0
    assert knn_predict(train_x, train_y, test_x, classes=2, k=99).item() == 1  # k capped at n


class ClipEncoder(nn.Module):
    """Stand-in video encoder: checks it gets (N, V=1, C, T, H, W), pools to (N, 3)."""

    def forward(self, views: torch.Tensor) -> EncoderOutput:
        assert views.dim() == 6 and views.shape[1] == 1
        emb = views.mean(dim=(1, 3, 4, 5))
        return EncoderOutput(emb=emb, proj=emb[None], tokens=views, tokens_proj=None)


def test_features_of_clips() -> None:
    clips = torch.randn(5, 3, 2, 4, 4)
    dataset = [(clips[i], i % 2) for i in range(5)]
    feats, labels, stats = extract_features(ClipEncoder(), dataset, batch_size=2,
                                            device=torch.device("cpu"))
    assert torch.allclose(feats, clips.mean(dim=(2, 3, 4)))
    assert labels.tolist() == [0, 1, 0, 1, 0] and stats == {}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-step quickstart run with the Lévy 2D prior (gamma = 1)."""
    from test_train import tiny

    run = tmp_path_factory.mktemp("eval") / "run"
    train(load_recipe(ROOT / "recipes" / "quickstart.yaml",
                      tiny(run, "priors.within.weight=1",
                           "trainer.max_steps=4", "log.pictures=false")))
    return run


def test_eval_command_on_a_tiny_run(tiny_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tiny_run), "k=5", "linear_steps=20"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"eval {tiny_run} step 4 | k-NN top1 ") and "EP axis" in line
    result = json.loads((tiny_run / "eval.json").read_text())
    assert result["step"] == 4 and result["n_train"] == 16 and result["n_test"] == 8
    assert result["checkpoint"].endswith("step_00000004") and result["emb_dim"] == 32
    assert result["knn"] == {"k": 5, "temperature": 0.07, "top1": result["knn"]["top1"]}
    for value in (result["knn"]["top1"], result["linear"]["top1"]):
        assert 0.0 <= value <= 1.0
    assert set(result["levy_ep"]) == {"axis", "diagonal"}
    assert 1.0 <= result["test_features"]["emb_rankme"] <= 8.0  # at most the 8 test rows
    dimension = result["test_features"]["emb_correlation_dimension"]  # 8 rows: a coarse estimate
    assert dimension is None or 0.0 < dimension < 64.0
    for path in result["pictures"].values():
        assert Path(path).read_bytes().startswith(b"\x89PNG")
    assert not list(tiny_run.glob(".eval.json.*"))  # written atomically


def test_eval_errors(tiny_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings, recipe = parse_overrides(["k=7", "temperature=0.5", "data.test_size=4"])
    assert (settings.k, settings.temperature, recipe) == (7, 0.5, ["data.test_size=4"])
    cases = {
        "kk=3": "unknown key 'kk'; valid: base_size, baselines, batch_size, checkpoint",
        "task=segmentaton": "task: unknown task 'segmentaton'; valid: classification",
        "k=0": "k=0 is out of range",
        "temperature=warm": "temperature: Value 'warm' of type 'str' could not be converted",
        "data.sizee=3": "unknown parameter 'sizee' for data source 'synthetic_shapes'",
        "checkpoint=/nowhere": "checkpoint=/nowhere: not a complete checkpoint folder",
    }
    for item, message in cases.items():
        assert main([str(tiny_run), item]) == 2
        assert message in capsys.readouterr().err
    assert main([str(tiny_run.parent / "missing")]) == 2
    assert "missing: not found (give a run directory, an exported encoder or a recipe file " \
        "with weights=PATH)" in capsys.readouterr().err


def test_umap_without_umap_learn_stops_in_one_line_before_any_work(
        tiny_run: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from levyjepa.diagnostics.umap_picture import UMAP_MISSING

    monkeypatch.setitem(sys.modules, "umap", None)  # import umap raises ImportError
    out = tiny_run / "umap_eval.json"
    assert main([str(tiny_run), "umap=true", f"out={out}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(UMAP_MISSING) and "\n" not in err and "umap-learn" in err
    assert not out.exists()


def test_umap_picture_of_the_test_embeddings(tiny_run: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """With a stand-in for umap-learn (a 2-D PCA, recording what it was given), the evaluation
    writes the picture from the test embeddings and the run's seed."""
    import sys
    import types

    calls = {}

    class FakeUMAP:
        def __init__(self, **kwargs) -> None:
            calls["kwargs"] = kwargs

        def fit_transform(self, x):
            calls["x"] = x
            centred = x - x.mean(0)
            return centred @ torch.linalg.svd(torch.as_tensor(centred))[2][:2].T.numpy()

    monkeypatch.setitem(sys.modules, "umap", types.SimpleNamespace(UMAP=FakeUMAP))
    out = tiny_run / "umap_eval.json"
    assert main([str(tiny_run), "umap=true", "linear_steps=5", f"out={out}"]) == 0
    result = json.loads(out.read_text())
    picture = Path(result["pictures"]["umap"])
    assert picture.name == "step_00000004_umap.png"
    assert picture.read_bytes().startswith(b"\x89PNG")
    assert calls["x"].shape == (8, 32) and calls["kwargs"]["random_state"] == 0
    assert calls["kwargs"]["n_components"] == 2
