"""The Markdown tables :mod:`step` (``benchmarks/step.py``) prints from its summary."""

from __future__ import annotations

from typing import Any

from common import markdown_table

# the phases of a step that the plain loop times apart (``--phases``)
PHASES = ("data", "device_views", "forward", "priors", "backward", "optimizer")


def tables(s: dict[str, Any]) -> str:
    """The summary as Markdown tables."""
    mib = 2 ** 20
    m = s["machine"]
    lines = [f"**{s['recipe']}** {' '.join(s['overrides'])}", "",
             f"machine: {m.get('gpu') or m['cpu']}, {m['cores']} cores, torch {m['torch']}, "
             f"{m['torch_threads']} threads (OpenMP wait policy {m['omp_wait_policy']}), "
             f"load average {m['load_avg_1_5_15']}", ""]
    rows = []
    for name, loop in s["loops"].items():
        device_mem = loop.get("peak_device_bytes")
        rows.append([name, loop["steps"], f"{loop['step_s'] * 1e3:.1f}",
                     f"{loop['cpu_s'] * 1e3:.1f}",
                     f"{loop['views_per_s']:.1f}", f"{loop['peak_rss_bytes'] / mib:.0f}",
                     f"{device_mem / mib:.0f}" if device_mem else "-"])
    lines.append(markdown_table(["loop", "timed steps", "step ms (median)",
                                 "process CPU ms (median)", "views/s", "peak host RSS MiB",
                                 "peak device MiB"], rows))
    if s["toolkit_over_plain"]:
        lines += ["", f"toolkit / plain step time: {s['toolkit_over_plain']:.3f} "
                      f"(overhead {100 * (s['toolkit_over_plain'] - 1):+.1f}%); in process CPU "
                      f"time: {s['toolkit_over_plain_cpu_time']:.3f}"]
    phases = s["loops"].get("phases")
    if phases:
        total = sum(phases.get(f"{ph}_s", 0.0) for ph in PHASES)
        rows = [[ph, f"{phases[f'{ph}_s'] * 1e3:.1f}", f"{100 * phases[f'{ph}_s'] / total:.1f}%"]
                for ph in PHASES if f"{ph}_s" in phases]
        lines += ["", markdown_table(["phase", "ms (median)", "share"], rows)]
    rows = [[p["name"] + (f" ({p['term']} on {p['input']})" if p.get("term") else ""),
             "x".join(map(str, p["shape"])), f"{p['fwd_bwd_s'] * 1e3:.2f}",
             f"{100 * p['share_of_step']:.2f}%" if p["share_of_step"] else "-"]
            for p in s["priors"]]
    lines += ["", markdown_table(["term", "input", "fwd+bwd ms", "share of plain step"], rows)]
    extra = []
    if s["flops_per_step"]:
        extra.append(f"{s['flops_per_step'] / 1e9:.1f} GFLOP/step, "
                     f"{s['achieved_tflops'] * 1e3:.1f} GFLOP/s achieved")
    if s.get("mfu") is not None:
        extra.append(f"MFU {100 * s['mfu']:.1f}% of {s['peak_tflops']:.0f} TFLOP/s bf16")
    hours = s["projected_hours"]
    duration = f"{hours * 60:.0f} min" if hours < 10 else f"{hours:.1f} h"
    extra.append(f"{s['epochs']} epochs x {s['steps_per_epoch']} steps at the "
                 f"{'toolkit' if 'toolkit' in s['loops'] else 'plain'} step time: {duration}")
    if "projected_hours_with_epoch_costs" in s:
        total = s["projected_hours_with_epoch_costs"]
        extra.append(f"with evaluation ({s.get('eval_s', 0.0):.1f} s each) and checkpoints "
                     f"({s['checkpoint_s']:.1f} s each): "
                     + (f"{total * 60:.0f} min" if total < 10 else f"{total:.1f} h"))
    else:
        extra.append("evaluation and checkpoints excluded (--epoch-costs)")
    lines += ["", "; ".join(extra)]
    return "\n".join(lines)
