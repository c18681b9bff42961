"""``python -m levyjepa.slurm``: run a recipe on a SLURM cluster through submitit, requeued on
pre-emption or time-out until it finishes.

The recipe is unchanged; the cluster comes from the command line::

    python -m levyjepa.slurm recipes/image_levy2d.yaml data.root=/data/imagenette \\
        --nodes 2 --gpus-per-node 8 --time 240 --partition gpu --dry-run   # print the script
    python -m levyjepa.slurm recipes/quickstart.yaml --nodes 1 --gpus-per-node 1 --time 30

submitit (``pip install 'levyjepa[slurm]'``) writes the sbatch script and submits it; SLURM
starts one task per node, and each task runs ``accelerate launch`` for its node's GPUs
(multi-node: rank from ``SLURM_NODEID``, the first node of ``SLURM_JOB_NODELIST`` as the main
process), always with ``resume=auto`` so a requeued job continues from its last checkpoint.
``--time`` minutes before the limit, less ``--signal-delay`` seconds (or on pre-emption),
submitit's signal reaches each task, which forwards ``SIGUSR1`` to its training processes: they
finish their step, write a checkpoint and exit (:mod:`levyjepa.training.interrupt`); the task
then asks submitit to requeue the same job. ``--dry-run`` prints the sbatch script and submits
nothing.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from levyjepa.core.errors import ConfigError

SUBMITIT_MISSING = ("python -m levyjepa.slurm needs the optional package submitit, which is not "
                    "installed: pip install 'levyjepa[slurm]'")
MAIN_PORT = 29500


def require_submitit() -> Any:
    """The ``submitit`` module, or one line saying how to install it."""
    try:
        import submitit
    except ImportError:
        raise ConfigError(SUBMITIT_MISSING) from None
    return submitit


def first_host(nodelist: str) -> str:
    """The first host of a SLURM node list (``gpu[03-05,9],cpu1`` -> ``gpu03``)."""
    depth, end = 0, len(nodelist)
    for i, char in enumerate(nodelist):  # the first entry: up to a comma outside brackets
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            end = i
            break
    head = nodelist[:end]
    if "[" not in head:
        return head
    prefix, ranges = head.split("[", 1)
    return prefix + ranges.rstrip("]").split(",")[0].split("-")[0]


def node_command(recipe: str, overrides: Sequence[str], *, nodes: int, gpus_per_node: int,
                 env: Optional[dict[str, str]] = None) -> list[str]:
    """The command one node's task runs: ``accelerate launch`` of :mod:`levyjepa.run` over
    the node's GPUs, with ``resume=auto`` (a requeued job continues)."""
    env = dict(os.environ if env is None else env)
    launch = [sys.executable, "-m", "accelerate.commands.launch",
              "--num_processes", str(nodes * max(1, gpus_per_node)),
              "--num_machines", str(nodes)]
    if nodes > 1:
        launch += ["--machine_rank", env.get("SLURM_NODEID", "0"),
                   "--main_process_ip", first_host(env.get("SLURM_JOB_NODELIST", "localhost")),
                   "--main_process_port", str(MAIN_PORT)]
    if gpus_per_node == 0:  # CPU nodes (and the tests)
        launch.append("--cpu")
    elif gpus_per_node > 1 or nodes > 1:
        launch.append("--multi_gpu")
    return [*launch, "-m", "levyjepa.run", recipe, *overrides, "resume=auto"]


def _ignore_usr1() -> None:
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)


class TrainingJob:
    """The callable submitit runs on each node (a ``submitit.helpers.Checkpointable``: on its
    time-out or pre-emption signal, :meth:`checkpoint` is called and the job requeued)."""

    def __init__(self, recipe: str, overrides: Sequence[str], *, nodes: int,
                 gpus_per_node: int) -> None:
        self.recipe, self.overrides = recipe, list(overrides)
        self.nodes, self.gpus_per_node = nodes, gpus_per_node
        self.process: Optional[subprocess.Popen] = None
        self.stopping = False  # told to checkpoint and stop (pre-emption, time limit)

    def __call__(self) -> int:
        self.stopping = False
        command = node_command(self.recipe, self.overrides, nodes=self.nodes,
                               gpus_per_node=self.gpus_per_node)
        # the launcher (accelerate, torchrun's agent) ignores SIGUSR1, which it would die of;
        # the training processes inherit that, and install their own handler while they train
        self.process = subprocess.Popen(command, start_new_session=True,
                                        preexec_fn=_ignore_usr1)
        status = self.process.wait()
        if status != 0 and not self.stopping:  # a launcher may turn the run's 138 into 1
            raise RuntimeError(f"training exited with status {status}: {shlex.join(command)}")
        return status

    def stop_training(self, timeout: float = 600.0) -> Optional[int]:
        """Send SIGUSR1 to the training processes (their process group) and wait for their
        checkpoint; the exit status, or ``None`` when nothing was running."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.stopping = True
        os.killpg(self.process.pid, signal.SIGUSR1)
        return self.process.wait(timeout=timeout)

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """submitit's hook before a requeue: checkpoint the run, then resubmit this job."""
        self.stop_training()
        self.process = None  # not pickled into the requeued job
        return require_submitit().helpers.DelayedSubmission(self, *args, **kwargs)


def slurm_parameters(args: argparse.Namespace) -> dict[str, Any]:
    """submitit's ``SlurmExecutor`` parameters of the command line."""
    params: dict[str, Any] = dict(nodes=args.nodes, ntasks_per_node=1, time=args.time,
                                  gpus_per_node=args.gpus_per_node,
                                  cpus_per_task=args.cpus_per_task,
                                  signal_delay_s=args.signal_delay, job_name=args.job_name)
    for key in ("partition", "account", "qos", "constraint"):
        if getattr(args, key):
            params[key] = getattr(args, key)
    return params


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m levyjepa.slurm",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--gpus-per-node", type=int, default=1, help="0: CPU nodes")
    parser.add_argument("--cpus-per-task", type=int, default=16, help="CPU cores per node")
    parser.add_argument("--time", type=int, default=60, help="minutes per job")
    parser.add_argument("--partition")
    parser.add_argument("--account")
    parser.add_argument("--qos")
    parser.add_argument("--constraint")
    parser.add_argument("--job-name", default="levyjepa")
    parser.add_argument("--signal-delay", type=int, default=120,
                        help="seconds before the limit when the run is told to checkpoint")
    parser.add_argument("--folder", default="runs/slurm", help="submitit's logs and pickles")
    parser.add_argument("--dry-run", action="store_true", help="print the sbatch script only")
    args = parser.parse_args(argv)
    for key in ("nodes", "gpus_per_node", "cpus_per_task", "time"):
        if getattr(args, key) < 1 and not (key == "gpus_per_node" and args.gpus_per_node == 0):
            parser.error(f"--{key.replace('_', '-')} must be >= 1, got {getattr(args, key)}")
    if not Path(args.recipe).is_file():
        parser.error(f"recipe file not found: {args.recipe}")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    try:
        submitit = require_submitit()
    except ConfigError as err:
        print(f"levyjepa: error: {err}", file=sys.stderr)
        return 2
    job = TrainingJob(args.recipe, args.overrides, nodes=args.nodes,
                      gpus_per_node=args.gpus_per_node)
    params = slurm_parameters(args)
    if args.dry_run:
        from submitit.slurm.slurm import _make_sbatch_string

        folder = Path(args.folder).resolve()
        command = f"{shlex.quote(sys.executable)} -u -m submitit.core._submit {folder}"
        slurm_env = {"SLURM_NODEID": "$SLURM_NODEID", "SLURM_JOB_NODELIST": "$SLURM_JOB_NODELIST"}
        each_node = node_command(args.recipe, args.overrides, nodes=args.nodes,
                                 gpus_per_node=args.gpus_per_node, env=slurm_env)
        print(f"# each node's task runs: {shlex.join(each_node)}")
        print(_make_sbatch_string(command=command, folder=folder, **params))
        return 0
    executor = submitit.SlurmExecutor(folder=args.folder)
    executor.update_parameters(**params)
    submitted = executor.submit(job)
    print(f"submitted SLURM job {submitted.job_id}; logs in {args.folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
