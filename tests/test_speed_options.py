"""Speed options of a recipe: each one trains 2 steps; their building blocks behave as stated."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from levyjepa import ENCODERS
from levyjepa.config.recipe import load_recipe
from levyjepa.core.errors import ConfigError
from levyjepa.data.images.encoded_images import EncodedImages
from levyjepa.data.images.fixed_size_images import FixedSizeImages, square_uint8
from levyjepa.data.images.image_folder import image_folder
from levyjepa.data.images.imagenette import imagenette
from levyjepa.data.images.lazy_images import ImageFiles
from levyjepa.data.loading.loader_options import (
    epoch_reaches_workers,
    ignore_stop_signals,
    loader_options,
)
from levyjepa.data.views.multi_view import MultiViewDataset
from levyjepa.data.views.seed_views import SeedViews
from levyjepa.encoders.output import EncoderOutput
from levyjepa.methods.attached_priors import AttachedPriors
from levyjepa.methods.lejepa import LeJEPA
from levyjepa.training.loop import train
from levyjepa.training.speed import apply_speed_options, channels_last_views

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a loaded 2-core machine two threads spin in OpenMP barriers and small
    operations run many times slower (benchmarks/README.md)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
TINY = ["data.batch_size=4", "data.workers=0", "views.global_size=16", "views.global_views=2",
        "encoder.img_size=16", "encoder.patch_size=4", "encoder.embed_dim=32", "encoder.depth=1",
        "encoder.num_heads=2", "encoder.pool_heads=2", "encoder.emb_dim=32",
        "encoder.proj_hidden=32", "method.sigreg.slices=16", "log.progress=false",
        "log.trackers=[]", "log.diagnostics_every=0", "log.pictures=false",
        "trainer.eval_every=0", "trainer.cpu_threads=1"]  # see tests/test_perf_benchmarks.py


def tiny_run(tmp_path: Path, image_tree: Path, *extra: str, steps: int = 2,
             on_step=None) -> dict:
    cfg = load_recipe(ROOT / "recipes" / "image_levy2d.yaml",
                      [*TINY, f"data.root={image_tree}", f"out_dir={tmp_path / 'run'}",
                       f"trainer.max_steps={steps}", *extra])
    return train(cfg, on_step=on_step)


@pytest.mark.parametrize("option", [
    ["views.on=device", "views.load_size=24"],
    ["data.cache=true"],
    ["trainer.channels_last=true"],
    ["optim.fused=false"],
    ["trainer.pin_memory=false", "trainer.persistent_workers=false"],
], ids=["augment_on_device", "cache", "channels_last", "unfused_adamw", "no_pin_no_persist"])
def test_each_option_trains_two_steps(option: list[str], tmp_path: Path,
                                      image_tree: Path) -> None:
    summary = tiny_run(tmp_path, image_tree, *option)
    assert summary["steps"] == 2
    events = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text()
              .splitlines()]
    last = [e for e in events if "train/loss" in e][-1]
    assert np.isfinite(last["train/loss"]) and np.isfinite(last["train/within"])


def test_persistent_workers_cross_an_epoch(tmp_path: Path, image_tree: Path) -> None:
    """One persistent worker, 8 images / batch 4: step 3 is in epoch 1."""
    steps = []
    summary = tiny_run(tmp_path, image_tree, "data.workers=1", "trainer.cpu_threads=1",
                       steps=3, on_step=steps.append)
    assert summary["steps"] == 3 and steps == [1, 2, 3]


@pytest.mark.slow
def test_compile_trains_two_steps(tmp_path: Path, image_tree: Path) -> None:
    """torch.compile (inductor, a C++ compiler on CPU): about 1.5 minutes on 2 loaded cores."""
    assert tiny_run(tmp_path, image_tree, "trainer.compile=true")["steps"] == 2


def test_device_views_resume_like_an_uninterrupted_run(tmp_path: Path,
                                                       image_tree: Path) -> None:
    """Device views are drawn from (seed, step, rank): 1 + 2 steps equal 3 straight steps."""
    common = ["views.on=device", "views.load_size=24", "log.every=1", "trainer.epochs=2"]
    straight = tmp_path / "straight"
    tiny_run(straight, image_tree, *common, steps=3)
    parted = tmp_path / "parted"
    tiny_run(parted, image_tree, *common, steps=1)
    tiny_run(parted, image_tree, *common, "resume=auto", steps=3)

    def losses(run: Path) -> list[float]:
        lines = (run / "run" / "metrics.jsonl").read_text().splitlines()
        return [json.loads(x)["train/loss"] for x in lines if "train/loss" in x]

    assert losses(parted) == pytest.approx(losses(straight), rel=1e-6)


# ---- building blocks -------------------------------------------------------------------------

class _Noise(Dataset):
    def __len__(self) -> int:
        return 6

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.full((1,), float(index))


def test_persistent_workers_see_every_epoch() -> None:
    """A MultiViewDataset's set_epoch reaches a persistent worker: epochs differ, and match what
    the main process draws."""
    images = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)

    def transform(x: torch.Tensor) -> torch.Tensor:
        return x.float() + torch.rand(())

    data = MultiViewDataset(images, torch.zeros(4, dtype=torch.int64), transform=transform,
                            views=1, seed=0)
    options = loader_options(data, workers=1, on_cuda=False, pin_memory=True,
                             persistent_workers=True)
    assert options == {"num_workers": 1, "pin_memory": False, "persistent_workers": True,
                       "worker_init_fn": ignore_stop_signals}
    loader = DataLoader(data, batch_size=4, **options)
    seen = []
    for epoch in range(2):
        data.set_epoch(epoch)
        seen.append(next(iter(loader))[0])
        data.set_epoch(epoch)
        expected = torch.stack([data[i][0] for i in range(4)])
        torch.testing.assert_close(seen[-1], expected)
    assert not torch.equal(seen[0], seen[1])


def test_loader_options_keep_workers_only_when_the_epoch_reaches_them() -> None:
    class EpochInWorker(_Noise):
        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

    assert epoch_reaches_workers(_Noise()) and not epoch_reaches_workers(EpochInWorker())
    kwargs = dict(workers=2, on_cuda=True, pin_memory=True, persistent_workers=True)
    assert loader_options(_Noise(), **kwargs)["persistent_workers"] is True
    assert loader_options(EpochInWorker(), **kwargs)["persistent_workers"] is False
    assert loader_options(_Noise(), **{**kwargs, "workers": 0})["persistent_workers"] is False
    assert loader_options(_Noise(), **kwargs)["pin_memory"] is True
    with pytest.raises(ValueError, match="workers must be a non-negative integer"):
        loader_options(_Noise(), **{**kwargs, "workers": -1})


def test_encoded_cache_decodes_the_same_images(image_tree: Path) -> None:
    paths = sorted((image_tree / "train").rglob("*.*"))
    cached, files = EncodedImages(paths), ImageFiles(paths)
    assert len(cached) == len(files) == len(paths)
    assert cached.nbytes == sum(p.stat().st_size for p in paths)
    for i in range(len(paths)):
        assert np.array_equal(np.asarray(cached[i]), np.asarray(files[i]))


def test_fixed_size_images_resize_and_centre_crop() -> None:
    wide = Image.fromarray(np.tile(np.arange(40, dtype=np.uint8)[None, :, None] * 6, (20, 1, 3)))
    out = square_uint8(wide, 10)  # 40 x 20 -> 20 x 10 -> central 10 x 10
    assert out.shape == (3, 10, 10) and out.dtype == torch.uint8
    assert out[0, 0, 0] > 40 and out[0, 0, -1] < 200  # the outer columns were cut
    square = Image.fromarray(np.random.default_rng(0).integers(0, 256, (12, 12, 3), np.uint8))
    assert np.array_equal(square_uint8(square, 12).permute(1, 2, 0).numpy(), np.asarray(square))
    data = FixedSizeImages([square, wide], torch.tensor([3, -1]), size=12)
    image, label = data[1]
    assert image.shape == (3, 12, 12) and label == -1
    with pytest.raises(ValueError, match="size must be a positive integer"):
        FixedSizeImages([square], torch.tensor([0]), size=0)


def test_views_on_and_cache_are_validated(image_tree: Path) -> None:
    with pytest.raises(ConfigError, match="views.on must be one of cpu, device"):
        SeedViews(on="gpu", seed=0)
    with pytest.raises(ConfigError, match="views.load_size must be a positive integer"):
        SeedViews(on="device", load_size=0, seed=0)
    with pytest.raises(ConfigError, match="data.cache needs data.root"):
        imagenette(root=None, cache=True)
    splits = SeedViews(global_size=16, global_views=3, on="device", load_size=20,
                       seed=0)(image_folder(root=str(image_tree)))
    image, label = splits.train[0]
    assert image.shape == (3, 20, 20) and image.dtype == torch.uint8
    assert splits.device_views.views == 3 and splits.device_views.size == 16
    assert splits.test[0][0].shape == (3, 16, 16)  # the test view is unchanged


def test_gamma_zero_computes_within_without_gradient() -> None:
    """A prior of weight 0 (the seed's gamma = 0) is computed and logged without a graph."""
    method = LeJEPA(lamb=0.02, kappa=1.0, sigreg={"name": "sigreg"})
    proj = torch.randn(2, 8, 16, requires_grad=True)
    tokens_proj = torch.randn(16, 4, 4, 16, requires_grad=True)
    out = EncoderOutput(emb=torch.randn(16, 8), proj=proj, tokens=torch.randn(16, 4, 4, 8),
                        tokens_proj=tokens_proj)

    def terms(**entry: object) -> dict[str, torch.Tensor]:
        priors = AttachedPriors({"within": {"name": "levy2d", "input": "tokens_proj", **entry}},
                                outputs=LeJEPA.outputs, method="lejepa")
        result = method(lambda views: out, [torch.zeros(8, 2, 1)], step=0)  # encoder: out
        return priors(result.terms, result.outputs, step=0)

    zero = terms(weight=0.0)
    assert not zero["within"].requires_grad and torch.isfinite(zero["within"])
    zero["loss"].backward()
    assert tokens_proj.grad is None and proj.grad is not None
    assert terms(weight=1.0)["within"].requires_grad
    assert terms(weight=0.0, graph_at_zero_weight=True)["within"].requires_grad


def test_speed_options_prepare_the_model_and_views() -> None:
    encoder = ENCODERS.build({"name": "vit", "img_size": 16, "patch_size": 4, "embed_dim": 32,
                              "depth": 1, "num_heads": 2, "pool_heads": 2, "emb_dim": 32,
                              "proj_hidden": 32}, with_tokens_proj=False)
    apply_speed_options(encoder, compile=False, channels_last=True)
    weight = encoder.backbone.patch_embed.proj.weight
    assert weight.is_contiguous(memory_format=torch.channels_last)
    views = channels_last_views(torch.randn(2, 3, 3, 16, 16))
    assert views.flatten(0, 1).is_contiguous(memory_format=torch.channels_last)
    out = encoder(views)
    assert out.proj.shape == (3, 2, 16)
    assert channels_last_views(torch.randn(1, 2, 3, 4, 8, 8)).is_contiguous()  # clips: as is
    apply_speed_options(encoder, compile=True, channels_last=False)
    assert encoder._compiled_call_impl is not None  # compiled lazily, on the first call


def test_timm_attention_is_fused() -> None:
    """The ViT's attention runs through F.scaled_dot_product_attention (timm's fused path)."""
    encoder = ENCODERS.build({"name": "vit", "img_size": 16, "patch_size": 4, "embed_dim": 32,
                              "depth": 2, "num_heads": 2, "pool_heads": 2, "emb_dim": 32,
                              "proj_hidden": 32}, with_tokens_proj=False)
    flags = [m.fused_attn for m in encoder.modules() if hasattr(m, "fused_attn")]
    assert len(flags) == 3 and all(flags)  # two blocks and the attention pool
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        encoder(torch.randn(1, 2, 3, 16, 16))
    ops = [e.key for e in prof.key_averages()]
    assert sum(k == "aten::scaled_dot_product_attention" for k in ops) == 1
    sdpa = [e for e in prof.key_averages() if e.key == "aten::scaled_dot_product_attention"]
    assert sdpa[0].count == 3
