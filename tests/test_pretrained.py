"""``encoder.pretrained``: an encoder's first weights from a local file, an export or a run
(levyjepa/training/pretrained.py), checked when the recipe is loaded, never read over a resumed
run's checkpoint."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import load_file, save_file
from timm.layers import resample_abs_pos_embed

from levyjepa.config.recipe import load_recipe
from levyjepa.core.errors import ConfigError
from levyjepa.core.registry import ENCODERS
from levyjepa.export import export, load_encoder
from levyjepa.training.checkpoint import list_checkpoints
from levyjepa.training.loop import train
from levyjepa.training.pretrained import load_pretrained
from levyjepa.training.setup import build_run
from levyjepa.training.trained import encoder_state, load_trained

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "recipes" / "quickstart.yaml"
ARCH = "vit_tiny_patch16_224"
VIT = dict(patch_size=4, embed_dim=32, depth=1, num_heads=2)  # timm and ViTEncoder kwargs
HEADS = dict(emb_dim=32, pool_heads=2, proj_hidden=16)
RESNET = dict(layers=[1, 1, 1, 1], channels=[8, 16, 32, 64])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-step quickstart run and its export (``RUN/export``)."""
    from test_train import tiny

    run = tmp_path_factory.mktemp("pretrained") / "run"
    train(load_recipe(QUICKSTART, tiny(run, "trainer.max_steps=2")))
    export(run)
    return run


def views(side: int = 16) -> torch.Tensor:
    return torch.randn(2, 2, 3, side, side, generator=torch.Generator().manual_seed(0))


def features(encoder: torch.nn.Module, side: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    encoder.eval()
    with torch.no_grad():
        out = encoder(views(side))
    return out.tokens, out.emb


def vit_encoder(img_size: int = 16, **kw: int) -> torch.nn.Module:
    return ENCODERS.build({"name": "vit", "arch": ARCH, "img_size": img_size, **VIT, **HEADS,
                           **kw}, with_tokens_proj=True)


def timm_state(arch: str = ARCH, **kw: object) -> dict[str, torch.Tensor]:
    """A timm model's state dict, classifier included (10 classes)."""
    model = timm.create_model(arch, pretrained=False, num_classes=10, **kw)
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def started_from(run: Path, source: Path, *extra: str):  # noqa: ANN201 (a Run)
    from test_train import tiny

    return build_run(load_recipe(QUICKSTART, tiny(run, "trainer.max_steps=2",
                                                  f"encoder.pretrained={source}", *extra)))


def test_an_export_and_a_run_directory_start_a_new_run_at_step_0(
        tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for source, reference in ((tiny_run / "export", load_encoder(tiny_run / "export")),
                              (tiny_run, load_trained(tiny_run).encoder)):
        run = started_from(tmp_path / source.name, source)
        assert run.start_step == 0 and not run.resumed and not run.optimizer.state
        for got, want in zip(features(run.pretrainer.encoder), features(reference)):
            assert torch.equal(got, want)
        printed = capsys.readouterr().out
        assert f"encoder.pretrained: loaded 53 tensors from {source} into the encoder (" in printed
        assert "missing 0; unexpected 0" in printed
    assert "run checkpoint step_00000002, encoder weights" in printed
    fresh = started_from(tmp_path / "fresh", tiny_run, "encoder.pretrained=null")
    assert not torch.equal(features(fresh.pretrainer.encoder)[1], want)
    assert "encoder.pretrained" not in capsys.readouterr().out
    # an export's weight file alone names its folder
    load_pretrained(fresh.pretrainer.encoder, tiny_run / "export" / "encoder.safetensors")
    exported = load_encoder(tiny_run / "export")
    assert torch.equal(features(fresh.pretrainer.encoder)[1], features(exported)[1])


def test_an_ema_teacher_copies_the_pretrained_weights(tmp_path: Path) -> None:
    from test_train import tiny

    recipe = ROOT / "recipes" / "methods" / "ijepa.yaml"
    file = tmp_path / "vit.safetensors"
    save_file(timm_state(img_size=16, **VIT), file)
    overrides = [o for o in tiny(tmp_path / "run", "method.min_keep=2",
                                 f"encoder.pretrained={file}") if "sigreg" not in o]
    method = build_run(load_recipe(recipe, overrides)).pretrainer.method
    want = load_file(file)
    for name, value in method.teacher.encoder.backbone.state_dict().items():
        assert torch.equal(value, want[name]), name


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_a_timm_state_dict_fills_the_backbone_and_drops_the_classifier(
        suffix: str, tmp_path: Path) -> None:
    cases = [(vit_encoder(), timm_state(img_size=16, **VIT), "head"),
             (ENCODERS.build({"name": "timm", "arch": "resnet18", "img_size": 32,
                              "model_args": RESNET, "proj_hidden": 16}, with_tokens_proj=True),
              timm_state("resnet18", **RESNET), "fc")]
    for encoder, state, classifier in cases:
        file = tmp_path / f"{classifier}{suffix}"
        if suffix == ".safetensors":
            save_file(state, file)
        else:  # a training script's checkpoint: wrapped, with DDP's prefix and backbone.
            torch.save({"model": {f"module.backbone.{k}": v for k, v in state.items()},
                        "epoch": 3}, file)
        report = load_pretrained(encoder, file)
        own = encoder.backbone.state_dict()
        assert all(torch.equal(own[k], v) for k, v in state.items() if k in own)
        assert len(own) == len(state) - 2
        assert f"loaded {len(own)} tensors from {file} into encoder.backbone" in report
        assert "dropped classifier " in report and f"{classifier}.weight" in report
        assert report.endswith("missing 0; unexpected 0)") and "\n" not in report
    if suffix == ".safetensors":  # a timm model folder in the hub layout (an export's timm/)
        hub = tmp_path / "hub"
        hub.mkdir()
        save_file(cases[0][1], hub / "model.safetensors")
        encoder = vit_encoder()
        assert "into encoder.backbone" in load_pretrained(encoder, hub)
        assert torch.equal(encoder.backbone.pos_embed, cases[0][1]["pos_embed"])


def test_position_embeddings_are_resampled_to_the_encoders_grid(tmp_path: Path) -> None:
    file = tmp_path / "vit32.safetensors"  # an 8x8 grid, into a 64 px encoder (16x16)
    save_file(timm_state(img_size=32, **VIT), file)
    encoder = vit_encoder(img_size=64)
    report = load_pretrained(encoder, file)
    assert "resampled backbone.pos_embed 8x8->16x16" in report
    want = resample_abs_pos_embed(load_file(file)["pos_embed"], [16, 16], old_size=[8, 8],
                                  num_prefix_tokens=1)
    assert torch.equal(encoder.backbone.pos_embed.detach(), want)
    tokens, emb = features(encoder, side=64)
    assert tokens.shape[1:3] == (16, 16) and torch.isfinite(emb).all()
    # a levyjepa encoder's own state: the attention pool's embedding too (its class row kept)
    small = vit_encoder(img_size=32)
    whole = tmp_path / "encoder.pt"
    torch.save(small.state_dict(), whole)
    report = load_pretrained(encoder, whole)
    assert "into the encoder" in report and "head.pool.pos_embed 8x8->16x16" in report
    pool, old = encoder.head.pool.pos_embed.detach(), small.head.pool.pos_embed.detach()
    assert pool.shape == (1 + 16 * 16, 32) and torch.equal(pool[0], old[0])
    assert torch.allclose(pool[1:].mean(0), old[1:].mean(0), atol=0.05)


def test_a_file_that_does_not_fit_is_refused_in_one_line_unless_not_strict(
        tmp_path: Path) -> None:
    resnet, wide, deep = (tmp_path / f"{n}.safetensors" for n in ("resnet", "wide", "deep"))
    save_file(timm_state("resnet18", **RESNET), resnet)
    save_file(timm_state(img_size=16, **{**VIT, "embed_dim": 64}), wide)
    save_file(timm_state(img_size=16, **{**VIT, "depth": 2}), deep)
    encoder = vit_encoder()
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    for file, first in ((resnet, "missing backbone.cls_token; unexpected backbone.bn1."),
                        (wide, "backbone.blocks.0.attn.proj.bias of shape (64,), the encoder's "
                               "(32,)"),
                        (deep, "unexpected backbone.blocks.1.")):
        with pytest.raises(ConfigError) as err:
            load_pretrained(encoder, file)
        message = str(err.value)
        assert message.startswith(f"encoder.pretrained={file}: ") and "\n" not in message
        assert first in message
    assert "encoder.pretrained_strict: false loads the rest" in message
    assert all(torch.equal(v, before[k]) for k, v in encoder.state_dict().items())
    report = load_pretrained(encoder, deep, strict=False)
    assert "loaded 18 tensors" in report and "unexpected 12 (backbone.blocks.1." in report
    assert torch.equal(encoder.backbone.blocks[0].attn.qkv.weight,
                       load_file(deep)["blocks.0.attn.qkv.weight"])
    with pytest.raises(ConfigError, match="none of its 80 tensors fits encoder.backbone"):
        load_pretrained(encoder, resnet, strict=False)


def test_a_truncated_file_is_named_in_one_line(tiny_run: Path, tmp_path: Path) -> None:
    state = timm_state(img_size=16, **VIT)
    save_file(state, tmp_path / "full.safetensors")
    torch.save(state, tmp_path / "full.pth")
    folder = shutil.copytree(tiny_run / "export", tmp_path / "export")
    broken = [tmp_path / "half.safetensors", tmp_path / "half.pth",
              folder / "encoder.safetensors"]
    for full, half in zip([tmp_path / "full.safetensors", tmp_path / "full.pth", *broken[2:]],
                          broken):
        data = full.read_bytes()
        half.write_bytes(data[:len(data) // 2])
    for half, source in zip(broken, broken[:2] + [folder]):
        with pytest.raises(ConfigError) as err:
            load_pretrained(vit_encoder(), source)
        assert str(half) in str(err.value) and "\n" not in str(err.value)


def test_the_recipe_refuses_a_download_and_a_missing_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cases = {"encoder.pretrained=true": "encoder.pretrained: true is not a path: levyjepa never "
                                        "downloads weights; pass a local file",
             "encoder.pretrained=weights/vit.pth": "encoder.pretrained: 'weights/vit.pth' not "
                                                   "found (a relative path is relative to the "
                                                   f"current directory, {tmp_path})",
             "encoder.pretrained_strict=maybe": "encoder.pretrained_strict must be true or false",
             f"encoder.pretrained={tmp_path}": "is a folder but neither an exported encoder"}
    for override, message in cases.items():
        with pytest.raises(ConfigError) as err:
            load_recipe(QUICKSTART, [override])
        assert message in str(err.value) and "\n" not in str(err.value), override
    (tmp_path / "weights").mkdir()
    torch.save({}, tmp_path / "weights" / "vit.pth")
    cfg = load_recipe(QUICKSTART, ["encoder.pretrained=weights/vit.pth",
                                   "encoder.pretrained_strict=false"])
    assert cfg.encoder.pretrained == str(tmp_path / "weights" / "vit.pth")  # made absolute
    assert cfg.encoder.pretrained_strict is False


def test_a_resumed_run_keeps_its_checkpoint_and_needs_no_file(
        tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from test_train import tiny

    source = shutil.copytree(tiny_run / "export", tmp_path / "export")
    run_dir = tmp_path / "run"
    common = [f"encoder.pretrained={source}", "trainer.checkpoint_every=1"]
    train(load_recipe(QUICKSTART, tiny(run_dir, *common, "trainer.max_steps=2")))
    # the untrained baseline of a run started from pretrained weights is those weights
    baseline = load_trained(run_dir, untrained=True)
    assert baseline.pretrained is not None and "from " + str(source) in baseline.pretrained
    for got, want in zip(features(baseline.encoder), features(load_encoder(source))):
        assert torch.equal(got, want)
    shutil.rmtree(source)  # the file is gone: a resume must not need it
    capsys.readouterr()
    run = build_run(load_recipe(QUICKSTART, tiny(run_dir, *common, "trainer.max_steps=3",
                                                 "resume=auto")))
    assert run.resumed and run.start_step == 2
    assert "encoder.pretrained: not read, resuming" in capsys.readouterr().out
    saved = encoder_state(load_file(str(list_checkpoints(run_dir)[-1] / "model.safetensors")))
    own = run.pretrainer.encoder.state_dict()
    assert saved.keys() == own.keys()
    assert all(torch.equal(own[k], v) for k, v in saved.items())
    started = load_encoder(tiny_run / "export").state_dict()
    assert not all(torch.equal(own[k], started[k]) for k in own)  # trained 2 steps since
    assert load_trained(run_dir).step == 2  # the trained encoder never needs the file
    with pytest.raises(ConfigError, match="untrained baseline of a run started from "
                                          "encoder.pretrained is those weights: .* not found"):
        load_trained(run_dir, untrained=True)
