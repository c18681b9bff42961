"""The method seam: every registered method trains, resumes exactly, runs on 2 processes; priors
attached to any method get gradients (or none at weight 0); LeJEPA's multi-crop centres."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_train import ROOT, TINY_GENERATED_CLIPS, _encoder_state, read_metrics, tiny

from levyjepa.config.recipe import load_recipe
from levyjepa.core.errors import ConfigError
from levyjepa.core.registry import METHODS
from levyjepa.encoders.output import EncoderOutput
from levyjepa.encoders.video_vit import VideoViTEncoder
from levyjepa.encoders.vit import ViTEncoder
from levyjepa.methods.attached_priors import AttachedPriors
from levyjepa.methods.lejepa import LeJEPA
from levyjepa.training.loop import train

QUICKSTART = ROOT / "recipes" / "quickstart.yaml"
BUILTIN = [n for n in METHODS.names() if METHODS.get(n).__module__.startswith("levyjepa.")]


# A method's section values for a tiny encoder (a 4x4 token grid at 16 px; video: 8x4x4)
SECTIONS = {"lejepa": {"sigreg": {"name": "sigreg", "slices": 16}},
            "ijepa": {"min_keep": 2, "predictor_width": 16, "predictor_depth": 1,
                      "predictor_heads": 2},
            "vjepa": {"min_keep": 2, "predictor_width": 16, "predictor_depth": 1,
                      "predictor_heads": 2},
            "hjepa": {"state_dim": 4, "state_hidden": 16, "potential_hidden": 8,
                      "sigreg": {"name": "sigreg", "slices": 16}}}
VIDEO_METHODS = ("vjepa", "hjepa")
"""Methods on clips: they train with their own recipe (recipes/video/<name>.yaml) on clips."""
# What a method needs beyond its own defaults on the tiny quickstart (or its own recipe)
NEEDS = {"ijepa": ["encoder.pool=mean",
                   *(f"method.{k}={v}" for k, v in SECTIONS["ijepa"].items())],
         **{name: [f"method.{k}={v}" for k, v in SECTIONS[name].items() if k != "sigreg"]
            for name in VIDEO_METHODS}}


def method_overrides(name: str) -> list[str]:
    """Select ``name`` on the quickstart (the section is replaced: its defaults apply; the
    quickstart's local views are LeJEPA's multi-crop, which the other methods do not take); a
    video method's own recipe selects it already."""
    if name in VIDEO_METHODS:
        return list(NEEDS[name])
    if name == "lejepa":
        return []
    return [f"method={{name: {name}}}", "views.local_views=0", *NEEDS.get(name, [])]


def recipe_of(name: str) -> Path:
    """The recipe the registry tests train ``name`` with."""
    return ROOT / "recipes" / "video" / f"{name}.yaml" if name in VIDEO_METHODS else QUICKSTART


def run_args(name: str, out_dir: Path, *extra: str) -> list[str]:
    """Tiny overrides of :func:`recipe_of` for ``name`` (clips for a video method)."""
    if name not in VIDEO_METHODS:
        return tiny(out_dir, *method_overrides(name), *extra)
    args = tiny(out_dir, *method_overrides(name), *extra, data=TINY_GENERATED_CLIPS)
    if "sigreg" not in load_recipe(recipe_of(name)).method:  # TINY_VIT shrinks LeJEPA's SIGReg
        args = [a for a in args if not a.startswith("method.sigreg.")]
    return args


def test_builtin_methods_are_registered() -> None:
    assert {"lejepa", "vicreg", "ijepa", "vjepa", "hjepa", "supervised"} <= set(BUILTIN)


@pytest.mark.parametrize("name", BUILTIN)
def test_every_method_trains_two_steps_and_logs_its_terms(name: str, tmp_path: Path) -> None:
    run = tmp_path / name
    summary = train(load_recipe(recipe_of(name), run_args(name, run, "trainer.max_steps=2",
                                                          "log.every=1")))
    assert summary["steps"] == 2 and summary["method"] == name
    events = [e for e in read_metrics(run) if "train/loss" in e]
    assert [e["step"] for e in events] == [1, 2]
    terms = {"lejepa": {"inv", "sigreg", "orig_lejepa_loss"}, "vicreg": {"inv", "var", "cov"},
             "ijepa": {"pred_loss"}, "vjepa": {"pred_loss"},
             "hjepa": {"pred_loss", "sigreg", "q_pr", "p_pr", "q_std_min", "q2", "p2", "V_var",
                       "energy_drift"},
             "supervised": set()}  # its only term is loss, a zero: the probe trains it
    for event in events:  # the method's terms, the prior's and the loop's, all finite
        want = {"loss", "probe_loss", "grad_norm", *terms.get(name, ())}
        want |= set() if name in VIDEO_METHODS else {"within"}  # their recipes attach none
        got = {k.removeprefix("train/") for k in event if k.startswith("train/")}
        assert want <= got, want - got
        assert all(torch.isfinite(torch.tensor(event[f"train/{k}"])) for k in want)


@pytest.mark.parametrize("name", BUILTIN)
def test_resume_is_exact_for_every_method(name: str, tmp_path: Path) -> None:
    """4 straight steps against 2 steps, then resume to 4: same terms and weights."""
    common = ["trainer.epochs=2", "log.every=1", "data.train_size=12", "trainer.eval_every=0"]
    straight, parted = tmp_path / "straight", tmp_path / "parted"
    recipe = recipe_of(name)
    train(load_recipe(recipe, run_args(name, straight, *common, "trainer.max_steps=4")))
    train(load_recipe(recipe, run_args(name, parted, *common, "trainer.max_steps=2")))
    train(load_recipe(recipe, run_args(name, parted, *common, "trainer.max_steps=4",
                                       "resume=auto")))
    a = [e for e in read_metrics(straight) if "train/loss" in e]
    b = [e for e in read_metrics(parted) if "train/loss" in e]
    assert [e["step"] for e in a] == [e["step"] for e in b] == [1, 2, 3, 4]
    for ea, eb in zip(a, b):
        for key in ea:
            if key.startswith("train/"):
                assert eb[key] == pytest.approx(ea[key], rel=1e-6, abs=1e-9), (ea["step"], key)
    sa, sb = _encoder_state(straight), _encoder_state(parted)
    assert sa.keys() == sb.keys()
    for key in sa:
        torch.testing.assert_close(sb[key], sa[key], rtol=1e-6, atol=1e-7)
    # the whole model's state: the method's own modules (teacher, predictor, potential) too
    own = {"ijepa": ("method.teacher.", "method.predictor."),
           "vjepa": ("method.teacher.", "method.predictor."),
           "hjepa": ("method.state_proj.", "method.potential.")}
    assert all(any(k.startswith(prefix) for k in sa) for prefix in own.get(name, ()))


@pytest.mark.parametrize("name", BUILTIN)
def test_every_method_on_two_cpu_processes(name: str, tmp_path: Path) -> None:
    """torchrun, 2 gloo processes: 2 steps, every metric written once, by the main process."""
    run = tmp_path / "ddp"
    port = 29540 + BUILTIN.index(name)
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "torchrun"), "--nproc_per_node", "2",
         "--master_port", str(port), "-m", "levyjepa.run", str(recipe_of(name)),
         *run_args(name, run, "trainer.max_steps=2", "log.every=1")],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "FutureWarning" not in proc.stderr, proc.stderr[-3000:]  # e.g. VICReg's all-gather
    assert [e["step"] for e in read_metrics(run) if "train/loss" in e] == [1, 2]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["method"] == name


def tiny_encoder(name: str = "lejepa") -> torch.nn.Module:
    """A tiny ViT as ``name`` needs it (I-JEPA: mean pooling, no pooled projector); a tiny
    video ViT (8 frames of 16 px, 1x4x4 tubelets: an 8x4x4 grid) for a video method."""
    torch.manual_seed(0)
    needs = METHODS.get(name).needs
    if name in VIDEO_METHODS:
        return VideoViTEncoder(arch="vit_small", img_size=16, num_frames=8, patch_size=4,
                               tubelet_size=1, embed_dim=32, depth=1, num_heads=2,
                               drop_path=0.0, emb_dim=32, pool_heads=2, proj_hidden=32,
                               proj_dim=8, pool=needs.pool or "attention", with_proj=needs.proj)
    return ViTEncoder(arch="vit_tiny_patch16_224", img_size=16, patch_size=4, embed_dim=32,
                      depth=1, num_heads=2, drop_path=0.0, emb_dim=32, pool_heads=2,
                      proj_hidden=32, proj_dim=8, pool=needs.pool or "attention",
                      with_proj=needs.proj)


def build(name: str, encoder: torch.nn.Module):
    """``name`` built as the runner builds it (given the encoder and seed where it takes them)."""
    offered = {"encoder": encoder, "seed": 0}
    runtime = {k: v for k, v in offered.items() if k in METHODS.runtime_names(name)}
    return METHODS.build({"name": name, **SECTIONS.get(name, {})}, **runtime)


@pytest.mark.parametrize("name", BUILTIN)
@pytest.mark.parametrize("weight, graph", [(1.0, False), (0.0, False), (0.0, True)])
def test_priors_attached_to_every_method_get_gradients(name: str, weight: float,
                                                       graph: bool) -> None:
    """A prior on ``tokens_proj`` trains the token projector at weight > 0; at weight 0 it is
    logged without a graph (no gradient at all), or with the seed's graph (zero gradients)."""
    encoder = tiny_encoder(name)
    method = build(name, encoder)
    video = name in VIDEO_METHODS
    priors = AttachedPriors({"within": {"name": "levy3d" if video else "levy2d",
                                        "input": "tokens_proj", "weight": weight,
                                        "graph_at_zero_weight": graph}},
                            outputs=type(method).outputs, method=name)
    shape = (6, 1, 3, 8, 16, 16) if video else (6, 2, 3, 16, 16)
    views = [torch.randn(*shape, generator=torch.Generator().manual_seed(1))]
    result = method(encoder, views, step=0)
    terms = priors(result.terms, result.outputs, step=0)
    assert terms["within"].ndim == 0 and torch.isfinite(terms["within"])
    terms["loss"].backward()
    grads = [p.grad for p in encoder.tokens_proj.parameters()]
    if weight > 0:
        assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0
        assert terms["loss"] > result.terms["loss"]  # weight * within was added
    elif graph:
        assert all(g is not None and not g.any() for g in grads)
    else:
        assert all(g is None for g in grads)
        assert terms["loss"] is result.terms["loss"] or torch.equal(terms["loss"],
                                                                    result.terms["loss"])
    # the method's own terms train the rest of the encoder in every case
    blocks = encoder.blocks if video else encoder.backbone.blocks
    assert blocks[0].attn.qkv.weight.grad is not None


class FieldEncoder(torch.nn.Module):
    """An encoder whose ``proj`` is its input: ``(N, V, K)`` views give ``proj`` ``(V, N, K)``."""

    def forward(self, views: torch.Tensor) -> EncoderOutput:
        n, v, k = views.shape
        return EncoderOutput(emb=views.reshape(n * v, k), proj=views.transpose(0, 1),
                             tokens=views.reshape(n * v, 1, 1, k), tokens_proj=None)


def test_multicrop_centres_come_from_the_global_views_only() -> None:
    gen = torch.Generator().manual_seed(3)
    glob = torch.randn(5, 2, 4, generator=gen, dtype=torch.float64)
    local = torch.randn(5, 6, 4, generator=gen, dtype=torch.float64)
    method = LeJEPA(lamb=0.5, kappa=1.0, sigreg={"name": "sigreg", "slices": 8})
    terms = method(FieldEncoder(), [glob.float(), local.float()], step=0).terms
    centre = glob.mean(1, keepdim=True)  # (N, 1, K)
    everything = torch.cat([glob, local], 1)
    want = (everything - centre).square().mean()
    assert float(terms["inv"]) == pytest.approx(float(want), rel=1e-6)
    wrong = (everything - everything.mean(1, keepdim=True)).square().mean()  # all-view centres
    assert abs(float(wrong) - float(want)) > 1e-3
    # moving a local view changes its own distance to the centre, never the centre
    moved = local.clone()
    moved[:, 0] += 1.0
    again = method(FieldEncoder(), [glob.float(), moved.float()], step=0).terms["inv"]
    shift = ((torch.cat([glob, moved], 1) - centre).square().mean())
    assert float(again) == pytest.approx(float(shift), rel=1e-6)
    # SIGReg sees every view: the statistic over 8 views differs from the global views' alone
    alone = method.sigreg(glob.float().transpose(0, 1), step=0)
    assert not torch.isclose(terms["sigreg"], alone)


def test_a_misspelt_method_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown method 'vicrge' \(did you mean 'vicreg'\?\);"
                                          r" known: .*lejepa.*vicreg"):
        load_recipe(QUICKSTART, tiny(tmp_path, "method={name: vicrge}"))


def test_priors_read_only_what_the_method_returns(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"priors.within.input: method 'lejepa' has no output "
                                          r"'tokenz'; its outputs: emb, proj, tokens, "
                                          r"tokens_proj"):
        load_recipe(QUICKSTART, tiny(tmp_path, "priors.within.input=tokenz"))
    with pytest.raises(ConfigError, match=r"priors.within.weight must be a number >= 0"):
        load_recipe(QUICKSTART, tiny(tmp_path, "priors.within.weight=-1"))
    with pytest.raises(ConfigError, match=r"objective.gamma moved to priors.within.weight"):
        load_recipe(QUICKSTART, tiny(tmp_path, "objective.gamma=1"))
    cfg = load_recipe(QUICKSTART, tiny(tmp_path, "priors.within.name=levy3d"))
    # a renamed prior keeps its attachment (input, weight) but not the old prior's parameters
    assert dict(cfg.priors.within) == {"name": "levy3d", "input": "tokens_proj", "weight": 0.2}


def test_a_run_written_before_the_method_seam_is_refused_in_one_line(tmp_path: Path) -> None:
    """A run directory whose saved recipe still has the old ``objective`` section: resuming it
    and loading it for evaluation each fail with one line naming the moved key."""
    from levyjepa.training.trained import load_trained

    run = tmp_path / "old"
    train(load_recipe(QUICKSTART, tiny(run, "trainer.max_steps=1")))
    saved = (run / "config.yaml").read_text()
    old = saved.replace("method:\n", "objective:\n  gamma: 0.2\nmethod:\n", 1)
    (run / "config.yaml").write_text(old)
    with pytest.raises(ConfigError, match=r"^resume: .*config.yaml was written by an earlier "
                                          r"levyjepa and cannot be resumed \(start a new "
                                          r"out_dir\); its key: objective.gamma moved to "
                                          r"priors.within.weight[^\n]*$"):
        train(load_recipe(QUICKSTART, tiny(run, "trainer.max_steps=2", "resume=auto")))
    with pytest.raises(ConfigError, match=r"config.yaml was written by an earlier levyjepa.*"
                                          r"objective.gamma moved to priors.within.weight"):
        load_trained(run)


def test_lejepa_trains_with_local_views_and_other_methods_refuse_them(tmp_path: Path) -> None:
    local = ["views.local_views=3", "views.local_size=8", "trainer.max_steps=2", "log.every=1"]
    run = tmp_path / "multicrop"
    summary = train(load_recipe(QUICKSTART, tiny(run, *local)))
    assert summary["steps"] == 2
    # views per step: 4 samples x (2 global + 3 local)
    assert summary["views_per_s"] * summary["train_time_s"] == pytest.approx(2 * 4 * 5)
    assert all(e["train/inv"] > 0 for e in read_metrics(run) if "train/inv" in e)
    with pytest.raises(ConfigError, match=r"^method 'vicreg' takes no local views; set "
                                          r"views.local_views=0$"):
        train(load_recipe(QUICKSTART, tiny(tmp_path / "v", *local, "method={name: vicreg}")))
    with pytest.raises(ConfigError, match=r"method 'vicreg' needs at least 2 global views"):
        train(load_recipe(QUICKSTART, tiny(tmp_path / "w", "views.global_views=1",
                                           "method={name: vicreg}")))


@pytest.mark.parametrize("override, message", [
    ("method.lamb=2.0", "method: method 'lejepa': lamb must be in [0, 1], got 2.0"),
    ("method.kappa=-1", "method: method 'lejepa': kappa must be >= 0, got -1"),
    ("method={name: vicreg, gamma: 0}", "method: method 'vicreg': gamma must be > 0, got 0"),
    ("method.sigreg.slices=0", "method.sigreg: prior 'sigreg': sigreg: slices must be >= 1"),
])
def test_method_values_are_refused_when_the_recipe_loads(override: str, message: str,
                                                         tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_recipe(QUICKSTART, tiny(tmp_path, override))
