"""Recipe loading: inheritance, overrides, schema errors, the command-line messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from levyjepa.config.recipe import load_recipe
from levyjepa.core.errors import ConfigError
from levyjepa.run import main

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "recipes" / "quickstart.yaml"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return write(tmp_path / "base.yaml", """
seed: 3
data: {name: synthetic_shapes, size: 16, train_size: 20, batch_size: 4, workers: 0}
views: {name: light, global_views: 2}
encoder: {name: vit, img_size: 16, patch_size: 4, embed_dim: 32, depth: 1, num_heads: 2}
method:
  name: lejepa
  lamb: 0.1
  sigreg: {name: sigreg, slices: 32}
trainer: {epochs: 5}
""")


def test_base_inheritance_relative_to_the_recipe(tmp_path: Path, base: Path) -> None:
    sub = tmp_path / "sub"
    sub.mkdir()
    child = write(sub / "child.yaml", "base: ../base.yaml\ntrainer: {epochs: 7}\n"
                                      "method: {kappa: 0.5, sigreg: {slices: 64}}\n")
    cfg = load_recipe(child)
    assert cfg.trainer.epochs == 7  # child wins
    assert cfg.seed == 3 and cfg.method.lamb == 0.1 and cfg.method.kappa == 0.5  # inherited
    assert cfg.method.sigreg == {"name": "sigreg", "slices": 64}  # deep merge
    assert cfg.trainer.keep_checkpoints == 2  # schema default
    assert cfg.name == "child" and "base" not in cfg


def test_changing_a_component_name_replaces_the_section(tmp_path: Path, base: Path) -> None:
    child = write(tmp_path / "c.yaml", "base: base.yaml\nmethod: {sigreg: {name: sigreg}}\n")
    assert load_recipe(child).method.sigreg == {"name": "sigreg", "slices": 32}
    import levyjepa

    @levyjepa.PRIORS.register("_test_other_prior")
    class Other(__import__("torch").nn.Module):
        def __init__(self, *, width: float = 1.0) -> None:
            super().__init__()

    swap = write(tmp_path / "s.yaml",
                 "base: base.yaml\nmethod: {sigreg: {name: _test_other_prior}}\n")
    # 'slices' of the base's sigreg section must not leak into the new component
    assert load_recipe(swap).method.sigreg == {"name": "_test_other_prior"}


def test_overrides_apply_last_and_are_typed(base: Path) -> None:
    cfg = load_recipe(base, ["trainer.epochs=2", "method.sigreg.slices=8", "data.size=24",
                             "encoder.img_size=24", "trainer.max_steps=5",
                             "log.trackers=[tensorboard]"])
    assert cfg.trainer.epochs == 2 and cfg.trainer.max_steps == 5
    assert cfg.method.sigreg.slices == 8 and cfg.data.size == 24
    assert list(cfg.log.trackers) == ["tensorboard"]


def test_inheritance_cycle_is_reported(tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", "base: b.yaml\n")
    write(tmp_path / "b.yaml", "base: a.yaml\n")
    with pytest.raises(ConfigError, match="inheritance cycle"):
        load_recipe(tmp_path / "a.yaml")


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("trainer: {epohcs: 3}",
         r"bad.yaml: unknown key 'trainer.epohcs' \(did you mean 'epochs'\?\)"),
        ("nosuchkey: 1", r"bad.yaml: unknown key 'nosuchkey'; valid keys: name, seed"),
        ("trainer: {epochs: abc}", r"bad.yaml: trainer.epochs: Value 'abc'"),
        ("method: {lamb: [1]}", r"bad.yaml: method: parameter 'lamb' of method 'lejepa'"),
        ("trainer: {precision: fp8}",
         r"bad.yaml: trainer.precision: 'fp8' is not one of bf16, fp32"),
        ("log: {trackers: [mlflow]}", r"bad.yaml: log.trackers: unknown tracker 'mlflow'"),
        ("encoder: {dept: 3}", r"bad.yaml: encoder: unknown parameter 'dept' for encoder 'vit'"),
        ("encoder: {depth: three}",
         r"bad.yaml: encoder: parameter 'depth' of encoder 'vit' expects"),
        ("encoder: {name: vitt}",
         r"bad.yaml: encoder: unknown encoder 'vitt' \(did you mean 'vit'\?\)"),
        ("data: {batch_size: 0}", r"bad.yaml: data.batch_size must be a positive int"),
        ("objective: {gamma: 1.0}", r"bad.yaml: objective.gamma moved to priors.within.weight"),
        ("priors: {within: {name: levy2d, input: tokenz, weight: 1.0}}",
         r"priors.within.input: method 'lejepa' has no output 'tokenz'; its outputs: emb, proj, "
         r"tokens, tokens_proj"),
        ("priors: {within: {name: levy2d, input: tokens_proj, weight: -1.0}}",
         r"priors.within.weight must be a number >= 0, got -1.0"),
        ("trainer: {epochs: 0}", r"trainer.epochs must be >= 1"),
        ("trainer: {cpu_threads: 0}", r"trainer.cpu_threads must be >= 1"),
    ],
)
def test_bad_recipes_are_refused_with_one_line(tmp_path: Path, base: Path, text: str,
                                               pattern: str) -> None:
    bad = write(tmp_path / "bad.yaml", f"base: base.yaml\n{text}\n")
    with pytest.raises(ConfigError, match=pattern) as err:
        load_recipe(bad)
    assert "\n" not in str(err.value)


def test_error_in_base_names_the_base_file(tmp_path: Path, base: Path) -> None:
    write(tmp_path / "mid.yaml", "base: base.yaml\ntrainer: {epochz: 1}\n")
    child = write(tmp_path / "top.yaml", "base: mid.yaml\n")
    with pytest.raises(ConfigError, match=r"mid.yaml: unknown key 'trainer.epochz'"):
        load_recipe(child)


def test_bad_override_names_the_override(base: Path) -> None:
    with pytest.raises(ConfigError, match=r"override 'trainer.epochs=abc': trainer.epochs"):
        load_recipe(base, ["trainer.max_steps=3", "trainer.epochs=abc"])
    with pytest.raises(ConfigError, match=r"override 'nosuchkey=1': unknown key 'nosuchkey'"):
        load_recipe(base, ["nosuchkey=1"])
    with pytest.raises(ConfigError, match="not of the form key=value"):
        load_recipe(base, ["trainer.epochs"])


def test_missing_recipe_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="recipe file not found: .*nope.yaml"):
        load_recipe(tmp_path / "nope.yaml")


def test_print_config_prints_resolved_recipe(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(QUICKSTART), "--print-config", "trainer.epochs=9",
                 "views.global_views=3"]) == 0
    printed = OmegaConf.create(capsys.readouterr().out)
    assert printed.trainer.epochs == 9 and printed.views.global_views == 3
    assert printed.name == "quickstart" and printed.trainer.precision == "bf16"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("nosuchkey=1", "unknown key 'nosuchkey'"),
        ("trainer.epochs=abc", "trainer.epochs: Value 'abc' of type 'str' could not be converted"),
    ],
)
def test_cli_errors_are_one_line_without_traceback(override: str, expected: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "levyjepa.run", str(QUICKSTART), override],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("levyjepa: error: ") and expected in lines[0]
    assert "Traceback" not in proc.stderr
