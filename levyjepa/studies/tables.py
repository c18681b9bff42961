"""The report of a study (:mod:`levyjepa.study`): its statistics and ``study.md``.

:func:`summarize` turns the study's runs (one entry per arm and seed, with the metrics and
baselines of its ``eval.json``) into per-metric statistics (:mod:`levyjepa.studies.stats`): per
arm, and per compared pair of arms (``study["compare"]``, ``X - Y`` each; a two-arm study
compares B with A), with the smallest difference each paired design detects and, given
``study["target_difference"]``, the seeds it would need (:mod:`levyjepa.studies.power`);
:func:`study_markdown` writes them, atomically (``study.png``: :mod:`levyjepa.studies.plot`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from levyjepa.core.atomic import atomic_write_text
from levyjepa.studies.power import (
    MAX_SEEDS,
    POWER,
    seeds_needed,
    smallest_detectable_difference,
    undefined_reason,
)
from levyjepa.studies.stats import MIN_SEEDS, Interval, paired_difference, t_interval, verdict

__all__ = ["BASELINE_LABELS", "seed_warning", "study_markdown", "summarize"]

BASELINE_LABELS = {"untrained": "untrained", "pixels": "raw pixels"}
"""How each kind of baseline of ``eval.json`` is labelled (other kinds: their own name)."""



def _num(value: Optional[float]) -> str:
    """Four significant digits (0 for rounding residue below 1e-12); ``—`` when missing or
    not finite."""
    if value is None or not math.isfinite(value):
        return "—"
    if abs(value) < 1e-12:  # rounding residue of equal values (a difference of 0)
        value = 0.0
    return f"{value:.4g}"


def _values(runs: Sequence[dict[str, Any]], arm: str, seeds: Sequence[int],
            metric: str) -> list[Optional[float]]:
    """The metric of ``arm`` per seed (``None`` where that run is not there yet)."""
    by_seed = {r["seed"]: r["metrics"].get(metric) for r in runs if r["arm"] == arm}
    return [by_seed.get(seed) for seed in seeds]


def compared_pairs(study: dict[str, Any]) -> list[tuple[str, str]]:
    """The ``(X, Y)`` arm names of the study's differences ``X - Y`` (default: every arm after
    the first minus the first; reference arms, ``study["reference_arms"]``, never)."""
    references = study.get("reference_arms") or []
    names = [arm["name"] for arm in study["arms"] if arm["name"] not in references]
    pairs = study.get("compare") or [[name, names[0]] for name in names[1:]]
    return [(x, y) for x, y in pairs]


def _detectability(interval: Interval, target: Optional[float]) -> dict[str, Any]:
    """A compared pair's power fields: ``smallest_detectable_difference`` (``None`` when
    undefined, ``power_undefined`` then saying why) and, given a ``target`` difference,
    ``seeds_to_detect`` (``None`` when undefined or beyond :data:`MAX_SEEDS`) with its text."""
    why = undefined_reason(interval.sd, interval.n)
    fields: dict[str, Any] = {"smallest_detectable_difference": None, "power_undefined": why}
    if why is None:
        fields["smallest_detectable_difference"] = smallest_detectable_difference(
            interval.sd, interval.n)
    if target is not None:
        seeds = math.nan if why is not None else seeds_needed(target, interval.sd)
        fields["seeds_to_detect"] = int(seeds) if math.isfinite(seeds) else None
        fields["seeds_to_detect_text"] = (
            f"undefined: {why}" if why is not None else f"more than {MAX_SEEDS}"
            if math.isinf(seeds) else f"{seeds} (a verdict needs {MIN_SEEDS})"
            if seeds < MIN_SEEDS else str(seeds))
    return fields


def summarize(study: dict[str, Any]) -> dict[str, Any]:
    """The statistics of a study's runs so far.

    Args:
        study: ``arms`` (each with a ``name``), ``seeds``, ``runs`` (each with ``arm``,
            ``seed``, ``metrics``, ``baselines``, ``train_s``, ``eval_s``) and, optionally,
            ``compare`` (the ``[X, Y]`` pairs, :func:`compared_pairs`).

    Returns:
        ``metrics`` (the slash keys found in every run, sorted), ``missing_metrics`` (found in
        some runs only), ``total_run_s`` (the wall time of all runs) and ``results``: per
        metric, per arm its per-seed ``values`` and t interval; ``comparisons``, per compared
        pair ``X - Y``: ``b`` (X), ``a`` (Y), the paired difference's per-seed ``values``
        (seeds where both arms ran) and interval, and its ``verdict``; ``difference`` and
        ``verdict``, those of the first pair (B - A in a two-arm study); and the
        ``baselines`` (kind -> arm -> mean across seeds). Each pair also has
        ``smallest_detectable_difference`` (80% power, 5% level, under the differences' sample
        sd; ``None`` when undefined, ``power_undefined`` saying why) and, when ``study`` has a
        ``target_difference``, ``seeds_to_detect`` and ``seeds_to_detect_text``; the settings
        are in ``power_analysis``. ``learned``: every arm's gain over its own untrained
        encoder (:func:`levyjepa.studies.learned.summarize_learned`).
    """
    runs, seeds = study["runs"], study["seeds"]
    names = [arm["name"] for arm in study["arms"]]
    pairs = compared_pairs(study)
    target = study.get("target_difference")
    found = [set(r["metrics"]) for r in runs]
    metrics = sorted(set.intersection(*found)) if found else []
    results: dict[str, Any] = {}
    for metric in metrics:
        entry: dict[str, Any] = {"arms": {}, "comparisons": []}
        per_arm = {name: _values(runs, name, seeds, metric) for name in names}
        for name, values in per_arm.items():
            present = [v for v in values if v is not None]
            entry["arms"][name] = {"values": values, **t_interval(present).as_dict()}
        for name_b, name_a in pairs:
            both = [(a, b) for a, b in zip(per_arm[name_a], per_arm[name_b])
                    if a is not None and b is not None]
            _, interval = paired_difference([a for a, _ in both], [b for _, b in both])
            entry["comparisons"].append({
                "b": name_b, "a": name_a,
                "values": [b - a if a is not None and b is not None else None
                           for a, b in zip(per_arm[name_a], per_arm[name_b])],
                **interval.as_dict(), "verdict": verdict(interval, name_b=name_b),
                **_detectability(interval, target)})
        first = entry["comparisons"][0]
        entry["difference"] = {k: v for k, v in first.items() if k not in ("a", "b", "verdict")}
        entry["verdict"] = first["verdict"]
        baselines: dict[str, dict[str, list[float]]] = {}
        for run in runs:
            for kind, values in run["baselines"].items():
                if metric in values:
                    baselines.setdefault(kind, {}).setdefault(run["arm"], []).append(values[metric])
        entry["baselines"] = {kind: {arm: math.fsum(v) / len(v) for arm, v in by_arm.items()}
                              for kind, by_arm in baselines.items()}
        results[metric] = entry
    times = [r[k] for r in runs for k in ("train_s", "eval_s", "steps_eval_s")
             if r.get(k) is not None]
    from levyjepa.studies.learned import summarize_learned

    return {"learned": summarize_learned({**study, "metrics": metrics}),
            "metrics": metrics, "missing_metrics": sorted(set.union(*found) - set(metrics))
            if found else [], "results": results, "total_run_s": math.fsum(times),
            "power_analysis": {"power": POWER, "alpha": 0.05, "target_difference": target,
                               "max_seeds": MAX_SEEDS}}


def _all_equal(entry: dict[str, Any]) -> bool:
    """Whether a defined interval has zero width: every seed gave the same value (up to
    rounding residue), so the interval estimates no spread at all."""
    low, high = entry["low"], entry["high"]
    return (low is not None and high is not None
            and high - low <= 1e-12 * max(1.0, abs(entry["mean"])))


def _interval_text(entry: dict[str, Any]) -> str:
    """``mean [low, high]``; ``mean (n=1, ...)`` when the interval is undefined, ``mean (n=2,
    all equal: ...)`` when it has zero width (not shown as an interval: it is not one)."""
    if entry["low"] is None or entry["high"] is None:
        return f"{_num(entry['mean'])} (n={entry['n']}, interval undefined)"
    if _all_equal(entry):
        return f"{_num(entry['mean'])} (n={entry['n']}, all equal: no interval)"
    return f"{_num(entry['mean'])} [{_num(entry['low'])}, {_num(entry['high'])}]"


def _compact(entry: dict[str, Any]) -> str:
    """Like :func:`_interval_text`, shorter when undefined or all equal (for a panel's title)."""
    if entry["low"] is None or entry["high"] is None:
        return f"{_num(entry['mean'])} (n={entry['n']})"
    if _all_equal(entry):
        return f"{_num(entry['mean'])} (n={entry['n']}, all equal)"
    return _interval_text(entry)


def seed_warning(study: dict[str, Any]) -> Optional[str]:
    """One line when the study has fewer than :data:`MIN_SEEDS` seeds (no verdicts), else
    ``None``; it names the metrics whose values were equal on every seed, if any.

    Args:
        study: The study with its :func:`summarize` fields.
    """
    n = len(study["seeds"])
    if n >= MIN_SEEDS:
        return None
    text = (f"{n} seed{'' if n == 1 else 's'} per arm: no verdicts, at least {MIN_SEEDS} "
            f"seeds are needed (--seeds {MIN_SEEDS})")
    if n < 2:
        return text + "; no intervals either"
    equal = [m for m in study["metrics"]
             if any(_all_equal(e) for e in study["results"][m]["arms"].values())]
    text += "; with 2 seeds a 95% interval is 12.7 standard errors wide"
    if equal:
        shown = ", ".join(equal[:3]) + (", ..." if len(equal) > 3 else "")
        text += (f"; {len(equal)} metric(s) gave one value on every seed ({shown}): no spread, "
                 "no interval")
    return text


def _detectable(comparison: dict[str, Any]) -> str:
    """The smallest detectable difference of a compared pair, or why it is undefined."""
    value = comparison.get("smallest_detectable_difference")
    if value is not None:
        return _num(value)
    return f"undefined: {comparison.get('power_undefined') or 'no values'}"


def _sentence(comparison: dict[str, Any]) -> str:
    """The verdict with what the study can detect, inside the interval's parentheses: ``no
    detectable difference (95% CI [a, b]; this study detects differences of X or more)``; below
    :data:`MIN_SEEDS` seeds (no verdict), the verdict alone."""
    text = comparison["verdict"]
    if comparison["n"] < MIN_SEEDS or not text.endswith("])"):
        return text
    value = comparison.get("smallest_detectable_difference")
    clause = (f"this study detects differences of {_num(value)} or more" if value is not None
              else f"smallest detectable difference {_detectable(comparison)}")
    return f"{text[:-1]}; {clause})"


def _target_heading(study: dict[str, Any]) -> Optional[str]:
    """``seeds to detect X`` when the study was given ``--target-difference X``, else ``None``."""
    target = study.get("target_difference")
    return None if target is None else f"seeds to detect {_num(target)}"


def _arm_heading(arm: dict[str, Any]) -> str:
    return f"{arm['name']} ({arm['label']})"


def _metric_section(study: dict[str, Any], metric: str) -> list[str]:
    entry = study["results"][metric]
    arms, comparisons = study["arms"], entry["comparisons"]
    header = ["seed", *(_arm_heading(arm) for arm in arms),
              *(f"{c['b']} - {c['a']}" for c in comparisons)]
    lines = [f"### {metric}", "", "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for i, seed in enumerate(study["seeds"]):
        cells = [str(seed), *(_num(entry["arms"][a["name"]]["values"][i]) for a in arms),
                 *(_num(c["values"][i]) for c in comparisons)]
        lines.append("| " + " | ".join(cells) + " |")
    cells = ["mean [95% CI]", *(_interval_text(entry["arms"][a["name"]]) for a in arms),
             *(_interval_text(c) for c in comparisons)]
    lines.append("| " + " | ".join(cells) + " |")
    rows = [("smallest detectable difference", [_detectable(c) for c in comparisons])]
    if (heading := _target_heading(study)) is not None:
        rows.append((heading, [c["seeds_to_detect_text"] for c in comparisons]))
    for label, texts in rows:
        lines.append("| " + " | ".join([label, *([""] * len(arms)), *texts]) + " |")
    lines.append("")
    if len(comparisons) == 1:
        lines += [f"Verdict: {_sentence(comparisons[0])}.", ""]
    else:
        lines += [f"- {c['b']} - {c['a']}: {_sentence(c)}." for c in comparisons] + [""]
    for kind, by_arm in entry["baselines"].items():
        values = ", ".join(f"{arm} {_num(v)}" for arm, v in by_arm.items())
        lines.append(f"- baseline {BASELINE_LABELS.get(kind, kind)} (mean across seeds): "
                     f"{values}")
    return lines + ([""] if entry["baselines"] else [])


def _within(where: str, report: Path) -> str:
    """``where`` relative to the report's folder when it lies inside it."""
    try:
        return str(Path(where).relative_to(report.parent))
    except ValueError:
        return where


def study_markdown(study: dict[str, Any], path: Path) -> str:
    """Write ``study.md`` (atomically) and return its text.

    Args:
        study: The study with its :func:`summarize` fields.
        path: The file to write.
    """
    arms, seeds = study["arms"], study["seeds"]
    pairs, references = compared_pairs(study), set(study.get("reference_arms", []))
    if len(arms) == 2:
        title = f"# Study: does {_arm_heading(arms[1])} beat {_arm_heading(arms[0])}?"
    else:
        title = "# Study: " + ", ".join(_arm_heading(a) for a in arms)
    shown = ", ".join(f"{x} - {y}" for x, y in pairs)
    text = [title, "",
            f"{len(seeds)} seed(s) ({', '.join(map(str, seeds))}) per arm, paired by seed. "
            "Per arm: mean and 95% Student t interval across seeds (n - 1 degrees of freedom). "
            f"{shown}: the per-seed difference, its mean and its own t interval; "
            "the verdict reads that interval (\"no detectable difference\" when it contains 0). "
            "Smallest detectable difference: the true difference this paired t-test (two-sided, "
            "5% level) detects with 80% power, given the sample sd of the per-seed differences"
            + (f"; seeds to detect {_num(study['target_difference'])}: the paired seeds that "
               "detect that true difference with 80% power, under the same sd"
               if study.get("target_difference") is not None else "") + ".",
            "", "Command:", "", "```bash", study["command"], "```", "", "Arms:", ""]
    for arm in arms:
        extra = " ".join(f"`{o}`" for o in arm["overrides"])
        text.append(f"- {arm['name']}: `{arm['recipe']}`" + (f", with {extra}" if extra else "")
                    + (" (reference: not compared)" if arm["name"] in references else ""))
    if study["overrides"]:
        text.append(("- both: " if len(arms) == 2 else "- every arm: ")
                    + " ".join(f"`{o}`" for o in study["overrides"]))
    text.append("- evaluation: " + " ".join(f"`{o}`" for o in study["eval"]))
    warning = seed_warning(study)
    if warning is not None:  # never with MIN_SEEDS seeds or more: those reports are unchanged
        text += ["", f"Warning: {warning}."]
    text += ["", "## Summary", ""]
    if not study["metrics"]:
        text += ["No metric yet.", ""]
    elif len(pairs) == 1:
        (name_b, name_a), = pairs
        header = ["metric", *(f"{_arm_heading(a)} mean [95% CI]" for a in arms),
                  f"{name_b} - {name_a} [95% CI]", "verdict", "smallest detectable difference",
                  *([target] if (target := _target_heading(study)) else [])]
        text += ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
        for metric in study["metrics"]:
            entry = study["results"][metric]
            first = entry["comparisons"][0]
            cells = [metric, *(_interval_text(entry["arms"][a["name"]]) for a in arms),
                     _interval_text(entry["difference"]), _short(entry["verdict"]),
                     _detectable(first), *([first["seeds_to_detect_text"]] if target else [])]
            text.append("| " + " | ".join(cells) + " |")
        text.append("")
    else:  # one table of the arms, one of the compared pairs
        header = ["metric", *(f"{_arm_heading(a)} mean [95% CI]" for a in arms)]
        text += ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
        for metric in study["metrics"]:
            entry = study["results"][metric]
            cells = [metric, *(_interval_text(entry["arms"][a["name"]]) for a in arms)]
            text.append("| " + " | ".join(cells) + " |")
        target = _target_heading(study)
        header = ["metric", *(f"{x} - {y} [95% CI]: verdict" for x, y in pairs),
                  *(f"{x} - {y}: smallest detectable difference" for x, y in pairs),
                  *(f"{x} - {y}: {target}" for x, y in pairs if target)]
        text += ["", "| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
        for metric in study["metrics"]:
            comparisons = study["results"][metric]["comparisons"]
            cells = [metric, *(f"{_interval_text(c)}: {_short(c['verdict'])}"
                               for c in comparisons),
                     *(_detectable(c) for c in comparisons),
                     *(c["seeds_to_detect_text"] for c in comparisons if target)]
            text.append("| " + " | ".join(cells) + " |")
        text.append("")
    if study["missing_metrics"]:
        text += [f"Not in every run, left out: {', '.join(study['missing_metrics'])}.", ""]
    from levyjepa.studies.learned import learned_markdown

    text += learned_markdown(study)
    text += ["## Per metric", ""]
    for metric in study["metrics"]:
        text += _metric_section(study, metric)
    if study.get("curves"):
        from levyjepa.studies.curves import curves_markdown

        text += curves_markdown(study)
    text += ["## Runs", "", "Folders relative to this file's.", "",
             "| arm | seed | run folder | training s | evaluation s | log |",
             "|---|---|---|---|---|---|"]
    for run in study["runs"]:
        done = " (earlier, skipped now)" if run["skipped"] else ""
        text.append(f"| {run['arm']} | {run['seed']} | `{_within(run['run_dir'], path)}`{done} | "
                    f"{_num(run['train_s'])} | {_num(run['eval_s'])} | "
                    f"`{_within(run['log'], path)}` |")
    text += ["", f"Wall time of all runs: {study['total_run_s']:.1f} s; of this invocation: "
             f"{study.get('wall_s', 0.0):.1f} s. Plot: `study.png`; every value: `study.json`.",
             ""]
    joined = "\n".join(text)
    atomic_write_text(path, joined)
    return joined


def _short(text: str) -> str:
    """The verdict without its interval (for a panel's title)."""
    return text.rsplit(" (", 1)[0] if text.endswith("])") else text
