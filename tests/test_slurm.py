"""The SLURM launcher (python -m levyjepa.slurm): the sbatch script of a dry run, each node's
launch command, and a job that is told to checkpoint (as on pre-emption), then requeued,
finishing the run from its checkpoint."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from levyjepa.slurm import TrainingJob, first_host, main, node_command

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "recipes" / "quickstart.yaml")


@pytest.mark.parametrize("nodelist,host", [("node07", "node07"), ("a1,b2", "a1"),
                                           ("gpu[03-05,9],cpu1", "gpu03"), ("n[7]", "n7"),
                                           ("x[1,2],y[3-4]", "x1")])
def test_first_host_of_a_node_list(nodelist: str, host: str) -> None:
    assert first_host(nodelist) == host


def test_each_node_launches_accelerate_with_its_rank_and_resume_auto() -> None:
    env = {"SLURM_NODEID": "1", "SLURM_JOB_NODELIST": "gpu[12-13]"}
    cmd = node_command("r.yaml", ["seed=3"], nodes=2, gpus_per_node=8, env=env)
    assert cmd[1:3] == ["-m", "accelerate.commands.launch"]
    flags = dict(zip(cmd[3:13:2], cmd[4:13:2]))
    assert flags == {"--num_processes": "16", "--num_machines": "2", "--machine_rank": "1",
                     "--main_process_ip": "gpu12", "--main_process_port": "29500"}
    assert "--multi_gpu" in cmd and cmd[-5:] == ["-m", "levyjepa.run", "r.yaml", "seed=3",
                                                 "resume=auto"]
    one = node_command("r.yaml", [], nodes=1, gpus_per_node=1, env={})
    assert "--machine_rank" not in one and "--multi_gpu" not in one and "--cpu" not in one
    assert "--cpu" in node_command("r.yaml", [], nodes=1, gpus_per_node=0, env={})


def test_the_dry_run_prints_the_sbatch_script(capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path) -> None:
    assert main([QUICKSTART, "trainer.epochs=2", "--nodes", "2", "--gpus-per-node", "8",
                 "--time", "240", "--partition", "gpu", "--account", "lab",
                 "--folder", str(tmp_path / "logs"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=1", "#SBATCH --gpus-per-node=8",
                 "#SBATCH --time=240", "#SBATCH --partition=gpu", "#SBATCH --account=lab",
                 "#SBATCH --signal=USR2@120", "#SBATCH --cpus-per-task=16"):
        assert line in out.splitlines(), line
    assert "srun" in out and "submitit.core._submit" in out
    assert "levyjepa.run" in out and "trainer.epochs=2 resume=auto" in out
    assert not (tmp_path / "logs").exists()  # nothing submitted, nothing written


def test_a_bad_value_is_refused_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([QUICKSTART, "--nodes", "0", "--dry-run"])
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith("--nodes must be >= 1, got 0")


def test_a_checkpointed_job_is_requeued_and_finishes_the_run(tmp_path: Path) -> None:
    """The job's pre-emption hook stops the training after a step with a checkpoint (SIGUSR1 to
    its process group); the requeued job (the same callable, run again) resumes it to the end."""
    from test_run_safety import TINY

    out = tmp_path / "run"
    job = TrainingJob(QUICKSTART, [*TINY, "trainer.epochs=50", "trainer.eval_every=0",
                                   f"out_dir={out}", "log.first_look=false"],
                      nodes=1, gpus_per_node=0)
    status = {}
    worker = threading.Thread(target=lambda: status.setdefault("first", job()))
    worker.start()
    metrics, deadline = out / "metrics.jsonl", time.monotonic() + 240
    while not (metrics.is_file() and len(metrics.read_text().splitlines()) >= 3):
        assert worker.is_alive() and time.monotonic() < deadline
        time.sleep(0.05)
    requeue = job.checkpoint()
    worker.join(timeout=240)
    assert status["first"] != 0  # stopped after a step (the run: 138; accelerate's launcher: 1)
    assert list((out / "checkpoints").iterdir())  # with a checkpoint
    assert requeue.function is job
    stopped_at = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["step"]
    assert 0 < stopped_at < 50 * 4
    assert requeue.function() == 0  # the requeued job continues with resume=auto
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 50 * 4 and summary["steps_this_session"] < 50 * 4
