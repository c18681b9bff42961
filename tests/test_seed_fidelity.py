"""``priors.within.graph_at_zero_weight``: the seed's ``gamma = 0`` graph, exactly (issue 12,
item 11; the option was ``objective.within_in_loss`` before the method seam).

With ``gamma = 0`` (``priors.within.weight``) the seed still adds ``gamma * within`` to its loss,
so the token projector gets gradients that are exactly zero and AdamW's decoupled weight decay
multiplies it by ``1 - lr_t * weight_decay`` at every step (its moments stay zero: no other
update). Every other parameter gets the same gradient as without the option, so ``test/acc``
cannot change.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tiny_overrides import tiny_quickstart

from levyjepa.config.recipe import load_recipe
from levyjepa.run import main
from levyjepa.training.checkpoint import list_checkpoints

ROOT = Path(__file__).resolve().parents[1]
TINY = tiny_quickstart(train=12, extra=[
    "priors.within.name=levy2d", "priors.within.weight=0", "trainer.epochs=2",
    "optim.weight_decay=0.3", "optim.warmup_epochs=0", "optim.net_lr_bs256=0.05"])


def _run(out: Path, graph_at_zero_weight: bool) -> tuple[dict[str, torch.Tensor], list[dict]]:
    assert main([str(ROOT / "recipes" / "quickstart.yaml"), *TINY, f"out_dir={out}",
                 f"priors.within.graph_at_zero_weight={str(graph_at_zero_weight).lower()}"]) == 0
    weights = load_file(str(list_checkpoints(out)[-1] / "model.safetensors"))
    events = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return weights, events


def test_graph_at_zero_weight_decays_the_token_projector_by_the_adamw_factor_only(
        tmp_path: Path) -> None:
    plain, plain_events = _run(tmp_path / "plain", graph_at_zero_weight=False)
    seed, seed_events = _run(tmp_path / "seed", graph_at_zero_weight=True)
    lrs = [e["train/lr"] for e in plain_events if "train/lr" in e]
    assert len(lrs) == 6  # 12 images / batch 4 = 3 steps per epoch, 2 epochs
    factor = 1.0
    for lr in lrs:  # the logged rate is the one the step applied
        factor *= 1.0 - lr * 0.3
    assert factor < 0.995  # the test can see a decay
    projector = [k for k in plain if ".tokens_proj." in k]
    assert projector
    for key in plain:
        if key in projector:  # without the option the projector keeps its initial weights
            torch.testing.assert_close(seed[key], plain[key] * factor, rtol=1e-6, atol=1e-9)
        else:
            assert torch.equal(seed[key], plain[key]), key
    # every logged number, test/acc included, is the same, but within (it reads the decayed
    # projector) and the gradient norm (the projector's zero gradients change the order of its
    # float sum: equal to rounding)
    for a, b in zip(plain_events, seed_events):
        assert a.keys() == b.keys()
        skip = ("train/within", "train/grad_norm")
        assert all(a[k] == b[k] for k in a if k not in skip), [
            (k, a[k], b[k]) for k in a if a[k] != b[k]]
        if "train/grad_norm" in a:
            assert b["train/grad_norm"] == pytest.approx(a["train/grad_norm"], rel=1e-6)
    within = [(a["train/within"], b["train/within"]) for a, b in zip(plain_events, seed_events)
              if "train/within" in a]
    assert within[0][0] == within[0][1] and within[-1][0] != within[-1][1]
    assert any("test/acc" in e for e in seed_events)


@pytest.mark.parametrize("name", ["image_baseline", "image_levy2d", "image_noinv_baseline",
                                  "image_noinv_levy2d"])
def test_the_seed_recipes_reproduce_the_seed_graph(name: str) -> None:
    assert load_recipe(ROOT / "recipes" / f"{name}.yaml").priors.within.graph_at_zero_weight is True
