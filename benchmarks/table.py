"""Medians over repeated runs of benchmarks/step.py: one Markdown table from its JSON lines.

Usage::

    python benchmarks/table.py RESULTS.jsonl [MORE.jsonl ...]

Reads the ``step_summary`` records, groups them by ``label`` (``step.py --label``, in order of
first appearance) and prints, per configuration, the number of runs and the medians over runs
of: the toolkit's and the plain loop's step time and views/s, the toolkit/plain ratio (in wall
time, and in process CPU time, which other processes on a shared machine disturb less), the phase
shares (from the ``phases`` loop), each prior's forward + backward as a share of the plain step,
and the machine's load average during the runs (range of the 1-minute value).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table  # noqa: E402

PHASES = ("data", "device_views", "forward", "priors", "backward", "optimizer")


def median_of(runs: list[dict[str, Any]], *path: str) -> float | None:
    """Median of ``run[path[0]][path[1]]...`` over the runs that have it."""
    values = []
    for run in runs:
        node: Any = run
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, (int, float)):
            values.append(float(node))
    return statistics.median(values) if values else None


def rows(summaries: list[dict[str, Any]]) -> list[list[str]]:
    """One row per configuration label."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for s in summaries:
        groups.setdefault(s.get("label") or " ".join(s["overrides"]), []).append(s)
    out = []
    def ms(runs: list[dict[str, Any]], loop: str, key: str = "step_s") -> str:
        value = median_of(runs, "loops", loop, key)
        return f"{value * 1e3:.0f}" if value else "-"

    for label, runs in groups.items():
        ratio = median_of(runs, "toolkit_over_plain")
        cpu_ratio = median_of(runs, "toolkit_over_plain_cpu_time")
        phases = runs[0]["loops"].get("phases")
        shares = "-"
        if phases:
            medians = {ph: median_of(runs, "loops", "phases", f"{ph}_s") or 0.0 for ph in PHASES}
            total = sum(medians.values())
            shares = ", ".join(f"{ph} {100 * v / total:.0f}%" for ph, v in medians.items()
                               if v / total >= 0.005)
        priors = []
        for i, prior in enumerate(runs[0]["priors"]):
            share = statistics.median(r["priors"][i]["share_of_step"] for r in runs)
            priors.append(f"{prior['name'].split(' ')[0]} {100 * share:.1f}%")
        loads = [r["machine"]["load_avg_1_5_15"][0] for r in runs]
        views = median_of(runs, "loops", "toolkit", "views_per_s")
        out.append([label, str(len(runs)), ms(runs, "plain"), ms(runs, "toolkit"),
                    f"{views:.2f}" if views else "-", f"{ratio:.3f}" if ratio else "-",
                    ms(runs, "plain", "cpu_s"), ms(runs, "toolkit", "cpu_s"),
                    f"{cpu_ratio:.3f}" if cpu_ratio else "-", shares, ", ".join(priors),
                    f"{min(loads):.1f}-{max(loads):.1f}"])
    return out


def main(argv: list[str] | None = None) -> str:
    """Print the table; return it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("files", nargs="+", type=Path, help="JSON lines from step.py")
    args = parser.parse_args(argv)
    summaries = []
    for path in args.files:
        for line in path.read_text().splitlines():
            if line.startswith("{"):
                record = json.loads(line)
                if record.get("bench") == "step_summary":
                    summaries.append(record)
    table = markdown_table(
        ["configuration", "runs", "plain step ms", "toolkit step ms", "toolkit views/s",
         "toolkit / plain", "plain CPU ms", "toolkit CPU ms", "toolkit / plain (CPU time)",
         "phases (plain loop)", "fwd+bwd / plain step", "load (1 min)"],
        rows(summaries))
    print(table)
    return table


if __name__ == "__main__":
    main()
