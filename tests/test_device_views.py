"""Device-made views (``data.augment_on: device``) against the seed's torchvision pipeline, on CPU.

Statistical equivalence: the laws of the crop (area fraction and aspect ratio), of the jitter
factors and order and of the blur's sigma are compared with the parameters torchvision's own
transforms draw (two-sample Kolmogorov-Smirnov tests), and the application rate of every
operation, read off the output images of both pipelines, is compared with its probability
(binomial tests) and between the pipelines (Fisher's exact test). Every test is seeded, so the
outcome is fixed; the thresholds (p > 1e-3) are what a correct implementation passes with room.
Pixel equivalence: each batched operation, and the whole chain for given parameters, matches
torchvision's functionals.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from PIL import Image
from scipy import stats
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from levyjepa.data.views import batch_ops
from levyjepa.data.views.device_views import DeviceViews
from levyjepa.data.views.photometric import SEED_PHOTOMETRIC, Photometric
from levyjepa.data.views.transforms import IMAGENET_MEAN, IMAGENET_STD, ssl_augmentation
from levyjepa.data.views.view_params import (
    crop_area_fraction,
    crop_aspect_ratio,
    sample_view_params,
)

P_MIN = 1e-3  # a correct implementation passes these seeded tests with p-values far above this

MEAN = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: on a loaded 2-core machine two threads spin in OpenMP barriers and small
    operations run many times slower (benchmarks/README.md)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
STD = torch.tensor(IMAGENET_STD).view(3, 1, 1)


def draw(n: int, *, height: int, width: int, seed: int = 0):
    """``n`` views' parameters with the seed's laws."""
    gen = torch.Generator().manual_seed(seed)
    return sample_view_params(images=n, views=1, height=height, width=width,
                              crop_scale=(0.08, 1.0), photometric=SEED_PHOTOMETRIC,
                              generator=gen)


# ---- laws of the parameters ------------------------------------------------------------------

@pytest.mark.parametrize("height,width", [(160, 160), (20, 100)], ids=["square", "wide"])
def test_crop_scale_and_ratio_follow_torchvision(height: int, width: int) -> None:
    """Area fraction and aspect ratio of the crops: KS tests against RandomResizedCrop's draws.

    The wide 20 x 100 image makes most trials fail, so the central-crop fallback is tested too.
    """
    n = 3000
    params = draw(n, height=height, width=width)
    crop = ssl_augmentation(128).transforms[0]
    assert isinstance(crop, v2.RandomResizedCrop)
    image = torch.zeros(3, height, width, dtype=torch.uint8)
    torch.manual_seed(1)
    ref = [crop.make_params([image]) for _ in range(n)]
    ref_scale = torch.tensor([p["height"] * p["width"] / (height * width) for p in ref],
                             dtype=torch.float64)
    ref_ratio = torch.tensor([p["width"] / p["height"] for p in ref], dtype=torch.float64)
    scale = crop_area_fraction(params, height=height, width=width)
    ratio = crop_aspect_ratio(params)
    assert stats.ks_2samp(scale.numpy(), ref_scale.numpy()).pvalue > P_MIN
    assert stats.ks_2samp(ratio.numpy(), ref_ratio.numpy()).pvalue > P_MIN
    # boxes are whole pixels inside the image
    boxes = params.boxes
    assert torch.equal(boxes, boxes.round())
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= width).all()
    assert (boxes[:, 3] <= height).all() and (boxes[:, 2:] > boxes[:, :2]).all()


def test_jitter_factors_order_and_blur_sigma_follow_torchvision() -> None:
    n = 3000
    params = draw(n, height=32, width=32)
    pipeline = ssl_augmentation(128).transforms
    jitter, blur = pipeline[1].transforms[0], pipeline[3].transforms[0]
    assert isinstance(jitter, v2.ColorJitter) and isinstance(blur, v2.GaussianBlur)
    image = torch.zeros(3, 32, 32, dtype=torch.uint8)
    torch.manual_seed(2)
    ref = [jitter.make_params([image]) for _ in range(n)]
    for k, key in enumerate(("brightness_factor", "contrast_factor", "saturation_factor",
                             "hue_factor")):
        theirs = [p[key] for p in ref]
        assert stats.ks_2samp(params.factors[:, k].numpy(), theirs).pvalue > P_MIN, key
    sigmas = [blur.make_params([image])["sigma"][0] for _ in range(n)]
    assert stats.ks_2samp(params.sigma.numpy(), sigmas).pvalue > P_MIN
    # the jitter order: every one of the 24 permutations equally likely (torchvision: randperm)
    perms = {p: i for i, p in enumerate(itertools.permutations(range(4)))}
    counts = torch.zeros(24)
    for row in params.order.tolist():
        counts[perms[tuple(row)]] += 1
    assert stats.chisquare(counts.numpy()).pvalue > P_MIN


def test_parameters_are_per_view_and_reproducible() -> None:
    laws = dict(crop_scale=(0.08, 1.0), photometric=SEED_PHOTOMETRIC)
    a = sample_view_params(images=8, views=4, height=64, width=64, **laws,
                           generator=torch.Generator().manual_seed(5))
    b = sample_view_params(images=8, views=4, height=64, width=64, **laws,
                           generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.boxes, b.boxes) and torch.equal(a.order, b.order)
    assert a.source.tolist() == [i for i in range(8) for _ in range(4)]
    assert len(a) == 32
    assert a.boxes.unique(dim=0).shape[0] > 24  # views of one image get their own crops
    assert a.factors[:, 0].unique().numel() == 32


# ---- application rates, read off the output images ------------------------------------------

def _image(kind: str, side: int = 16) -> torch.Tensor:
    x = torch.arange(side, dtype=torch.float32).view(1, 1, side).expand(1, side, side)
    if kind == "gradient":  # colourful, increasing to the right
        rgb = torch.cat([40 + 12 * x, 200 - 6 * x, 90 + 4 * x.transpose(1, 2)])
    elif kind == "constant":
        rgb = torch.full((3, side, side), 200.0)
    else:  # checkerboard
        board = ((torch.arange(side).view(-1, 1) + torch.arange(side).view(1, -1)) % 2) * 255.0
        rgb = board.expand(3, side, side)
    return rgb.round().clamp(0, 255).to(torch.uint8)


OPERATIONS = {
    # op: (probability argument, image, detector on an un-normalised view (3, H, W) in [0, 1])
    "flip": ("flip_p", "gradient", lambda v: bool(v[0, :, 0].mean() > v[0, :, -1].mean())),
    "grayscale": ("grayscale_p", "gradient",
                  lambda v: bool((v[0] - v[1]).abs().max() < 0.01
                                 and (v[1] - v[2]).abs().max() < 0.01)),
    "solarize": ("solarize_p", "constant", lambda v: bool(v.mean() < 0.5)),
    "blur": ("blur_p", "checkerboard", lambda v: bool(v.std() < 0.4)),
    "jitter": ("color_jitter_p", "gradient", None),
}
PROBABILITY = {"flip_p": 0.5, "grayscale_p": 0.2, "solarize_p": 0.1, "blur_p": 0.5,
               "color_jitter_p": 0.8}


def _only(arg: str) -> dict:
    """Arguments that switch every operation off but ``arg`` (crops cover the whole image)."""
    probabilities = {p: 0.0 for p in PROBABILITY}
    probabilities[arg] = PROBABILITY[arg]
    return dict(crop_scale=(1.0, 1.0),
                photometric=Photometric(blur_sigma=(1.0, 2.0), **probabilities))


@pytest.mark.parametrize("op", list(OPERATIONS))
def test_application_rate_matches_probability_and_torchvision(op: str) -> None:
    arg, kind, detect = OPERATIONS[op]
    image = _image(kind)
    plain = image.float() / 255
    if detect is None:  # the jitter: the view differs from the image
        def detect(v: torch.Tensor) -> bool:
            return bool((v - plain).abs().max() > 0.02)
    kwargs = _only(arg)
    device = DeviceViews(size=16, views=20, seed=3, **kwargs)
    out = device(image.expand(50, 3, 16, 16).contiguous(), step=0)  # 1000 views
    ours = [detect(v * STD + MEAN) for v in out.flatten(0, 1)]
    # the loader's pipeline works on decoded PIL images; 400 views (200 for the blur, about
    # 5 ms a view) keep it to about a second
    reference = ssl_augmentation(16, **kwargs)
    pil = Image.fromarray(image.permute(1, 2, 0).numpy())
    torch.manual_seed(4)
    theirs = [detect(reference(pil) * STD + MEAN) for _ in range(200 if op == "blur" else 400)]
    p = PROBABILITY[arg]
    for hits in (ours, theirs):
        assert stats.binomtest(sum(hits), len(hits), p).pvalue > P_MIN, (op, sum(hits) / len(hits))
    table = [[sum(ours), len(ours) - sum(ours)], [sum(theirs), len(theirs) - sum(theirs)]]
    assert stats.fisher_exact(table).pvalue > P_MIN


# ---- pixels ----------------------------------------------------------------------------------

def test_batched_operations_match_torchvision_functionals() -> None:
    torch.manual_seed(0)
    x = torch.rand(6, 3, 20, 24)
    f = torch.rand(6) * 1.6 + 0.2
    h = torch.rand(6) * 0.4 - 0.2
    sigma = torch.rand(6) * 1.9 + 0.1

    def each(fn, values):
        return torch.stack([fn(x[i], values[i].item()) for i in range(6)])

    close = dict(atol=2e-4, rtol=0)
    torch.testing.assert_close(batch_ops.adjust_brightness(x, f), each(TF.adjust_brightness, f))
    torch.testing.assert_close(batch_ops.adjust_contrast(x, f), each(TF.adjust_contrast, f),
                               **close)
    torch.testing.assert_close(batch_ops.adjust_saturation(x, f),
                               each(TF.adjust_saturation, f), **close)
    torch.testing.assert_close(batch_ops.adjust_hue(x, h), each(TF.adjust_hue, h), **close)
    torch.testing.assert_close(batch_ops.to_grayscale(x),
                               torch.stack([TF.rgb_to_grayscale(v, 3) for v in x]), **close)
    torch.testing.assert_close(
        batch_ops.gaussian_blur(x, sigma, 7),
        torch.stack([TF.gaussian_blur(x[i], [7, 7], [sigma[i].item()] * 2) for i in range(6)]),
        **close)
    torch.testing.assert_close(batch_ops.solarize(x, 128 / 255),
                               torch.stack([TF.solarize(v, 128 / 255) for v in x]))


def test_crop_resize_matches_torchvision_inside_the_border() -> None:
    """Enlarged crops equal torchvision's resized crop except the outermost output pixels."""
    torch.manual_seed(1)
    x = torch.rand(3, 3, 20, 24)
    boxes = torch.tensor([[2.0, 3.0, 12.0, 14.0], [0.0, 0.0, 24.0, 20.0], [5.0, 1.0, 22.0, 19.0]],
                         dtype=torch.float64)
    out = batch_ops.crop_resize(x, boxes, torch.arange(3), 32)
    for k in range(3):
        left, top, right, bottom = (int(v) for v in boxes[k])
        ref = TF.resized_crop(x[k], top, left, bottom - top, right - left, [32, 32],
                              antialias=True)
        torch.testing.assert_close(out[k, :, 2:-2, 2:-2], ref[:, 2:-2, 2:-2], atol=1e-5,
                                   rtol=0)
    torch.testing.assert_close(out[1], TF.resize(x[1], [32, 32], antialias=True), atol=1e-5,
                               rtol=0)  # the whole image: equal everywhere


def test_whole_chain_matches_torchvision_for_given_parameters() -> None:
    """For the same parameters, the device chain equals torchvision's functionals in the seed's
    order (crop, jitter in the drawn order, grayscale, blur, solarize, flip last, normalise)."""
    torch.manual_seed(2)
    images = torch.randint(0, 256, (6, 3, 20, 20), dtype=torch.uint8)
    spec = dict(color_jitter_p=0.7, grayscale_p=0.4, blur_p=0.5, solarize_p=0.5, flip_p=0.5)
    device = DeviceViews(size=20, views=5, seed=0, photometric=Photometric(**spec))
    params = device.sample(images, step=7)
    params.boxes[:] = torch.tensor([0.0, 0.0, 20.0, 20.0], dtype=torch.float64)  # whole image
    out = device.apply(images, params)
    assert out.shape == (6, 5, 3, 20, 20) and out.dtype == torch.float32
    fns = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    for m in range(30):
        x = images[params.source[m]].float() / 255
        if params.jitter[m]:
            for op in params.order[m].tolist():
                x = fns[op](x, params.factors[m, op].item())
        if params.gray[m]:
            x = TF.rgb_to_grayscale(x, 3)
        if params.blur[m]:
            x = TF.gaussian_blur(x, [7, 7], [params.sigma[m].item()] * 2)
        if params.solarize[m]:
            x = TF.solarize(x, 128 / 255)
        if params.flip[m]:
            x = TF.horizontal_flip(x)
        ref = TF.normalize(x, list(IMAGENET_MEAN), list(IMAGENET_STD))
        torch.testing.assert_close(out.flatten(0, 1)[m], ref, atol=2e-3, rtol=0)
    for name in ("jitter", "gray", "blur", "solarize", "flip"):  # every branch was exercised
        assert getattr(params, name).any() and not getattr(params, name).all(), name


def test_output_shape_and_normalisation_without_augmentation() -> None:
    off = dict(crop_scale=(1.0, 1.0), photometric=Photometric(**{p: 0.0 for p in PROBABILITY}))
    images = torch.randint(0, 256, (3, 3, 24, 24), dtype=torch.uint8)
    out = DeviceViews(size=24, views=2, **off)(images, step=0)
    assert out.shape == (3, 2, 3, 24, 24) and out.dtype == torch.float32
    expected = ((images.float() / 255 - MEAN) / STD).unsqueeze(1).expand_as(out)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(out[0, 0], ssl_augmentation(24, **off)(images[0]), atol=1e-5,
                               rtol=0)


def test_views_depend_on_seed_step_and_rank_only() -> None:
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    device = DeviceViews(size=16, views=2, seed=1)
    a = device(images, step=3)
    assert torch.equal(a, device(images, step=3))
    assert not torch.equal(a, device(images, step=4))
    assert not torch.equal(a, device(images, step=3, rank=1))
    assert not torch.equal(a, DeviceViews(size=16, views=2, seed=2)(images, step=3))
    assert math.isfinite(a.abs().max().item())


def test_invalid_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="views must be a positive integer"):
        DeviceViews(size=16, views=0)
    with pytest.raises(ValueError, match="crop_scale must satisfy"):
        DeviceViews(size=16, views=2, crop_scale=(0.5, 0.1))
    with pytest.raises(ValueError, match="blur_kernel must be odd"):
        DeviceViews(size=16, views=2, photometric=Photometric(blur_kernel=4))
    with pytest.raises(ValueError, match="uint8 images"):
        DeviceViews(size=16, views=2)(torch.rand(2, 3, 16, 16), step=0)
    with pytest.raises(ValueError, match="height must be >= 1"):
        draw(2, height=0, width=4)


def test_in_memory_images_feed_device_views() -> None:
    """The loader's decoded images for ``views.on: device`` from in-memory tensors (the CIFAR
    and generated sources): uint8 RGB passes through, float grey images become 8-bit RGB."""
    from levyjepa.data.images.fixed_size_images import square_uint8

    rgb = torch.randint(0, 256, (3, 8, 8), dtype=torch.uint8)
    assert torch.equal(square_uint8(rgb, 8), rgb)
    grey = torch.rand(1, 8, 8)
    out = square_uint8(grey, 8)
    expected = (grey[0] * 255).to(torch.uint8)  # torchvision's float to 8-bit: x * 255, cut
    assert out.dtype == torch.uint8 and out.shape == (3, 8, 8)
    for channel in out:
        assert torch.equal(channel, expected)
    assert square_uint8(rgb, 4).shape == (3, 4, 4)  # other sizes: resized as PIL images are


def test_a_generated_source_trains_with_device_views(tmp_path) -> None:
    from pathlib import Path

    from test_train import tiny

    from levyjepa.config.recipe import load_recipe
    from levyjepa.training.loop import train

    recipe = Path(__file__).resolve().parents[1] / "recipes" / "quickstart.yaml"
    summary = train(load_recipe(recipe, tiny(tmp_path / "run", "views.name=seed",
                                             "views.on=device", "views.global_size=16",
                                             "views.local_views=0", "trainer.max_steps=1")))
    assert summary["steps"] == 1
