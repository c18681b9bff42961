"""Both plugin paths: a recipe's ``plugins:`` modules and installed entry points."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from levyjepa import PRIORS
from levyjepa.config.recipe import load_recipe
from levyjepa.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "plugin"


def on_quickstart(tmp_path: Path, extra: str) -> Path:
    """A recipe extending the quickstart with the YAML lines ``extra``."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"base: {ROOT / 'recipes' / 'quickstart.yaml'}\n{extra}\n")
    return recipe


def test_recipe_plugins_module_registers_a_prior(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_lab_priors.py").write_text(textwrap.dedent("""
        import torch
        from levyjepa import PRIORS

        @PRIORS.register("_test_lab_l2")
        class LabL2(torch.nn.Module):
            def __init__(self, *, scale: float = 1.0):
                super().__init__()
                self.scale = scale

            def forward(self, proj, *, step):
                return self.scale * proj.float().square().mean()
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    recipe = on_quickstart(tmp_path, "plugins: [my_lab_priors]\n"
                                     "method: {sigreg: {name: _test_lab_l2, scale: 2.0}}")
    cfg = load_recipe(recipe)
    assert "_test_lab_l2" in PRIORS
    prior = PRIORS.build(cfg.method.sigreg)
    x = torch.ones(2, 4, 3)
    assert prior(x, step=0).item() == pytest.approx(2.0)
    # the plugin's own parameters are checked like a built-in's
    recipe.write_text(recipe.read_text().replace("scale: 2.0", "scael: 2.0"))
    with pytest.raises(ConfigError, match="unknown parameter 'scael' for prior '_test_lab_l2'"):
        load_recipe(recipe)


def test_missing_plugin_module_is_one_clear_error(tmp_path: Path) -> None:
    recipe = on_quickstart(tmp_path, "plugins: [no_such_plugin_module]")
    with pytest.raises(ConfigError, match="plugins: cannot import module 'no_such_plugin_module'"):
        load_recipe(recipe)


def _print_config(recipe: Path, pythonpath: Path,
                  *overrides: str) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(pythonpath), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "levyjepa.run", str(recipe), *overrides, "--print-config"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=120,
    )


def assert_prior_resolves(recipe: Path, pythonpath: Path, *priors: str,
                          overrides: tuple[str, ...] = ()) -> str:
    """The runner, started with only ``pythonpath`` added, resolves a recipe naming ``priors``.

    Returns:
        The printed configuration.
    """
    proc = _print_config(recipe, pythonpath, *overrides)
    assert proc.returncode == 0, proc.stderr
    for prior in priors:
        assert f"name: {prior}" in proc.stdout
    return proc.stdout


def example_source(tmp_path: Path) -> Path:
    """A clean copy of ``examples/plugin`` (no build folder, egg-info or entry-point metadata)."""
    src = tmp_path / "example_src"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info",
                                                                 "__pycache__"))
    return src


def test_entry_point_plugin_from_distribution_metadata(tmp_path: Path) -> None:
    """A distribution found on sys.path whose metadata declares a ``levyjepa.plugins`` entry."""
    site = tmp_path / "site"
    (site / "acme_priors").mkdir(parents=True)
    (site / "acme_priors" / "__init__.py").write_text(textwrap.dedent("""
        import torch
        from levyjepa import PRIORS

        @PRIORS.register("acme_zero")
        class AcmeZero(torch.nn.Module):
            def forward(self, proj, *, step):
                return proj.sum() * 0.0
    """))
    info = site / "acme_priors-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-priors\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[levyjepa.plugins]\nacme = acme_priors\n")
    recipe = on_quickstart(tmp_path, "method: {sigreg: {name: acme_zero}}")
    assert_prior_resolves(recipe, site, "acme_zero")
    # without the distribution on the path the same recipe is refused, naming the prior
    proc = _print_config(recipe, tmp_path / "empty")
    assert proc.returncode == 2
    assert "unknown prior 'acme_zero'" in proc.stderr


def test_example_plugin_installed_in_a_temporary_environment(tmp_path: Path) -> None:
    """``pip install`` the shipped example into a temporary target, then run through it.

    The entry point alone (no ``plugins:`` key) registers both of the example's priors.
    """
    target = tmp_path / "env"
    pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(example_source(tmp_path))],
        capture_output=True, text=True, timeout=300,
    )
    assert pip.returncode == 0, pip.stderr
    assert list(target.glob("levyjepa_example_plugin-*.dist-info/entry_points.txt"))
    recipe = on_quickstart(tmp_path, "method: {sigreg: {name: isotropic_moments, "
                                     "weight_cov: 0.5}}\n"
                                     "priors: {within: {name: stable_sheet2d, weight: 0.5, "
                                     "stability: 1.2}}")
    printed = assert_prior_resolves(recipe, target, "isotropic_moments", "stable_sheet2d")
    assert "stability: 1.2" in printed


def test_stable_prior_from_the_command_line_plugins_override(tmp_path: Path) -> None:
    """``plugins=[...stable]`` and dotted overrides replace the quickstart's levy2d prior: the
    entry keeps its attachment (``input``, ``weight`` overridden), not levy2d's parameters."""
    src = example_source(tmp_path)  # importable source only: no entry point on this path
    overrides = ("plugins=[levyjepa_example_plugin.stable]", "priors.within.weight=0.5",
                 "priors.within.name=stable_sheet2d", "priors.within.stability=1.2",
                 "priors.within.sigma=0.1")
    printed = assert_prior_resolves(ROOT / "recipes" / "quickstart.yaml", src, "stable_sheet2d",
                                    overrides=overrides)
    assert "stability: 1.2" in printed and "sigma: 0.1" in printed
    assert "input: tokens_proj" in printed and "weight: 0.5" in printed
    assert "jumps:" not in printed and "lam:" not in printed  # levy2d's, not stable_sheet2d's


def test_example_plugin_prior_math(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(EXAMPLE))
    from levyjepa.config.plugins import import_plugin_modules

    import_plugin_modules(["levyjepa_example_plugin.priors"])
    prior = PRIORS.build({"name": "isotropic_moments"})
    gen = torch.Generator().manual_seed(0)
    gauss = torch.randn(2, 20000, 4, generator=gen)
    assert prior(gauss, step=0).item() < 0.01
    shifted = gauss * 2 + 1  # mean 1 in 4 dims: 4; covariance 4I: 9 * 4 / 4 = 9
    assert prior(shifted, step=0).item() == pytest.approx(13.0, rel=0.05)
