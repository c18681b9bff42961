"""Does arm B beat arm A? Train and evaluate two recipes (or more) over seeds, paired by seed.

Usage::

    python -m levyjepa.study RECIPE_A RECIPE_B [RECIPE_C ...] [--seeds N] [--first-seed S]
        [--tasks a,b,...] [--out DIR] [--names NAME_A,NAME_B,...] [--a key=value ...]
        [--b key=value ...] [--compare B:A ...] [--target-difference X] [--eval key=value ...]
        [--eval-at STEPS] [--reference NAME[,NAME]] [--parallel N] [key=value ...]

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

``--eval-at 0,250,500`` also evaluates every run at those training steps, from checkpoints that
training keeps (``trainer.keep_steps``; step 0: the initial weights), without training again:
``DIR/learning_curves.png`` draws every metric against steps, each arm's mean across seeds with
its 95% t band, the baselines of ``eval.json`` as horizontal lines; ``study.json`` has the
curves (``curves``), ``study.md`` a table of them (:mod:`levyjepa.studies.curves`).
``--reference NAME[,NAME]`` names arms (a supervised ceiling) that are reported and drawn
(dashed) but never compared.

``--parallel N`` trains and evaluates N runs at once (default 1): for a GPU that one small run
leaves idle, or a machine with cores to spare. Each run's subprocesses use the threads they
would alone, so on a CPU give each its share (``OMP_NUM_THREADS``, ``trainer.cpu_threads``).
The numbers do not depend on it: each run is its own processes, seeded alike.

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

import concurrent.futures
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
from levyjepa.core.errors import ConfigError
from levyjepa.studies import cli
from levyjepa.studies.curves import (
    CURVES_PNG,
    STEPS_SUFFIX,
    check_max_steps,
    evaluate_steps,
    keep_steps_override,
    passed_steps,
    summarize_curves,
)
from levyjepa.studies.metrics import baselines_of, metrics_of

__all__ = ["Arm", "RunFailed", "baselines_of", "main", "metrics_of", "run_study"]

STUDY_JSON, STUDY_MD, STUDY_PNG = "study.json", "study.md", "study.png"
RECORD_SUFFIX = ".record.json"  # DIR/<arm>/seed_<s>.record.json: a finished run's arguments
_ABSENT = "(absent)"


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


def _planned_differences(arm: Arm, seed: int, run_dir: Path, common: Sequence[str],
                         eval_at: Sequence[int] = ()) -> list[str]:
    """Keys in which the run in ``run_dir`` differs from the recipe it would resume with.

    Raises:
        ConfigError: from the recipe (a bad key or value in an override), or an ``--eval-at``
            step beyond the recipe's ``trainer.max_steps``.
    """
    from omegaconf import OmegaConf

    from levyjepa.config.recipe import load_recipe
    from levyjepa.training.run_dir import MAY_CHANGE_ON_RESUME, flatten_recipe

    cfg = load_recipe(arm.recipe, [*_train_settings(seed, run_dir), *common, *arm.overrides])
    check_max_steps(eval_at, cfg.trainer.max_steps, arm.name)
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
             eval_args: Sequence[str], eval_at: Sequence[int] = ()) -> dict[str, Any]:
    """Train and evaluate one arm and seed unless it is done, then at the ``eval_at`` steps
    (:mod:`levyjepa.studies.curves`); returns its entry of study.json."""
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
        if eval_at:  # what is kept, not what is computed: not in the record
            train.append(keep_steps_override(eval_at))
        train_s = _call(["levyjepa.run", *train], log, what="training", run_dir=run_dir)
        eval_s = _call(["levyjepa.eval", str(run_dir), *eval_args], log, what="evaluation",
                       run_dir=run_dir)
        record = {**wanted, "train_s": train_s, "eval_s": eval_s}
        atomic_write_json(record_path, record)
        print(f"study: {who}: trained in {train_s:.1f} s, evaluated in {eval_s:.1f} s "
              f"-> {run_dir}", flush=True)
        skipped = False
    result = json.loads((run_dir / "eval.json").read_text())
    entry = {"arm": arm.name, "seed": seed, "run_dir": str(run_dir), "log": str(log),
             "train_s": record.get("train_s"), "eval_s": record.get("eval_s"),
             "skipped": skipped, "metrics": metrics_of(result), "baselines": baselines_of(result)}
    if eval_at:
        entry.update(evaluate_steps(_call, run_dir=run_dir, log=log, record_path=out / arm.name
                                    / f"seed_{seed}{STEPS_SUFFIX}", steps=eval_at,
                                    eval_args=eval_args, final=result, who=who))
    return entry


def run_study(arms: Sequence[Arm], seeds: Sequence[int], out: Path, *,
              common: Sequence[str] = (), eval_args: Sequence[str] = (),
              command: str = "", compare: Optional[Sequence[tuple[str, str]]] = None,
              target_difference: Optional[float] = None, eval_at: Sequence[int] = (),
              reference: Sequence[str] = (), parallel: int = 1) -> dict[str, Any]:
    """Run (or resume) a study and write ``study.json``, ``study.md`` and ``study.png`` (and
    ``learning_curves.png`` with ``eval_at``).

    Args:
        arms: The arms, A (the reference) first.
        seeds: The seeds, paired across arms.
        out: The study's folder.
        common: Training overrides of both arms.
        eval_args: The evaluation's ``key=value`` arguments (``progress``, ``task``, ...).
        command: The command line, quoted in the report.
        compare: ``(X, Y)`` arm names: the paired differences ``X - Y`` to report (default:
            every compared arm after the first minus the first).
        target_difference: A true difference whose seeds-to-detect the report gives.
        eval_at: Training steps at which every run is also evaluated (learning curves).
        reference: Arms reported and drawn for reference, never compared.
        parallel: Runs trained and evaluated at once (threads that each wait on their run's
            subprocesses); the report is rewritten as each run ends, its runs in the
            sequential order. On a failure the runs under way are finished, then the first
            failure (in that order) is raised.

    Returns:
        The content of ``study.json``.

    Raises:
        ConfigError: a recipe or override is wrong, or a run folder holds another recipe's run.
        RunFailed: a training or evaluation failed.
    """
    from levyjepa.studies.curve_plot import plot_curves
    from levyjepa.studies.plot import plot_study
    from levyjepa.studies.tables import study_markdown, summarize

    for seed in seeds:  # every recipe is checked before the first run starts
        for arm in arms:
            run_dir = out / arm.name / f"seed_{seed}"
            differ = _planned_differences(arm, seed, run_dir, common, eval_at)
            if differ:
                shown = "; ".join(differ[:3]) + ("; ..." if len(differ) > 3 else "")
                raise ConfigError(f"{run_dir} holds a run of another recipe ({shown}): choose "
                                  "another --out or remove that folder")
            passed = passed_steps(run_dir, eval_at, out / arm.name / f"seed_{seed}{STEPS_SUFFIX}",
                                  eval_args)
            if passed:
                raise ConfigError(f"--eval-at: {run_dir} was trained past step(s) "
                                  f"{', '.join(map(str, passed))} without keeping their "
                                  "checkpoints: leave them out, choose another --out or remove "
                                  "that folder")
    compared = [a.name for a in arms if a.name not in reference]
    started = time.perf_counter()
    study: dict[str, Any] = {
        "command": command, "out": str(out), "seeds": list(seeds),
        "arms": [{"name": a.name, "label": a.label, "recipe": str(a.recipe),
                  "overrides": list(a.overrides)} for a in arms],
        "overrides": list(common), "eval": list(eval_args),
        "compare": [list(pair) for pair in (compare if compare is not None else
                                            [(n, compared[0]) for n in compared[1:]])],
        "target_difference": target_difference, "eval_at": list(eval_at),
        "reference_arms": list(reference), "runs": []}
    jobs = [(arm, seed) for seed in seeds for arm in arms]
    done: dict[int, dict[str, Any]] = {}

    def report() -> None:
        study["runs"] = [done[i] for i in sorted(done)]
        study.update(summarize(study), wall_s=time.perf_counter() - started)
        if eval_at:
            study["curves"] = summarize_curves(study)
        atomic_write_json(out / STUDY_JSON, study)
        study_markdown(study, out / STUDY_MD)
        plot_study(study, out / STUDY_PNG)
        if eval_at:
            plot_curves(study, out / CURVES_PNG)

    if parallel <= 1:
        for i, (arm, seed) in enumerate(jobs):
            done[i] = _run_one(arm, seed, out, common, eval_args, eval_at)
            report()
        return study
    failures: dict[int, RunFailed] = {}
    with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
        futures = {pool.submit(_run_one, arm, seed, out, common, eval_args, eval_at): i
                   for i, (arm, seed) in enumerate(jobs)}
        for future in concurrent.futures.as_completed(futures):
            try:
                done[futures[future]] = future.result()
            except RunFailed as err:  # the others finish; the first failure is raised below
                failures[futures[future]] = err
                continue
            report()
    if failures:
        raise failures[min(failures)]
    return study


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the study; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = cli.parser().parse_intermixed_args(argv)
    show_traceback = args.traceback or os.environ.get("LEVYJEPA_TRACEBACK") == "1"
    try:
        overrides = [item for item in args.items if "=" in item]
        recipes = [Path(item) for item in args.items if "=" not in item]
        if len(recipes) < 2:
            raise ConfigError(f"a study needs at least two recipe files (RECIPE_A RECIPE_B), "
                              f"got {len(recipes)}")
        for i, recipe in enumerate(recipes):
            if not recipe.is_file():
                raise ConfigError(f"RECIPE_{cli.letter(i)}: recipe file not found: {recipe}")
        if args.parallel < 1:
            raise ConfigError(f"--parallel {args.parallel}: give at least 1 run at once")
        if args.seeds < 1:
            raise ConfigError(f"--seeds {args.seeds}: a study needs at least 1 seed (3 or more "
                              "for an interval worth reading)")
        eval_at = cli.eval_at_steps(args.eval_at)
        reserved = (*cli.RESERVED_TRAIN, *(("trainer.keep_steps",) if eval_at else ()))
        cli.check_items(overrides, reserved, "override")
        cli.check_items(args.a + args.b, reserved, "arm override")
        cli.check_items(args.eval, cli.RESERVED_EVAL, "--eval")
        eval_args = ["progress=false", *args.eval]
        if args.tasks is not None:
            tasks = [t.strip() for t in args.tasks.split(",")]
            if not all(re.fullmatch(r"[A-Za-z0-9_]+", t) for t in tasks):
                raise ConfigError(f"--tasks {args.tasks!r}: give comma-separated task names")
            eval_args.insert(1, f"task={','.join(tasks)}")
        import levyjepa.eval

        levyjepa.eval.parse_overrides(eval_args)  # a wrong setting fails now, not after training
        target = None if args.target_difference is None else cli.target(args.target_difference)
        names = cli.names(args.names, len(recipes))
        reference = cli.references(args.reference, names)
        compare = cli.comparisons(args.compare, names, reference)
        own = {0: tuple(args.a), 1: tuple(args.b)}
        arms = [Arm(name, recipe, own.get(i, ())) for i, (name, recipe)
                in enumerate(zip(names, recipes))]
        out = Path(args.out or "runs/study_" + "_vs_".join(r.stem for r in recipes))
        seeds = list(range(args.first_seed, args.first_seed + args.seeds))
        command = shlex.join(["python", "-m", "levyjepa.study", *argv])
        study = run_study(arms, seeds, out, common=overrides, eval_args=eval_args,
                          command=command, compare=compare, target_difference=target,
                          eval_at=eval_at, reference=reference, parallel=args.parallel)
    except (ConfigError, RunFailed) as err:
        if show_traceback:
            raise
        print(f"levyjepa: error: {err}", file=sys.stderr)
        return 2 if isinstance(err, ConfigError) else 1
    written = [out / STUDY_MD, out / STUDY_JSON, out / STUDY_PNG, *([out / CURVES_PNG]
                                                                    if eval_at else [])]
    print(f"study: {len(study['runs'])} runs, {study['total_run_s']:.1f} s of runs in all; "
          f"wrote {', '.join(map(str, written[:-1]))} and {written[-1]}", flush=True)
    from levyjepa.studies.tables import seed_warning

    if (warning := seed_warning(study)) is not None:  # last, where it is read
        print(f"levyjepa: warning: {warning}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
