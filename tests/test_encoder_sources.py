"""Any encoder in: a run directory, an exported encoder, or a recipe's encoder with weights from a
file, read through one feature function (levyjepa/eval/token_features.py) that takes
non-square frames, frames larger than the training size, and the last k layers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from levyjepa.config.recipe import load_recipe
from levyjepa.core.errors import ConfigError
from levyjepa.eval.encoder_sources import open_encoder
from levyjepa.eval.token_features import TokenFeatures
from levyjepa.export import export
from levyjepa.training.loop import train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from test_train import tiny

    run = tmp_path_factory.mktemp("sources") / "run"
    train(load_recipe(ROOT / "recipes" / "quickstart.yaml",
                      tiny(run, "encoder.depth=2", "trainer.max_steps=1")))
    return run


def frames(n: int = 2, h: int = 24, w: int = 40, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_the_three_sources_give_the_same_encoder(tiny_run: Path, tmp_path: Path) -> None:
    run = open_encoder(tiny_run)
    assert run.kind == "run" and run.run.step == 1
    exported = open_encoder(export(tiny_run, tmp_path / "export"))
    assert exported.kind == "export"
    checkpoint = sorted((tiny_run / "checkpoints").iterdir())[-1] / "model.safetensors"
    from_checkpoint = open_encoder(tiny_run / "config.yaml", weights=checkpoint)
    own = tmp_path / "encoder.pt"
    torch.save(run.encoder.state_dict(), own)
    from_torch_file = open_encoder(tiny_run / "config.yaml", weights=own)
    assert from_checkpoint.kind == from_torch_file.kind == "recipe"
    x = frames()
    want = TokenFeatures(run.encoder)(x)
    for source in (exported, from_checkpoint, from_torch_file):
        assert torch.equal(TokenFeatures(source.encoder)(x), want), source.kind
    untrained = open_encoder(tiny_run, untrained=True)
    assert not torch.equal(TokenFeatures(untrained.encoder)(x), want)


def test_token_features_take_any_multiple_of_the_patch_and_the_last_layers(
        tiny_run: Path) -> None:
    encoder = open_encoder(tiny_run).encoder  # trained on 16 px views, patch 4
    last = TokenFeatures(encoder)
    assert last.patch == 4
    field = last(frames(h=24, w=40))  # non-square and larger than training
    assert field.shape == (2, 6, 10, 32)
    at_training_size = frames(h=16, w=16)
    assert torch.allclose(last(at_training_size), encoder.forward_tokens(
        (at_training_size - torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1))
        / torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)), atol=1e-6)
    two = TokenFeatures(encoder, layers=2)(frames(h=24, w=40))
    assert two.shape == (2, 6, 10, 64)
    assert torch.allclose(two[..., 32:], field, atol=1e-5)  # the last block is the last layer
    assert not torch.allclose(two[..., :32], field, atol=1e-3)
    with pytest.raises(ValueError, match="multiples of the patch size 4"):
        last(frames(h=18, w=40))


def test_bad_sources_are_one_line(tiny_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not a run directory \(config.yaml\), an exported"):
        open_encoder(tmp_path)
    with pytest.raises(ConfigError, match=r"a recipe names an encoder but not its weights; "
                                          r"add weights=PATH"):
        open_encoder(tiny_run / "config.yaml")
    with pytest.raises(ConfigError, match=r"weights=.*: only for a recipe file"):
        open_encoder(tiny_run, weights=tmp_path / "w.safetensors")
    wrong = tmp_path / "wrong.safetensors"
    save_file({"backbone.cls_token": torch.zeros(1, 1, 8)}, str(wrong))
    with pytest.raises(ConfigError, match=r"does not match the encoder of .*\(size mismatch for "
                                          r"backbone.cls_token"):
        open_encoder(tiny_run / "config.yaml", weights=wrong)
    partial = tmp_path / "partial.safetensors"
    save_file({"backbone.cls_token": torch.zeros(1, 1, 32)}, str(partial))
    with pytest.raises(ConfigError, match=r"does not match the encoder of .*missing key"):
        open_encoder(tiny_run / "config.yaml", weights=partial)
    junk = tmp_path / "junk.pt"
    junk.write_text("not a tensor file")
    with pytest.raises(ConfigError, match=r"weights=.*junk.pt: not a readable state dict"):
        open_encoder(tiny_run / "config.yaml", weights=junk)
