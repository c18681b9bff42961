"""`python -m levyjepa.export` also writes the backbone as a timm folder that timm loads alone."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import load_file
from torch import nn

import levyjepa.training.trained as trained_module
from levyjepa.config.recipe import load_recipe
from levyjepa.encoders.timm_encoder import TimmEncoder
from levyjepa.encoders.vit import ViTEncoder
from levyjepa.export import load_encoder, main
from levyjepa.training.checkpoint import list_checkpoints
from levyjepa.training.loop import train
from levyjepa.training.timm_format import timm_load_commands, write_timm_folder
from levyjepa.training.trained import encoder_state, load_trained

ROOT = Path(__file__).resolve().parents[1]
TOL = 1e-5

ENCODERS: dict[str, Callable[[], nn.Module]] = {
    "vit": lambda: ViTEncoder(arch="vit_tiny_patch16_224", img_size=32, patch_size=8,
                              embed_dim=32, depth=1, num_heads=2, pool_heads=2, emb_dim=32,
                              proj_hidden=32),
    "resnet": lambda: TimmEncoder(arch="resnet18", img_size=32,
                                  model_args={"layers": [1, 1, 1, 1], "channels": [8, 16, 16, 16],
                                              "stem_width": 8}, proj_hidden=32),
    "convnext": lambda: TimmEncoder(arch="convnext_atto", img_size=32, proj_hidden=32),
    "timm_vit": lambda: TimmEncoder(arch="vit_tiny_patch16_224", img_size=32,
                                    model_args={"patch_size": 8, "depth": 1}, proj_hidden=32),
}


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing may reach the network: the hub is offline and a socket cannot connect."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a test tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def randomised(encoder: nn.Module, seed: int = 0) -> nn.Module:
    """The encoder with noise on every parameter and BatchNorm statistic, in eval mode (a load
    that silently kept timm's initial weights would then differ)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in [*encoder.named_parameters(), *encoder.named_buffers()]:
            if not tensor.is_floating_point():
                continue
            noise = 0.1 * torch.randn(tensor.shape, generator=gen)
            tensor.add_(noise.abs() if name.endswith("running_var") else noise)
    return encoder.eval()


def field(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """A timm model's ``forward_features`` as the encoder's field ``(B, h, w, D)``."""
    feats = model.forward_features(images)
    if feats.dim() == 3:  # ViT tokens: prefix tokens first, then the patch grid
        patch = model.patch_embed.patch_size
        grid = (images.shape[-2] // patch[0], images.shape[-1] // patch[1])
        return feats[:, model.num_prefix_tokens:].unflatten(1, grid)
    return feats.permute(0, 2, 3, 1)


def timm_loads(folder: Path, encoder: nn.Module) -> dict[str, nn.Module]:
    """The folder loaded by timm alone, both ways, in eval mode."""
    return {
        "local-dir": timm.create_model(f"local-dir:{folder}", pretrained=True),
        "arch": timm.create_model(encoder.arch, pretrained=True,
                                  pretrained_cfg_overlay={"file": str(folder /
                                                                      "model.safetensors")},
                                  **encoder.model_args),
    }


def max_diffs(models: dict[str, nn.Module], reference: nn.Module, images: torch.Tensor
              ) -> dict[str, float]:
    with torch.no_grad():
        want = reference.forward_tokens(images)
        return {how: (field(m.eval(), images) - want).abs().max().item()
                for how, m in models.items()}


@pytest.mark.parametrize("kind", list(ENCODERS))
def test_timm_loads_the_folder_both_ways_with_the_encoders_features(kind: str,
                                                                    tmp_path: Path) -> None:
    encoder = randomised(ENCODERS[kind]())
    folder = write_timm_folder(encoder, tmp_path / "timm", img_size=32)
    assert folder == tmp_path / "timm"
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["timm"]  # no temporary folder left
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == encoder.arch and config["num_classes"] == 0
    assert "drop_path_rate" not in config["model_args"]
    assert config["pretrained_cfg"]["tag"] == "levyjepa"
    assert config["pretrained_cfg"].get("license") is None  # not timm's ImageNet weights'
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    models = timm_loads(folder, encoder)
    diffs = max_diffs(models, encoder, images)
    print(f"{kind}: max abs diff {diffs}")
    assert all(d < TOL for d in diffs.values()), diffs
    untrained = timm.create_model(encoder.arch, **encoder.model_args).eval()
    assert max_diffs({"init": untrained}, encoder, images)["init"] > 1e-2  # the check can fail
    data = timm.data.resolve_data_config({}, model=models["local-dir"])
    assert data["input_size"] == (3, 32, 32) and data["crop_pct"] == 1.0
    assert tuple(data["mean"]) == (0.485, 0.456, 0.406)
    assert tuple(data["std"]) == (0.229, 0.224, 0.225)
    assert data["interpolation"] == "bilinear"


def test_a_new_folder_replaces_an_older_one(tmp_path: Path) -> None:
    encoder = randomised(ENCODERS["resnet"](), seed=0)
    write_timm_folder(encoder, tmp_path / "timm", img_size=32)
    randomised(encoder, seed=1)
    write_timm_folder(encoder, tmp_path / "timm", img_size=32)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["timm"]
    images = torch.randn(2, 3, 32, 32)
    diffs = max_diffs(timm_loads(tmp_path / "timm", encoder), encoder, images)
    assert all(d < TOL for d in diffs.values()), diffs


def test_a_failure_while_writing_leaves_nothing_half_written(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    def half_then_fail(model: nn.Module, save_directory: str, *, data_config: object = None,
                       **kwargs: object) -> None:  # timm's signature: data_config too
        (Path(save_directory) / "model.safetensors").write_bytes(b"half")
        raise OSError("disk full")

    encoder = randomised(ENCODERS["resnet"]())
    real = timm.models.save_for_hf
    monkeypatch.setattr(timm.models, "save_for_hf", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        write_timm_folder(encoder, tmp_path / "timm", img_size=32)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(timm.models, "save_for_hf", real)
    write_timm_folder(encoder, tmp_path / "timm", img_size=32)
    before = {p.name: p.read_bytes() for p in (tmp_path / "timm").iterdir()}
    monkeypatch.setattr(timm.models, "save_for_hf", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        write_timm_folder(encoder, tmp_path / "timm", img_size=32)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["timm"]  # the older one, intact
    assert {p.name: p.read_bytes() for p in (tmp_path / "timm").iterdir()} == before


def test_no_folder_where_no_timm_model_equals_the_backbone(tmp_path: Path) -> None:
    cifar = TimmEncoder(arch="resnet18", img_size=32, cifar_stem=True, proj_hidden=32,
                        model_args={"layers": [1, 1, 1, 1], "channels": [8, 16, 16, 16],
                                    "stem_width": 8})
    (tmp_path / "timm").mkdir()  # an older folder would describe other weights: removed
    (tmp_path / "timm" / "config.json").write_text("{}")
    reason = write_timm_folder(cifar, tmp_path / "timm", img_size=32)
    assert reason == ("the CIFAR stem has no timm equivalent; load the encoder with "
                      "levyjepa.export.load_encoder")
    assert list(tmp_path.iterdir()) == []
    cut = TimmEncoder(arch="convnext_atto", img_size=32, stage=1, proj_hidden=32)
    assert write_timm_folder(cut, tmp_path / "timm", img_size=32).startswith(
        "the stage cut (stage=1) has no timm equivalent")
    plugin = nn.Linear(2, 2)  # no arch, no model_args
    assert write_timm_folder(plugin, tmp_path / "timm", img_size=32).startswith(
        "the encoder (Linear) names no timm arch and model_args")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def tiny_ijepa_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two steps of I-JEPA, which evaluates its EMA teacher."""
    from test_ijepa import IJEPA_RUN
    from test_train import tiny

    run = tmp_path_factory.mktemp("export_timm") / "run"
    train(load_recipe(ROOT / "recipes" / "quickstart.yaml",
                      tiny(run, *IJEPA_RUN, "trainer.max_steps=2")))
    return run


def test_the_command_writes_the_evaluated_encoders_backbone(
        tiny_ijepa_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tiny_ijepa_run)]) == 0
    out = capsys.readouterr().out
    export_dir = tiny_ijepa_run / "export"
    folder = export_dir / "timm"
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    assert not [p for p in export_dir.iterdir() if p.name.startswith(".")]
    encoder = load_encoder(export_dir)
    assert load_trained(tiny_ijepa_run).weights_key == "method.teacher.encoder"
    # the two commands it prints, as a user would paste them
    commands = [line.strip() for line in out.splitlines() if "timm.create_model(" in line]
    assert commands == list(timm_load_commands(folder.resolve(), encoder.arch,
                                               encoder.model_args))
    assert f'"local-dir:{folder.resolve()}"' in commands[0]
    images = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    loaded = {how: eval(command, {"timm": timm})  # noqa: S307 (the printed lines, run as given)
              for how, command in zip(("local-dir", "arch"), commands)}
    diffs = max_diffs(loaded, encoder, images)
    print(f"ijepa run: max abs diff {diffs}")
    assert all(d < TOL for d in diffs.values()), diffs
    config = json.loads((folder / "config.json").read_text())
    assert config["pretrained_cfg"]["input_size"] == [3, 16, 16]
    assert "method.teacher.encoder" in config["pretrained_cfg"]["description"]
    # the teacher, not the student: the student's weights give another field
    student = load_trained(tiny_ijepa_run).encoder
    ckpt = list_checkpoints(tiny_ijepa_run)[-1]
    student.load_state_dict(encoder_state(load_file(str(ckpt / "model.safetensors"))))
    assert max_diffs({"student": loaded["arch"]}, student, images)["student"] > TOL


def test_the_command_says_why_there_is_no_timm_folder(
        tiny_ijepa_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    original = trained_module.load_trained

    def with_cifar_stem(*args: object, **kwargs: object) -> trained_module.TrainedRun:
        cifar = TimmEncoder(arch="resnet18", img_size=16, cifar_stem=True, proj_hidden=32)
        return dataclasses.replace(original(*args, **kwargs), encoder=cifar.eval())

    monkeypatch.setattr(trained_module, "load_trained", with_cifar_stem)
    (tmp_path / "timm").mkdir()
    assert main([str(tiny_ijepa_run), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert ("export: no timm folder: the CIFAR stem has no timm equivalent; load the encoder "
            "with levyjepa.export.load_encoder\n") in out
    assert "create_model" not in out
    assert sorted(os.listdir(tmp_path)) == ["encoder.safetensors", "encoder.yaml"]
