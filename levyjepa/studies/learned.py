"""What each arm of a study learned: its paired gain over its own untrained encoder.

A comparison of two arms answers nothing when neither arm learned anything the metric can see:
both then sit on their untrained encoder and any prior "makes no detectable difference". So the
report first asks, for every metric whose ``eval.json`` carries an ``untrained`` baseline (the
dense tasks: the recipe's freshly initialised encoder, seeded by the run's seed, scored by the
same protocol), whether each arm moved away from it. Per arm and seed,

    gain_i = arm_i - untrained_i,

paired by seed like the arms' differences (:mod:`levyjepa.studies.stats`): the seed's
initialisation is shared by the run and its baseline, so pairing removes it. Reported: the mean
gain with its Student t interval, a verdict that reads the interval ("above its untrained encoder
by X" only when the interval excludes 0, i.e. the gain exceeds what the seed-to-seed spread
allows by chance), and the smallest gain the design detects with 80% power
(:mod:`levyjepa.studies.power`).

When the study has reference arms (``--reference supervised``: the same encoder trained with
the labels for the same steps), each compared arm's gain is also given as a share of each
reference's mean gain: how much of the headroom between the untrained and the label-trained
encoder self-supervision took. The share is a ratio of means (no interval); it is left out when
the reference's own gain is not detectably above 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

from levyjepa.studies.power import smallest_detectable_difference, undefined_reason
from levyjepa.studies.stats import MIN_SEEDS, Interval, no_verdict, t_interval
from levyjepa.studies.tables import _interval_text  # the report's one interval format

__all__ = ["BASELINE", "gain_verdict", "learned_markdown", "summarize_learned"]

BASELINE = "untrained"
"""The baseline kind of ``eval.json`` the gains are taken over."""


def _amount(value: float) -> str:
    return f"{value:.4g}"


def gain_verdict(interval: Interval) -> str:
    """The verdict on an arm's mean gain over its untrained encoder, in plain words.

    Returns:
        ``"above its untrained encoder by X (95% CI [a, b])"``, ``"below ... by X (...)"`` or
        ``"no detectable gain over its untrained encoder (95% CI [a, b])"``; with fewer than
        :data:`~levyjepa.studies.stats.MIN_SEEDS` seeds :func:`~levyjepa.studies.stats.no_verdict`.
    """
    if interval.n < MIN_SEEDS:
        return no_verdict(interval.n)
    if not interval.defined:
        return "gain not finite: no verdict"
    where = (f"({interval.confidence:.0%} CI [{_amount(interval.low)}, "
             f"{_amount(interval.high)}])")
    if interval.contains(0.0):
        return f"no detectable gain over its untrained encoder {where}"
    side = "above" if interval.mean > 0 else "below"
    return f"{side} its untrained encoder by {_amount(abs(interval.mean))} {where}"


def _gains(runs: Sequence[dict[str, Any]], arm: str, seeds: Sequence[int],
           metric: str) -> list[Optional[float]]:
    """Per seed, the arm's metric minus its run's untrained baseline (``None`` if missing)."""
    by_seed: dict[int, Optional[float]] = {}
    for run in runs:
        if run["arm"] != arm:
            continue
        value = run["metrics"].get(metric)
        base = run.get("baselines", {}).get(BASELINE, {}).get(metric)
        by_seed[run["seed"]] = None if value is None or base is None else value - base
    return [by_seed.get(seed) for seed in seeds]


def summarize_learned(study: dict[str, Any]) -> dict[str, Any]:
    """Every arm's gain over its untrained encoder, per metric that has that baseline.

    Args:
        study: ``arms``, ``seeds``, ``runs`` (each with ``arm``, ``seed``, ``metrics`` and
            ``baselines``), ``metrics`` (:func:`levyjepa.studies.tables.summarize`) and,
            optionally, ``reference_arms``.

    Returns:
        metric -> ``{"arms": {arm: entry}}``, each entry the per-seed ``values`` (gains), the
        t interval's fields (``mean``, ``low``, ``high``, ``n``, ``sd``, ``confidence``),
        ``verdict`` (:func:`gain_verdict`), ``smallest_detectable_difference`` (``None`` when
        undefined, ``power_undefined`` saying why) and ``share``: reference arm -> this arm's
        mean gain over the reference's (``None`` when the reference's gain is not detectably
        positive; reference arms have no share). Metrics no run has an untrained baseline of
        are left out.
    """
    runs, seeds = study["runs"], study["seeds"]
    references = list(study.get("reference_arms") or [])
    names = [arm["name"] for arm in study["arms"]]
    out: dict[str, Any] = {}
    for metric in study.get("metrics", []):
        if not any(metric in r.get("baselines", {}).get(BASELINE, {}) for r in runs):
            continue
        arms: dict[str, Any] = {}
        for name in names:
            values = _gains(runs, name, seeds, metric)
            interval = t_interval([v for v in values if v is not None])
            why = undefined_reason(interval.sd, interval.n)
            arms[name] = {"values": values, **interval.as_dict(),
                          "verdict": gain_verdict(interval), "power_undefined": why,
                          "smallest_detectable_difference": None if why is not None
                          else smallest_detectable_difference(interval.sd, interval.n)}
        for name in names:
            shares: dict[str, Optional[float]] = {}
            if name not in references:
                for ref in references:
                    ref_entry = arms[ref]
                    positive = (ref_entry["low"] is not None and ref_entry["low"] > 0
                                and ref_entry["n"] >= MIN_SEEDS)
                    mine = arms[name]["mean"]
                    shares[ref] = (mine / ref_entry["mean"]
                                   if positive and mine is not None else None)
            arms[name]["share"] = shares
        out[metric] = {"arms": arms}
    return out


def learned_markdown(study: dict[str, Any]) -> list[str]:
    """The ``study.md`` section of :func:`summarize_learned` (``study["learned"]``): one table,
    a row per metric and arm. Empty when no metric has an untrained baseline."""
    learned = study.get("learned") or {}
    if not learned:
        return []
    references = list(study.get("reference_arms") or [])
    header = ["metric", "arm", "gain over untrained, mean [95% CI]", "per seed", "verdict",
              "smallest detectable gain",
              *(f"share of {ref}'s gain" for ref in references)]
    lines = ["## What each arm learned", "",
             "Each arm minus its own untrained encoder (the same seed's initial weights, "
             "evaluated by the same protocol), paired by seed; the verdict reads the gain's 95% "
             "t interval; the smallest detectable gain: 80% power at the 5% level under the "
             "gains' sample sd."
             + (" Share: the arm's mean gain over the reference's mean gain (a ratio of means, "
                "no interval; blank when the reference's gain is not detectably positive)."
                if references else ""), "",
             "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for metric, entry in learned.items():
        for name, arm in entry["arms"].items():
            seeds = ", ".join("—" if v is None else f"{v:+.3f}" for v in arm["values"])
            sdd = arm["smallest_detectable_difference"]
            shares = [("" if name in references or arm["share"].get(ref) is None
                       else f"{arm['share'][ref]:.0%}") for ref in references]
            cells = [metric, name + (" (reference)" if name in references else ""),
                     _interval_text(arm), seeds, arm["verdict"].rsplit(" (", 1)[0],
                     _amount(sdd) if sdd is not None else f"undefined: {arm['power_undefined']}",
                     *shares]
            lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]
