"""Does arm B beat arm A? Train and evaluate two recipes (or more) over seeds, paired by seed.

Usage::

    python -m levyjepa.study RECIPE_A RECIPE_B [RECIPE_C ...] [--seeds N] [--first-seed S]
        [--tasks a,b,...] [--out DIR] [--names NAME_A,NAME_B,...] [--a key=value ...]
        [--b key=value ...] [--compare B:A ...] [--target-difference X] [--eval key=value ...]
        [key=value ...]

With more than two recipes every arm is compared with arm A (the first) unless ``--compare
X:Y`` (repeatable) names the pairs to compare, ``X - Y`` each (``--compare vjepa_levy3d:vjepa``
asks whether a prior helps that method); positional arguments of the form ``key=value`` are
the overrides, the others the recipes.

For each seed ``s`` from ``S`` to ``S + N - 1`` (defaults 0 and 3) and each arm, in that order
(seed 0 of A, seed 0 of B, seed 1 of A, ...), the study trains

    python -m levyjepa.run RECIPE seed=s out_dir=DIR/<arm>/seed_<s> resume=auto [overrides]

then evaluates ``python -m levyjepa.eval DIR/<arm>/seed_<s> progress=false [task=a,b,...]
[--eval settings]`` and reads its ``eval.json``. Both subprocesses write their output to
``DIR/<arm>/seed_<s>.log``. Plain ``key=value`` arguments are training overrides of every arm;
``--a`` / ``--b`` (repeatable) are overrides of arm A or B only, so one recipe file can serve
both arms. Arms are called ``A``, ``B``, ``C``, ... (``--names`` to rename them; folder names
too) and are labelled with their recipe file stems. ``DIR`` defaults to
``runs/study_<stemA>_vs_<stemB>`` (``_vs_<stemC>`` ... with more arms).

After every run, ``DIR/study.json`` (every per-seed value, atomically), ``DIR/study.md`` (per
metric: each arm's mean and 95% Student t interval across seeds, the per-seed values, the
paired difference B - A with its own interval, a verdict, the baselines of ``eval.json``; the
wall time of every run) and ``DIR/study.png`` (one panel per metric) are rewritten; the
statistics are :mod:`levyjepa.studies.stats`, the report :mod:`levyjepa.studies.tables`. Below 3
seeds there is no verdict, and the study ends with one warning line on stderr. Beside each
verdict, the smallest difference the paired design detects with 80% power at the 5% level under
the measured spread of the per-seed differences; ``--target-difference X`` adds how many paired
seeds would detect a true difference ``X`` (:mod:`levyjepa.studies.power`).

The same command resumes an interrupted study: a run whose ``eval.json`` exists and whose
training and evaluation arguments are those of this command is skipped; any other continues
from its latest checkpoint (``resume=auto``) and is evaluated again. A run folder that holds a
run of another recipe is refused before anything runs.

Examples::

    # Lévy 2D prior (gamma 0.2, the recipe's) against none, 3 seeds of the quickstart
    python -m levyjepa.study recipes/quickstart.yaml recipes/quickstart.yaml \\
        --names no_prior,levy --a priors.within.weight=0
    # a tiny CPU check of the whole pipeline (2 steps per run, about 75 s on 2 cores)
    python -m levyjepa.study recipes/quickstart.yaml recipes/quickstart.yaml --seeds 2 \\
        --out /tmp/study --b priors.within.weight=1 --eval pictures=false trainer.max_steps=2 \\
        data.train_size=16 data.test_size=8 data.batch_size=4 data.workers=0 \\
        log.trackers=[] log.first_look=false log.pictures=false

Errors in the command line or a recipe are printed as one line, exit status 2; a training or
evaluation that fails stops the study with one line naming the run folder and its log, exit
status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from levyjepa.core.atomic import atomic_write_json
from levyjepa.core.cli_help import HelpFormatter
from levyjepa.core.errors import ConfigError
from levyjepa.studies.metrics import baselines_of, metrics_of

__all__ = ["Arm", "RunFailed", "baselines_of", "main", "metrics_of", "run_study"]

STUDY_JSON, STUDY_MD, STUDY_PNG = "study.json", "study.md", "study.png"
RECORD_SUFFIX = ".record.json"  # DIR/<arm>/seed_<s>.record.json: a finished run's arguments
_RESERVED_TRAIN = ("seed", "out_dir", "resume", "overwrite")  # set per run by the study
_RESERVED_EVAL = ("out", "untrained", "task")  # eval.json must land in the run; task: --tasks
_ABSENT = "(absent)"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class RunFailed(Exception):
    """A training or evaluation subprocess failed; the message is one line."""


@dataclass(frozen=True)
class Arm:
    """One arm of the study.

    Attributes:
        name: Its name (``A``, ``B`` or ``--names``), also its folder under ``DIR``.
        recipe: The recipe file.
        overrides: This arm's own overrides (``--a`` / ``--b``), applied after the common ones.
    """

    name: str
    recipe: Path
    overrides: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """The recipe file's stem, shown beside the name."""
        return self.recipe.stem


def _check_items(items: Sequence[str], reserved: Sequence[str], where: str) -> None:
    for item in items:
        key = item.split("=", 1)[0].strip()
        if "=" not in item or not key:
            raise ConfigError(f"{where} {item!r} is not of the form key=value")
        if key in reserved:
            raise ConfigError(f"{where} '{item}': {', '.join(reserved)} are set by the study")


def _planned_differences(arm: Arm, seed: int, run_dir: Path, common: Sequence[str]) -> list[str]:
    """Keys in which the run in ``run_dir`` differs from the recipe it would resume with.

    Raises:
        ConfigError: from the recipe (a bad key or value in an override).
    """
    from omegaconf import OmegaConf

    from levyjepa.config.recipe import load_recipe
    from levyjepa.training.run_dir import MAY_CHANGE_ON_RESUME, flatten_recipe

    cfg = load_recipe(arm.recipe, [*_train_settings(seed, run_dir), *common, *arm.overrides])
    if not (run_dir / "config.yaml").is_file():
        return []
    now = flatten_recipe(OmegaConf.to_container(cfg))
    saved = flatten_recipe(OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml")))
    allowed = [*MAY_CHANGE_ON_RESUME, *(f"{k}." for k in cfg.resume_changes), *cfg.resume_changes]
    return [f"{k}: {saved.get(k, _ABSENT)!r} -> {now.get(k, _ABSENT)!r}"
            for k in sorted(set(now) | set(saved))
            if saved.get(k, _ABSENT) != now.get(k, _ABSENT)
            and not any(k == a or (a.endswith(".") and k.startswith(a)) for a in allowed)]


def _config_digest(arm: Arm, seed: int, run_dir: Path, common: Sequence[str]) -> str:
    """SHA-256 of the resolved recipe a run trains with: an edit of the recipe file (even of a
    key that may change on resume, such as ``trainer.max_steps``) makes a finished run stale."""
    import hashlib

    from omegaconf import OmegaConf

    from levyjepa.config.recipe import load_recipe

    cfg = load_recipe(arm.recipe, [*_train_settings(seed, run_dir), *common, *arm.overrides])
    return hashlib.sha256(OmegaConf.to_yaml(cfg, sort_keys=True).encode()).hexdigest()


def _train_settings(seed: int, run_dir: Path) -> list[str]:
    return [f"seed={seed}", f"out_dir={run_dir}", "resume=auto"]


def _last_line(log: Path) -> str:
    with open(log, "rb") as f:
        f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
        lines = [ln.strip() for ln in f.read().decode("utf-8", "replace").splitlines()]
    last = next((ln for ln in reversed(lines) if ln), "(no output)")
    return last if len(last) <= 300 else last[:297] + "..."


def _call(args: Sequence[str], log: Path, *, what: str, run_dir: Path) -> float:
    """Run ``python -m ARGS`` with its output appended to ``log``; returns its wall time."""
    command = [sys.executable, "-m", *args]
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as out:
        out.write(f"$ {shlex.join(command)}\n")
        out.flush()
        started = time.perf_counter()
        status = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL).returncode
    if status != 0:
        raise RunFailed(f"{what} of {run_dir} failed (exit status {status}): {_last_line(log)} "
                        f"(log: {log})")
    return time.perf_counter() - started


def _run_one(arm: Arm, seed: int, out: Path, common: Sequence[str],
             eval_args: Sequence[str]) -> dict[str, Any]:
    """Train and evaluate one arm and seed unless it is done; returns its entry of study.json."""
    run_dir, log = out / arm.name / f"seed_{seed}", out / arm.name / f"seed_{seed}.log"
    record_path = out / arm.name / f"seed_{seed}{RECORD_SUFFIX}"
    wanted = {"recipe": str(arm.recipe.resolve()), "seed": seed,
              "overrides": [*common, *arm.overrides], "eval": list(eval_args),
              "config_sha256": _config_digest(arm, seed, run_dir, common)}
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    who = f"seed {seed} arm {arm.name}"
    if {k: record.get(k) for k in wanted} == wanted and (run_dir / "eval.json").is_file():
        print(f"study: {who}: done, skipped ({run_dir})", flush=True)
        skipped = True
    else:
        record_path.unlink(missing_ok=True)  # from here until the new record: not done
        print(f"study: {who} ({arm.label}): training and evaluating (log: {log})", flush=True)
        train = [str(arm.recipe), *_train_settings(seed, run_dir), *common, *arm.overrides]
        train_s = _call(["levyjepa.run", *train], log, what="training", run_dir=run_dir)
        eval_s = _call(["levyjepa.eval", str(run_dir), *eval_args], log, what="evaluation",
                       run_dir=run_dir)
        record = {**wanted, "train_s": train_s, "eval_s": eval_s}
        atomic_write_json(record_path, record)
        print(f"study: {who}: trained in {train_s:.1f} s, evaluated in {eval_s:.1f} s "
              f"-> {run_dir}", flush=True)
        skipped = False
    result = json.loads((run_dir / "eval.json").read_text())
    return {"arm": arm.name, "seed": seed, "run_dir": str(run_dir), "log": str(log),
            "train_s": record.get("train_s"), "eval_s": record.get("eval_s"),
            "skipped": skipped, "metrics": metrics_of(result), "baselines": baselines_of(result)}


def run_study(arms: Sequence[Arm], seeds: Sequence[int], out: Path, *,
              common: Sequence[str] = (), eval_args: Sequence[str] = (),
              command: str = "", compare: Optional[Sequence[tuple[str, str]]] = None,
              target_difference: Optional[float] = None) -> dict[str, Any]:
    """Run (or resume) a study and write ``study.json``, ``study.md`` and ``study.png``.

    Args:
        arms: The arms, A (the reference) first.
        seeds: The seeds, paired across arms.
        out: The study's folder.
        common: Training overrides of both arms.
        eval_args: The evaluation's ``key=value`` arguments (``progress``, ``task``, ...).
        command: The command line, quoted in the report.
        compare: ``(X, Y)`` arm names: the paired differences ``X - Y`` to report (default:
            every arm after the first minus the first).
        target_difference: A true difference whose seeds-to-detect the report gives.

    Returns:
        The content of ``study.json``.

    Raises:
        ConfigError: a recipe or override is wrong, or a run folder holds another recipe's run.
        RunFailed: a training or evaluation failed.
    """
    from levyjepa.studies.plot import plot_study
    from levyjepa.studies.tables import study_markdown, summarize

    for seed in seeds:  # every recipe is checked before the first run starts
        for arm in arms:
            run_dir = out / arm.name / f"seed_{seed}"
            differ = _planned_differences(arm, seed, run_dir, common)
            if differ:
                shown = "; ".join(differ[:3]) + ("; ..." if len(differ) > 3 else "")
                raise ConfigError(f"{run_dir} holds a run of another recipe ({shown}): choose "
                                  "another --out or remove that folder")
    started = time.perf_counter()
    study: dict[str, Any] = {
        "command": command, "out": str(out), "seeds": list(seeds),
        "arms": [{"name": a.name, "label": a.label, "recipe": str(a.recipe),
                  "overrides": list(a.overrides)} for a in arms],
        "overrides": list(common), "eval": list(eval_args),
        "compare": [list(pair) for pair in (compare if compare is not None else
                                            [(a.name, arms[0].name) for a in arms[1:]])],
        "target_difference": target_difference, "runs": []}
    for seed in seeds:
        for arm in arms:
            study["runs"].append(_run_one(arm, seed, out, common, eval_args))
            study.update(summarize(study), wall_s=time.perf_counter() - started)
            atomic_write_json(out / STUDY_JSON, study)
            study_markdown(study, out / STUDY_MD)
            plot_study(study, out / STUDY_PNG)
    return study


def _letter(i: int) -> str:
    return chr(ord("A") + i) if i < 26 else f"ARM{i + 1}"


def _names(text: Optional[str], count: int) -> list[str]:
    if text is None:
        return [_letter(i) for i in range(count)]
    names = [n.strip() for n in text.split(",")]
    if (len(names) != count or len(set(names)) != count
            or not all(_NAME.fullmatch(n) for n in names)):
        many = "two" if count == 2 else str(count)
        raise ConfigError(f"--names {text!r}: give {many} different names, letters, digits, "
                          "'_', '-' or '.', e.g. --names baseline,levy")
    return names


def _comparisons(items: Sequence[str], names: Sequence[str]) -> list[tuple[str, str]]:
    """``(X, Y)`` pairs of ``--compare X:Y`` (default: every arm after the first with it)."""
    if not items:
        return [(name, names[0]) for name in names[1:]]
    pairs = []
    for item in items:
        parts = item.split(":")
        if len(parts) != 2 or parts[0] == parts[1] or not set(parts) <= set(names):
            raise ConfigError(f"--compare {item!r}: give X:Y, two different arms of "
                              f"{', '.join(names)}")
        pairs.append((parts[0], parts[1]))
    return pairs


def _target(text: str) -> float:
    """The value of ``--target-difference``: a finite number > 0."""
    try:
        if 0.0 < (value := float(text)) < float("inf"):
            return value
    except ValueError:
        pass
    raise ConfigError(f"--target-difference {text!r}: give a difference > 0 in the metrics' "
                      "units, e.g. --target-difference 0.02")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m levyjepa.study",
        description="Train and evaluate two recipes (or more) over paired seeds: does B beat A?",
        formatter_class=HelpFormatter,
        epilog="KEY=VALUE: a recipe key (python -m levyjepa.run RECIPE --print-config lists\n"
               "them); --eval: a setting of python -m levyjepa.eval --help (this command sets\n"
               "progress=false). Details: pydoc levyjepa.study.")
    parser.add_argument("items", nargs="+", metavar="RECIPE_OR_KEY=VALUE",
                        help="the arms' recipe files (at least two; B may be A's, with --a/--b), "
                             "then training overrides of every arm")
    parser.add_argument("--out", help="folder (default runs/study_<stemA>_vs_<stemB>)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per arm (default 3)")
    parser.add_argument("--first-seed", type=int, default=0, help="the first seed (default 0)")
    parser.add_argument("--tasks", help="evaluation tasks a,b,... (default: eval's own)")
    parser.add_argument("--eval", action="append", default=[], metavar="KEY=VALUE",
                        help="an evaluation setting (repeatable), e.g. --eval k=10")
    parser.add_argument("--a", action="append", default=[], metavar="KEY=VALUE",
                        help="a training override of arm A only (repeatable)")
    parser.add_argument("--b", action="append", default=[], metavar="KEY=VALUE",
                        help="a training override of arm B only (repeatable)")
    parser.add_argument("--names", help="the arms' names, e.g. baseline,levy (default: A,B,...)")
    parser.add_argument("--compare", action="append", default=[], metavar="X:Y",
                        help="compare arm X with arm Y, X - Y (repeatable; default: every "
                             "arm with the first)")
    parser.add_argument("--target-difference", metavar="X",
                        help="also report the paired seeds that detect a true difference X > 0 "
                             "with 80%% power")
    parser.add_argument("--traceback", action="store_true", help="show full tracebacks")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the study; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_intermixed_args(argv)
    show_traceback = args.traceback or os.environ.get("LEVYJEPA_TRACEBACK") == "1"
    try:
        overrides = [item for item in args.items if "=" in item]
        recipes = [Path(item) for item in args.items if "=" not in item]
        if len(recipes) < 2:
            raise ConfigError(f"a study needs at least two recipe files (RECIPE_A RECIPE_B), "
                              f"got {len(recipes)}")
        for i, recipe in enumerate(recipes):
            if not recipe.is_file():
                raise ConfigError(f"RECIPE_{_letter(i)}: recipe file not found: {recipe}")
        if args.seeds < 1:
            raise ConfigError(f"--seeds {args.seeds}: a study needs at least 1 seed (3 or more "
                              "for an interval worth reading)")
        _check_items(overrides, _RESERVED_TRAIN, "override")
        _check_items(args.a + args.b, _RESERVED_TRAIN, "arm override")
        _check_items(args.eval, _RESERVED_EVAL, "--eval")
        eval_args = ["progress=false", *args.eval]
        if args.tasks is not None:
            tasks = [t.strip() for t in args.tasks.split(",")]
            if not all(re.fullmatch(r"[A-Za-z0-9_]+", t) for t in tasks):
                raise ConfigError(f"--tasks {args.tasks!r}: give comma-separated task names")
            eval_args.insert(1, f"task={','.join(tasks)}")
        import levyjepa.eval

        levyjepa.eval.parse_overrides(eval_args)  # a wrong setting fails now, not after training
        target = None if args.target_difference is None else _target(args.target_difference)
        names = _names(args.names, len(recipes))
        compare = _comparisons(args.compare, names)
        own = {0: tuple(args.a), 1: tuple(args.b)}
        arms = [Arm(name, recipe, own.get(i, ())) for i, (name, recipe)
                in enumerate(zip(names, recipes))]
        out = Path(args.out or "runs/study_" + "_vs_".join(r.stem for r in recipes))
        seeds = list(range(args.first_seed, args.first_seed + args.seeds))
        command = shlex.join(["python", "-m", "levyjepa.study", *argv])
        study = run_study(arms, seeds, out, common=overrides, eval_args=eval_args,
                          command=command, compare=compare, target_difference=target)
    except (ConfigError, RunFailed) as err:
        if show_traceback:
            raise
        print(f"levyjepa: error: {err}", file=sys.stderr)
        return 2 if isinstance(err, ConfigError) else 1
    print(f"study: {len(study['runs'])} runs, {study['total_run_s']:.1f} s of runs in all; "
          f"wrote {out / STUDY_MD}, {out / STUDY_JSON} and {out / STUDY_PNG}", flush=True)
    from levyjepa.studies.tables import seed_warning

    if (warning := seed_warning(study)) is not None:  # last, where it is read
        print(f"levyjepa: warning: {warning}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
