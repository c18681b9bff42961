"""One-line errors, before any run directory, for mistakes that used to end in tracebacks.

Issue 12, items 8-10: data that does not fit the encoder, plugin mistakes (both plugin paths),
and weak messages (generated data parameters, YAML syntax, a replaced component section).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

from levyjepa import DATA, PRIORS
from levyjepa.config.recipe import load_recipe
from levyjepa.core.errors import ConfigError
from levyjepa.run import main

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "recipes" / "quickstart.yaml"
VIDEO_BASE = ROOT / "recipes" / "video_base.yaml"
TINY_VIDEO = ["data.name=synthetic_video", "views=null", "data.frames_per_clip=4",
              "data.train_size=8", "data.test_size=0", "encoder.name=video_vit",
              "encoder.img_size=32", "encoder.patch_size=8", "encoder.num_frames=4",
              "encoder.embed_dim=32", "encoder.depth=1", "encoder.num_heads=2",
              "encoder.pool_heads=2"]


def refused(capsys: pytest.CaptureFixture[str], tmp_path: Path, recipe: Path,
            *overrides: str) -> str:
    """Run the command line; assert exit 2, one ``levyjepa: error:`` line, no run directory."""
    run_dir = tmp_path / "run"
    code = main([str(recipe), *overrides, f"out_dir={run_dir}", "trainer.max_steps=1",
                 "trainer.device=cpu", "log.progress=false"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("levyjepa: error: "), err
    assert "Traceback" not in err
    assert not run_dir.exists()
    return err


def load_error(recipe: Path, *overrides: str) -> str:
    with pytest.raises(ConfigError) as err:
        load_recipe(recipe, list(overrides))
    assert "\n" not in str(err.value)
    return str(err.value)


def write_module(folder: Path, name: str, source: str) -> Path:
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return path


# ---- item 8: the data must fit the encoder ------------------------------------------------


def test_image_size_mismatch_names_both_keys(capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path) -> None:
    err = refused(capsys, tmp_path, QUICKSTART, "data.size=48")
    assert ("data.size=48 does not match encoder.img_size=32: the data source makes 48 px "
            "views and the encoder takes 32 px views; set encoder.img_size=48 "
            "(or data.size=32)") in err


def test_effective_values_come_from_constructor_defaults() -> None:
    # synthetic_video makes 32 px clips by default, video_vit takes 128 px ones by default
    err = load_error(QUICKSTART, "data.name=synthetic_video", "views=null",
                     "encoder.name=video_vit")
    assert ("data.size=32 (the default of data source 'synthetic_video') does not match "
            "encoder.img_size=128 (the default of encoder 'video_vit')") in err


def test_clip_length_mismatch_and_tubelet_divisibility() -> None:
    assert load_recipe(QUICKSTART, TINY_VIDEO).encoder.num_frames == 4  # a fitting recipe
    err = load_error(QUICKSTART, *TINY_VIDEO, "data.frames_per_clip=6")
    assert "data.frames_per_clip=6 does not match encoder.num_frames=4" in err
    err = load_error(QUICKSTART, *TINY_VIDEO, "data.frames_per_clip=5", "encoder.num_frames=5")
    assert ("encoder.num_frames=5 is not a multiple of encoder.tubelet_size=2 (the default of "
            "encoder 'video_vit')") in err
    err = load_error(VIDEO_BASE, "data.root=/nowhere", "data.size=120")  # img_size: ${data.size}
    assert "encoder.img_size=120 is not a multiple of encoder.patch_size=16" in err


def test_images_against_clips_lists_the_fitting_encoders() -> None:
    err = load_error(QUICKSTART, "data.name=synthetic_video", "views=null")
    assert ("encoder: encoder 'vit' takes images but data source 'synthetic_video' makes clips; "
            "encoders for clips: video_vit") in err
    err = load_error(QUICKSTART, "encoder.name=video_vit")
    assert "encoder 'video_vit' takes clips but data source 'synthetic_shapes' makes images" in err


def test_device_augmentation_still_makes_views_of_size() -> None:
    err = load_error(QUICKSTART, "data.name=image_folder", "data.root=/nowhere",
                     "views.name=seed", "views.on=device", "views.global_size=48")
    assert ("views.global_size=48 does not match encoder.img_size=32: the views section makes "
            "48 px views") in err
    err = load_error(QUICKSTART, "data.name=image_folder", "data.root=/nowhere",
                     "views.name=seed")  # the seed's default side
    assert ("views.global_size=128 (the default of view pipeline 'seed') does not match "
            "encoder.img_size=32") in err


# ---- item 9: plugin mistakes --------------------------------------------------------------


def test_plugin_raising_at_import(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_module(tmp_path, "lab_raises", """
        import torch

        raise RuntimeError("lab config missing\\nsecond line")
    """)
    monkeypatch.syspath_prepend(str(tmp_path))
    err = refused(capsys, tmp_path, QUICKSTART, "plugins=[lab_raises]")
    assert (f"plugins: module 'lab_raises' failed to import: RuntimeError: lab config missing "
            f"(at {path}:4)") in err


def test_plugin_with_a_missing_dependency(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    write_module(tmp_path, "lab_needs_dep", "import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    err = load_error(QUICKSTART, "plugins=[lab_needs_dep]")
    assert "plugins: module 'lab_needs_dep' failed to import: ModuleNotFoundError" in err
    assert "it imports 'no_such_dependency_xyz', which is not installed" in err


def test_plugin_prior_clashing_with_a_builtin(capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_module(tmp_path, "lab_clash", """
        import torch
        from levyjepa import PRIORS

        @PRIORS.register("sigreg")
        class Mine(torch.nn.Module):
            def forward(self, proj, *, step):
                return proj.sum()
    """)
    monkeypatch.syspath_prepend(str(tmp_path))
    err = refused(capsys, tmp_path, QUICKSTART, "plugins=[lab_clash]")
    assert ("plugins: module 'lab_clash' failed to import: ValueError: prior 'sigreg' is "
            "already registered (by levyjepa.priors.sigreg.SIGReg, a built-in); choose another "
            f"name (at {path}:5)") in err


NO_STEP_PRIOR = """
    import torch
    from levyjepa import PRIORS

    @PRIORS.register("{name}")
    class NoStep(torch.nn.Module):
        def forward(self, proj: torch.Tensor) -> torch.Tensor:
            return proj.float().square().mean()
"""


def test_prior_forward_without_step(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    write_module(tmp_path, "lab_nostep", NO_STEP_PRIOR.format(name="_test_nostep"))
    monkeypatch.syspath_prepend(str(tmp_path))
    err = refused(capsys, tmp_path, QUICKSTART, "plugins=[lab_nostep]",
                  "method.sigreg.name=_test_nostep")
    assert ("method.sigreg: prior '_test_nostep' (from module 'lab_nostep'): "
            "NoStep.forward(self, proj) cannot be called as forward(x, step=...): got an "
            "unexpected keyword argument 'step'") in err


class Loose(torch.nn.Module):
    def forward(self, x: torch.Tensor, **kwargs: object) -> torch.Tensor:
        return x.sum()


class TwoInputs(torch.nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor, *, step: int) -> torch.Tensor:
        return x.sum()


def make_two() -> TwoInputs:
    """A factory function: its return annotation names the class whose forward is checked."""
    return TwoInputs()


def test_prior_forward_contract_accepts_kwargs_and_checks_annotated_factories() -> None:
    for name, obj in (("_test_loose", Loose), ("_test_two_factory", make_two)):
        if name not in PRIORS:
            PRIORS.register(name)(obj)
    assert PRIORS.check({"name": "_test_loose"}) == ("_test_loose", {})
    with pytest.raises(ConfigError, match=r"TwoInputs.forward\(self, x, y, \*, step\) cannot be "
                                          r"called as forward\(x, step=...\): missing a required "
                                          r"argument: 'y'"):
        PRIORS.check({"name": "_test_two_factory"}, where="priors.within")


def entry_point_site(tmp_path: Path, module: str, source: str) -> Path:
    """A folder holding ``module`` and a distribution declaring it a ``levyjepa.plugins`` entry."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    write_module(site, module, source)
    info = site / f"{module}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[levyjepa.plugins]\nlab = {module}\n")
    return site


@pytest.mark.parametrize(("case", "source", "expected"), [
    ("raises", "raise KeyError('LAB_HOME')\n",
     "plugin entry point 'lab' (ep_raises, from ep_raises) failed to import: KeyError: "
     "'LAB_HOME' (at "),
    ("clash", NO_STEP_PRIOR.format(name="sigreg"),
     "plugin entry point 'lab' (ep_clash, from ep_clash) failed to import: ValueError: prior "
     "'sigreg' is already registered (by levyjepa.priors.sigreg.SIGReg, a built-in)"),
    ("nostep", NO_STEP_PRIOR.format(name="_test_ep_nostep"),
     "method.sigreg: prior '_test_ep_nostep' (from module 'ep_nostep'): "
     "NoStep.forward(self, proj) cannot be called as forward(x, step=...)"),
])
def test_entry_point_plugin_mistakes(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch, case: str, source: str,
                                     expected: str) -> None:
    monkeypatch.syspath_prepend(str(entry_point_site(tmp_path, f"ep_{case}", source)))
    uses = ["method.sigreg.name=_test_ep_nostep"] if case == "nostep" else []
    assert expected in refused(capsys, tmp_path, QUICKSTART, *uses)


# ---- item 10: weak messages ---------------------------------------------------------------


def test_generated_data_parameters_name_the_data_key(capsys: pytest.CaptureFixture[str],
                                                     tmp_path: Path) -> None:
    err = refused(capsys, tmp_path, QUICKSTART, "data.size=-3")
    assert "data: data source 'synthetic_shapes': size must be >= 8, got -3" in err
    assert "render_shapes" not in err


@pytest.mark.parametrize(("source", "section", "expected"), [
    ("synthetic_shapes", {"classes": 11}, "classes must be in 2..10, got 11"),
    ("synthetic_shapes", {"rotation": 1.5}, "rotation must be a number in [0, 1], got 1.5"),
    ("synthetic_shapes", {"train_size": 0}, "train_size must be an integer >= 1, got 0"),
    ("synthetic_video", {"video_frames": 0}, "video_frames must be an integer >= 1, got 0"),
    ("synthetic_video", {"size": 4}, "size must be an integer >= 8, got 4"),
])
def test_generated_sources_validate_before_rendering(source: str, section: dict,
                                                     expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        DATA.build({"name": source, **section}, where="data")
    assert str(err.value).startswith(f"data: data source '{source}': {expected}")


@pytest.mark.parametrize(("text", "expected"), [
    ("seed: 0\ntrainer:\n\tepochs: 3\n",
     "bad.yaml:3:1: not a valid YAML recipe: a tab character (found character that cannot "
     "start any token); YAML indents with spaces, not tabs"),
    ("seed: 0\ntrainer:\n  epochs: 3\n  max_steps: 2\n  epochs: 4\n",
     "bad.yaml:5:3: duplicate key 'trainer.epochs' (first on line 3); a key may appear once per "
     "mapping"),
    ("method: {sigreg: {name: sigreg, slices: 3, slices: 4}}\n",
     "bad.yaml:1:44: duplicate key 'method.sigreg.slices' (first on line 1)"),
    ("seed: [0\n", "bad.yaml:2:1: not a valid YAML recipe: did not find expected ',' or ']' "
                   "(while parsing a flow sequence at line 1, column 7)"),
])
def test_yaml_errors_give_line_column_and_key(capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path, text: str, expected: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    assert expected in refused(capsys, tmp_path, bad)


def test_replaced_section_reports_missing_keys_at_once_and_keeps_loader_keys(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    err = refused(capsys, tmp_path, QUICKSTART, "data.name=image_folder")
    assert "data: data source 'image_folder' needs parameter(s) root; valid parameters:" in err
    assert err.endswith("(the data section was replaced because its name changed from "
                        "'synthetic_shapes' to 'image_folder'; its other keys must be given "
                        "again)")
    cfg = load_recipe(QUICKSTART, ["data.name=image_folder", "data.root=/nowhere"])
    assert (cfg.data.batch_size, cfg.data.workers) == (128, 1)  # the loader keys are kept
    assert "train_size" not in cfg.data and "instances" not in cfg.data
    if "_test_two_required" not in DATA:
        DATA.register("_test_two_required")(lambda *, first, second, size=32: None)
    err = load_error(QUICKSTART, "data.name=_test_two_required")
    assert "needs parameter(s) first, second" in err and "replaced" in err


def test_missing_loader_and_component_keys_in_one_line(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("data: {name: image_folder}\nencoder: {name: vit}\n")
    err = load_error(recipe)
    assert "data: data source 'image_folder' needs data.root, data.batch_size, data.workers" in err
    recipe.write_text("data: {name: image_folder, root: /x}\nencoder: {name: vit, img_size: 128}\n")
    assert "data: the loader needs data.batch_size, data.workers" in load_error(recipe)


def test_interpolation_into_a_replaced_section_is_explained() -> None:
    err = load_error(VIDEO_BASE, "data.name=synthetic_video")
    assert "encoder.img_size: Interpolation key 'data.size' not found (the data section was " \
           "replaced because its name changed from 'video_folder' to 'synthetic_video'" in err
