"""Learning curves of a study (:mod:`levyjepa.study` ``--eval-at``): every arm evaluated at
several steps of its training, from kept checkpoints, without training again.

With ``--eval-at 0,250,500`` each run trains with ``trainer.keep_steps=[0,250,500]``: its
checkpoints of those steps are written and never pruned (:mod:`levyjepa.training.checkpoint`;
``step_00000000`` holds the run's initial weights, written before the first step). After the
run's final evaluation (``eval.json``), each listed step is evaluated with the same arguments
plus ``checkpoint=RUN/checkpoints/step_<k> out=RUN/eval_step_<k>.json pictures=false``, exactly
what ``python -m levyjepa.eval RUN checkpoint=...`` gives by hand (pictures change no number).
A listed step that is the run's last is read from ``eval.json``: the final evaluation is of
that checkpoint; the last step is always a point of the curve. ``DIR/<arm>/seed_<s>.steps.json``
records each step's evaluation arguments: a step whose file exists and whose arguments are
this command's is skipped.

A listed step beyond a run's last step is refused in one line: before anything runs when the
recipe's ``trainer.max_steps`` is below it, else once the run's training shows its last step
(the trained run is kept; the same command with other steps goes on from there). A step that a
run already trained past without keeping its checkpoint (a run trained before ``--eval-at``
listed it) is refused before anything runs.

:func:`summarize_curves` gives ``study.json``'s ``curves``; :func:`curves_markdown` the section
of ``study.md``; the picture is :mod:`levyjepa.studies.curve_plot`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Optional

from levyjepa.core.atomic import atomic_write_json
from levyjepa.core.errors import ConfigError
from levyjepa.studies.metrics import metrics_of

# levyjepa.training.checkpoint (torch) and levyjepa.studies.stats (scipy) are imported where
# used: `python -m levyjepa.study --help` imports this module

__all__ = ["CURVES_PNG", "STEPS_SUFFIX", "check_max_steps", "curves_markdown", "evaluate_steps",
           "keep_steps_override", "passed_steps", "step_eval_args", "step_file",
           "summarize_curves"]

CURVES_PNG = "learning_curves.png"
STEPS_SUFFIX = ".steps.json"  # DIR/<arm>/seed_<s>.steps.json: the steps' evaluation arguments

Call = Callable[..., float]
"""The study's subprocess runner: ``call(args, log, *, what, run_dir) -> seconds``."""


def step_file(run_dir: Path, step: int) -> Path:
    """Where the evaluation of step ``step`` is written: ``RUN/eval_step_<step>.json``."""
    return run_dir / f"eval_step_{step}.json"


def keep_steps_override(steps: Sequence[int]) -> str:
    """The training override that keeps the checkpoints of ``steps``."""
    return f"trainer.keep_steps=[{','.join(str(s) for s in steps)}]"


def step_eval_args(eval_args: Sequence[str], run_dir: Path, step: int) -> list[str]:
    """The evaluation arguments of step ``step``: the final evaluation's (but ``pictures``),
    then its checkpoint, its own results file and no pictures (they change no number)."""
    from levyjepa.training.checkpoint import checkpoint_path

    return [*(a for a in eval_args if a.split("=", 1)[0].strip() != "pictures"),
            f"checkpoint={checkpoint_path(run_dir, step)}", f"out={step_file(run_dir, step)}",
            "pictures=false"]


def check_max_steps(steps: Sequence[int], max_steps: Optional[int], arm: str) -> None:
    """Refuse steps beyond an arm's ``trainer.max_steps`` (none: its epochs decide).

    Raises:
        ConfigError: naming the steps and the arm.
    """
    beyond = [s for s in steps if max_steps is not None and s > max_steps]
    if beyond:
        raise ConfigError(f"--eval-at: step(s) {', '.join(map(str, beyond))} beyond the last "
                          f"step of arm {arm} (trainer.max_steps={max_steps})")


def _record(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def _done(record: dict[str, Any], run_dir: Path, step: int, args: Sequence[str]) -> bool:
    entry = record.get(str(step))
    return bool(entry) and entry.get("eval") == list(args) and step_file(run_dir, step).is_file()


def passed_steps(run_dir: Path, steps: Sequence[int], record_path: Path,
                 eval_args: Sequence[str]) -> list[int]:
    """Listed steps the run in ``run_dir`` trained past without keeping their checkpoint and
    that are not evaluated yet: no training can give them back."""
    from levyjepa.training.checkpoint import (
        STATE_FILE,
        checkpoint_path,
        checkpoint_step,
        list_checkpoints,
    )

    found = list_checkpoints(run_dir)
    if not found:
        return []
    last, record = checkpoint_step(found[-1]), _record(record_path)
    return [s for s in steps if s < last
            and not (checkpoint_path(run_dir, s) / STATE_FILE).is_file()
            and not _done(record, run_dir, s, step_eval_args(eval_args, run_dir, s))]


def evaluate_steps(call: Call, *, run_dir: Path, log: Path, record_path: Path,
                   steps: Sequence[int], eval_args: Sequence[str], final: dict[str, Any],
                   who: str) -> dict[str, Any]:
    """Evaluate a trained run at each of ``steps`` unless done; returns its curve.

    Args:
        call: Runs ``python -m levyjepa.eval ...`` (the study's runner).
        run_dir: The run.
        log: The run's log, where the evaluations' output goes.
        record_path: The run's ``.steps.json``.
        steps: The steps to evaluate (``--eval-at``).
        eval_args: The final evaluation's arguments.
        final: The run's ``eval.json`` (its last step and that step's values).
        who: ``seed S arm X``, in the printed lines.

    Returns:
        ``curve`` (step, as text, -> metric -> value; the last step included) and
        ``steps_eval_s`` (the seconds the steps' evaluations took, earlier ones included).

    Raises:
        ConfigError: a step beyond the run's last step, or one without its checkpoint.
    """
    from levyjepa.training.checkpoint import STATE_FILE, checkpoint_path

    last = final.get("step")
    if not isinstance(last, int):
        raise ConfigError(f"{run_dir / 'eval.json'}: no step; evaluate the run again")
    beyond = [s for s in steps if s > last]
    if beyond:
        raise ConfigError(f"--eval-at: step(s) {', '.join(map(str, beyond))} beyond the last "
                          f"step of {run_dir} ({last}); give steps up to {last} (the run is "
                          "kept: the same command with those steps goes on from it)")
    record, seconds = _record(record_path), 0.0
    curve: dict[int, dict[str, float]] = {last: metrics_of(final)}
    for step in (s for s in steps if s != last):
        args = step_eval_args(eval_args, run_dir, step)
        if _done(record, run_dir, step, args):
            print(f"study: {who}: step {step}: done, skipped", flush=True)
        else:
            if not (checkpoint_path(run_dir, step) / STATE_FILE).is_file():
                raise ConfigError(f"{run_dir}: no checkpoint of step {step} "
                                  f"({checkpoint_path(run_dir, step)}): the run was trained "
                                  "past it without keeping it; remove the run folder to train "
                                  "it again, or leave that step out of --eval-at")
            took = call(["levyjepa.eval", str(run_dir), *args], log,
                        what=f"evaluation at step {step}", run_dir=run_dir)
            record[str(step)] = {"eval": args, "eval_s": took}
            atomic_write_json(record_path, record)
            print(f"study: {who}: step {step} evaluated in {took:.1f} s", flush=True)
        seconds += record[str(step)]["eval_s"]
        curve[step] = metrics_of(json.loads(step_file(run_dir, step).read_text()))
    return {"curve": {str(s): curve[s] for s in sorted(curve)}, "steps_eval_s": seconds}


def summarize_curves(study: dict[str, Any]) -> dict[str, Any]:
    """``study.json``'s ``curves``: the learning curves of the runs so far.

    Args:
        study: The study with its runs (each with a ``curve``) and the fields of
            :func:`levyjepa.studies.tables.summarize`.

    Returns:
        ``eval_at``; ``reference_arms``; ``steps`` (every step with a value, sorted);
        ``values``: arm -> seed -> metric -> step -> value; ``summary``: metric -> arm -> step
        -> the mean and 95% t interval across seeds (:func:`levyjepa.studies.stats.t_interval`);
        ``baselines``: metric -> kind (``untrained``, ``pixels``) -> arm -> mean across seeds,
        from ``eval.json``, the reference lines. Steps are text keys (JSON's), the metrics
        those of every run (``study["metrics"]``).
    """
    from levyjepa.studies.stats import t_interval

    metrics = study["metrics"]
    values: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    steps: set[int] = set()
    for run in study["runs"]:
        per_metric = {m: {s: point[m] for s, point in run.get("curve", {}).items() if m in point}
                      for m in metrics}
        values.setdefault(run["arm"], {})[str(run["seed"])] = per_metric
        steps.update(int(s) for s in run.get("curve", {}))
    summary: dict[str, Any] = {}
    for metric in metrics:
        summary[metric] = {}
        for arm, by_seed in values.items():
            at: dict[str, Any] = {}
            for step in sorted(steps):
                found = [v[metric][str(step)] for v in by_seed.values()
                         if str(step) in v.get(metric, {})]
                if found:
                    at[str(step)] = t_interval(found).as_dict()
            summary[metric][arm] = at
    return {"eval_at": list(study.get("eval_at", [])),
            "reference_arms": list(study.get("reference_arms", [])),
            "steps": sorted(steps), "values": values, "summary": summary,
            "baselines": {m: study["results"][m]["baselines"] for m in metrics}}


def _mean(entry: Optional[dict[str, Any]]) -> str:
    if entry is None or entry.get("mean") is None:
        return "—"
    return f"{entry['mean']:.4g}" + (f" (n={entry['n']})" if entry["n"] < 2 else "")


def curves_markdown(study: dict[str, Any]) -> list[str]:
    """The ``## Learning curves`` section of ``study.md``: the picture and, per metric, the mean
    across seeds of every arm at every step, with the baselines below."""
    from levyjepa.studies.tables import BASELINE_LABELS

    curves, arms = study["curves"], study["arms"]
    references = set(curves["reference_arms"])
    text = ["## Learning curves", "",
            f"Every run evaluated at steps {', '.join(map(str, curves['eval_at']))} "
            "(`--eval-at`, from its kept checkpoints; step 0: its initial weights) and at its "
            "last step (the final evaluation). Mean across seeds; the 95% t intervals are the "
            "picture's bands and in `study.json` (`curves`)"
            + (f"; {', '.join(sorted(references))}: reference, not compared" if references
               else "") + ".", "", f"![learning curves]({CURVES_PNG})", ""]
    for metric in study["metrics"]:
        summary = curves["summary"][metric]
        header = ["step", *(a["name"] + (" (reference)" if a["name"] in references else "")
                            for a in arms)]
        text += [f"### {metric} against steps", "", "| " + " | ".join(header) + " |",
                 "|---" * len(header) + "|"]
        for step in curves["steps"]:
            cells = [str(step), *(_mean(summary.get(a["name"], {}).get(str(step)))
                                  for a in arms)]
            text.append("| " + " | ".join(cells) + " |")
        text.append("")
        for kind, by_arm in curves["baselines"][metric].items():
            shown = ", ".join(f"{arm} {v:.4g}" for arm, v in by_arm.items())
            text.append(f"- {BASELINE_LABELS.get(kind, kind)} (mean across seeds): {shown}")
        if curves["baselines"][metric]:
            text.append("")
    return text
