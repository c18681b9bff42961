"""`python -m levyjepa.export`: exported encoder weights + config load back to the same model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from levyjepa.config.recipe import load_recipe
from levyjepa.core.errors import ConfigError
from levyjepa.export import export, load_encoder, main
from levyjepa.training.loop import train
from levyjepa.training.trained import encoder_state, load_trained

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from test_train import tiny

    run = tmp_path_factory.mktemp("export") / "run"
    train(load_recipe(ROOT / "recipes" / "quickstart.yaml",
                      tiny(run, "priors.within.weight=1",
                           "trainer.max_steps=2", "log.pictures=false")))
    return run


def test_export_then_load_gives_identical_outputs(tiny_run: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tiny_run)]) == 0
    folder = tiny_run / "export"
    assert f"wrote {folder / 'encoder.safetensors'}" in capsys.readouterr().out
    config = yaml.safe_load((folder / "encoder.yaml").read_text())
    assert config["encoder"]["name"] == "vit" and config["with_tokens_proj"] is True
    assert config["source"]["step"] == 2 and config["plugins"] == []
    # the README's three lines
    enc = load_encoder(folder)
    views = torch.randn(3, 2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    out = enc(views)
    reference = load_trained(tiny_run).encoder
    with torch.no_grad():
        expected = reference(views)
    for got, want in zip(out, expected):
        assert torch.equal(got, want)
    assert out.tokens_proj.shape == (6, 4, 4, 16)
    assert not enc.training
    # the .safetensors path works too, into another folder
    other = export(tiny_run, tiny_run.parent / "elsewhere")
    assert torch.equal(load_encoder(other / "encoder.safetensors")(views).emb, out.emb)


def test_wrapper_prefixes_are_removed() -> None:
    state = {"module.encoder._orig_mod.head.w": torch.zeros(1), "probe.net.0.weight": torch.ones(1),
             "encoder.proj.b": torch.ones(2)}
    assert set(encoder_state(state)) == {"head.w", "proj.b"}


def test_export_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path)]) == 2
    assert "not a run directory (no config.yaml)" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="encoder.safetensors: not found"):
        load_encoder(tmp_path)
