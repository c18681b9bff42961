"""Behaviours the README and docs/ promise: ``base:`` with absolute and relative paths, a prior
switched on and off from the command line, the extending page's method being the shipped one."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf
from test_docs import ROOT, _blocks

from levyjepa.config.recipe import load_recipe


def test_base_takes_absolute_and_relative_paths(tmp_path: Path) -> None:

    quickstart = ROOT / "recipes" / "quickstart.yaml"
    absolute = tmp_path / "absolute.yaml"
    absolute.write_text(f"base: {quickstart}\ntrainer: {{epochs: 2}}\n")
    (tmp_path / "sub").mkdir()
    relative = tmp_path / "sub" / "relative.yaml"
    relative.write_text("base: ../absolute.yaml\ntrainer: {epochs: 3}\n")
    cfg = load_recipe(absolute)
    assert cfg.trainer.epochs == 2 and cfg.data.name == "synthetic_shapes"
    cfg = load_recipe(relative)  # relative to the recipe's folder, not the working directory
    assert cfg.trainer.epochs == 3 and cfg.data.name == "synthetic_shapes"


def test_prior_switched_on_and_off_from_the_command_line(tmp_path: Path) -> None:

    from levyjepa.config.recipe import load_recipe
    from levyjepa.methods.attached_priors import AttachedPriors
    from levyjepa.methods.lejepa import LeJEPA

    def built(cfg) -> AttachedPriors:
        return AttachedPriors(OmegaConf.to_container(cfg.priors), outputs=LeJEPA.outputs,
                              method="lejepa")

    quickstart = ROOT / "recipes" / "quickstart.yaml"
    assert type(built(load_recipe(quickstart)).first_on("tokens_proj")).__name__ == "LevySheet2D"
    off = load_recipe(quickstart, ["priors.within=null"])
    assert off.priors.within is None
    assert built(off).first_on("tokens_proj") is None and not built(off).priors
    no_levy = tmp_path / "no_levy.yaml"  # a recipe that says `within: null`
    no_levy.write_text(f"base: {quickstart}\npriors: {{within: null}}\n")
    assert load_recipe(no_levy).priors.within is None
    for overrides in (["priors.within={name: levy2d, input: tokens_proj, weight: 1}"],
                      ["priors.within.name=levy2d", "priors.within.input=tokens_proj",
                       "priors.within.weight=1", "priors.within.lam=1.0"]):
        cfg = load_recipe(no_levy, overrides)
        assert cfg.priors.within.name == "levy2d" and cfg.priors.within.weight == 1
        priors = built(cfg)
        assert type(priors.first_on("tokens_proj")).__name__ == "LevySheet2D"
        assert priors.attachments["within"].weight == 1.0


def test_extending_page_shows_the_shipped_method_verbatim() -> None:
    """The "A method" section's one Python block is the example plugin's file."""
    text = (ROOT / "docs" / "extending.md").read_text()
    section = text.split("\n## A method\n", 1)[1].split("\n## ", 1)[0]
    blocks = [body for lang, body in _blocks(section) if lang == "python"]
    assert len(blocks) == 1, "the section shows one complete method"
    example = ROOT / "examples" / "method_plugin" / "levyjepa_example_method" / "align_uniform.py"
    assert blocks[0] == example.read_text()
