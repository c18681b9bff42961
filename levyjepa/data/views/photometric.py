"""The photometric half of the seed's augmentation (docs/seed_experiments.md), as one value.

:class:`Photometric` holds the parameters every seed view shares, whatever its crop: colour
jitter, grayscale, blur, solarisation and flip. :class:`levyjepa.data.views.seed_views.SeedViews`
(whose keyword arguments are the recipe's ``views.*`` keys) builds it once and hands it to the
per-image pipeline (:func:`levyjepa.data.views.transforms.ssl_augmentation`), to the batched
device views (:class:`levyjepa.data.views.device_views.DeviceViews`) and, through them, to the
per-view parameter draws (:func:`levyjepa.data.views.view_params.sample_view_params`).
"""

from __future__ import annotations

from dataclasses import dataclass

from levyjepa.core.arg_checks import check_positive_int, float_pair


@dataclass(frozen=True)
class Photometric:
    """The seed's photometric augmentation parameters (the defaults are the seed's).

    Attributes:
        color_jitter: Brightness, contrast, saturation and hue strengths.
        color_jitter_p: Probability of applying the colour jitter.
        grayscale_p: Probability of converting to grayscale.
        blur_kernel: Odd side of the Gaussian blur kernel.
        blur_sigma: Range of the blur's standard deviation.
        blur_p: Probability of blurring.
        solarize_threshold: Solarisation threshold on the 0-255 scale.
        solarize_p: Probability of solarising.
        flip_p: Probability of a horizontal flip.
    """

    color_jitter: tuple[float, float, float, float] = (0.8, 0.8, 0.8, 0.2)
    color_jitter_p: float = 0.8
    grayscale_p: float = 0.2
    blur_kernel: int = 7
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    blur_p: float = 0.5
    solarize_threshold: int = 128
    solarize_p: float = 0.1
    flip_p: float = 0.5

    def check(self) -> None:
        """Refuse an invalid parameter.

        Raises:
            ValueError: naming the first invalid parameter and its valid range.
        """
        for name in ("color_jitter_p", "grayscale_p", "blur_p", "solarize_p", "flip_p"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
        jitter = self.color_jitter
        if len(jitter) != 4 or min(jitter) < 0 or jitter[3] > 0.5:
            raise ValueError("color_jitter must be [brightness, contrast, saturation, hue], "
                             f"all >= 0 and hue <= 0.5, got {list(jitter)}")
        check_positive_int("blur_kernel", self.blur_kernel)
        if self.blur_kernel % 2 == 0:
            raise ValueError(f"blur_kernel must be odd, got {self.blur_kernel}")
        sigma_low, sigma_high = float_pair("blur_sigma", self.blur_sigma)
        if not 0.0 < sigma_low <= sigma_high:
            raise ValueError("blur_sigma must satisfy 0 < low <= high, got "
                             f"{list(self.blur_sigma)}")
        if not 0 <= self.solarize_threshold <= 255:
            raise ValueError(
                f"solarize_threshold must be in 0..255, got {self.solarize_threshold}")


SEED_PHOTOMETRIC = Photometric()
"""The seed's photometric parameters, the default wherever a :class:`Photometric` is taken."""
